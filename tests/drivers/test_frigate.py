"""Frigate driver against the shared documentation samples, plus its options.

The samples (``shared/payloads/cctv/frigate-docs-*.jsonc``, MIT, Copyright (c) 2020 Blake
Blackshear, from blakeblackshear/frigate docs) are read where they are, with their comments stripped
here in the loader only; the tests skip with a reason when the shared folder is absent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from drivers import ConfigError, DecodeError
from drivers.frigate import FrigateDriver

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "payloads" / "cctv"
_JSONC = re.compile(r'("(?:\\.|[^"\\])*")|/\*.*?\*/|//[^\n]*', re.DOTALL)


def sample(name: str) -> bytes:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"shared sample {path} is not present")
    text = _JSONC.sub(lambda m: m.group(1) or "", path.read_text(encoding="utf-8"))
    return text.encode()


def records(topic: str, payload: bytes, options: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    out = FrigateDriver(options).decode(topic, payload)
    rows: list[tuple[Any, ...]] = [(r.device, r.channel, r.values, r.ts) for r in out.readings]
    rows += [(e.device, e.kind, e.data, e.ts) for e in out.events]
    return rows


def test_comments_are_refused_on_the_wire() -> None:
    raw = (SHARED / "frigate-docs-api-stats.jsonc")
    if not raw.is_file():
        pytest.skip(f"shared sample {raw} is not present")
    with pytest.raises(DecodeError) as info:
        FrigateDriver().decode("frigate/stats", raw.read_bytes())
    assert info.value.reason == "invalid_json"


def test_docs_stats_sample() -> None:
    got = records("frigate/stats", sample("frigate-docs-api-stats.jsonc"))
    assert sorted(got, key=repr) == sorted([
        ("back", None, {"fps": 5.0, "online": True}, None),
        ("frigate", None, {"uptime": 10.0, "cpu": 5.0}, None),
        ("frigate", "coral", {"inference_ms": 10.48}, None),
        ("frigate", "gpu-type", {"gpu": 17.0}, None),
    ], key=repr)


def test_docs_stats_sample_in_the_legacy_layout() -> None:
    current = orjson.loads(sample("frigate-docs-api-stats.jsonc"))
    legacy = {**current.pop("cameras"), **current}  # 0.12: cameras at the top level
    got = records("frigate/stats", orjson.dumps(legacy))
    assert ("back", None, {"fps": 5.0, "online": True}, None) in got
    assert ("frigate", "coral", {"inference_ms": 10.48}, None) in got


def test_docs_event_sample() -> None:
    payload = sample("frigate-docs-mqtt-events.jsonc")
    assert records("frigate/events", payload) == []  # the sample is an update: not acted on
    doc = orjson.loads(payload)
    doc["type"] = "new"
    ((device, kind, data, ts),) = records("frigate/events", orjson.dumps(doc))
    assert (device, kind, ts) == ("front_door", "person", 1607123955.475377)
    assert data == {"phase": "new", "id": "1607123955.475377-mxklsc", "score": 0.958984375,
                    "zones": "yard,driveway", "sub_label": "John Smith", "false_positive": False,
                    "has_clip": False, "has_snapshot": False}
    doc["type"] = "end"
    ((_, _, data, ts),) = records("frigate/events", orjson.dumps(doc))
    assert data["phase"] == "end" and ts is None  # end_time is still null in the sample


def test_docs_review_sample() -> None:
    # an update whose severity went from detection to alert: acted on
    ((device, kind, data, ts),) = records("frigate/reviews", sample("frigate-docs-mqtt-reviews.jsonc"))
    assert (device, kind, ts) == ("front_cam", "review_alert", 1718987129.308396)
    assert data == {"phase": "update", "id": "1718987129.308396-fqk5ka", "objects": "person,car",
                    "sub_labels": "Bob", "zones": "front_yard", "detections": 3}


def test_docs_trigger_sample() -> None:
    ((device, kind, data, ts),) = records("frigate/triggers", sample("frigate-docs-mqtt-triggers.jsonc"))
    assert (device, kind, ts) == ("driveway", "trigger", None)
    assert data == {"name": "car_trigger", "type": "thumbnail", "event_id": "1751565549.853251-b69j73",
                    "score": 0.85}


def test_prefix_and_instance_options() -> None:
    d = FrigateDriver({"topic_prefix": "nvr-east", "instance": "nvr_east"})
    assert d.topics == ("nvr-east/#",)
    assert records("nvr-east/available", b"offline", {"topic_prefix": "nvr-east", "instance": "nvr_east"})[0] == (
        "nvr_east", None, {"online": False}, None)
    with pytest.raises(DecodeError) as info:
        d.decode("frigate/available", b"online")
    assert info.value.reason == "unknown_topic"
    for bad in ({"topic_prefix": "a/#"}, {"instance": "a b"}, {"colour": 1}):
        with pytest.raises(ConfigError):
            FrigateDriver(bad)


def test_offline_marks_no_camera_down() -> None:
    out = FrigateDriver().decode("frigate/available", b"offline")
    assert {r.device for r in out.readings} == {"frigate"}  # cameras: no reading, they become unknown
