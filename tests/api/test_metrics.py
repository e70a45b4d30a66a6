from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from supervisor.api.prometheus import Exposition, escape_label_value, format_value
from supervisor.runtime import Supervisor
from tests.api.conftest import camera, lamp, msg, traffic

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
LABELS = rf"\{{(?:[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})(?:,[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})*\}}"
VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)"
HELP_RE = re.compile(rf"^# HELP ({NAME}) (?:[^\\\n]|\\\\|\\n)*$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SAMPLE_RE = re.compile(rf"^({NAME})({LABELS})? ({VALUE})$")


def parse(text: str) -> dict[str, tuple[str, list[tuple[str, float]]]]:
    """Check every line; return {family: (type, [(labels, value)])}."""
    assert text.endswith("\n")
    families: dict[str, tuple[str, list[tuple[str, float]]]] = {}
    helped: set[str] = set()
    current: str | None = None
    for line in text.splitlines():
        if m := HELP_RE.match(line):
            assert m.group(1) not in helped, f"HELP twice: {line}"
            helped.add(m.group(1))
            current = None
        elif m := TYPE_RE.match(line):
            name = m.group(1)
            assert name in helped and name not in families, f"TYPE without HELP first, or twice: {line}"
            families[name] = (m.group(2), [])
            current = name
        elif m := SAMPLE_RE.match(line):
            assert current is not None and m.group(1) == current, f"sample outside its family: {line}"
            families[current][1].append((m.group(2) or "", float(m.group(3))))
        else:
            pytest.fail(f"not a valid exposition line: {line!r}")
    for name, (mtype, _) in families.items():
        assert (mtype == "counter") == name.endswith("_total"), name
    return families


def value(fams: dict[str, tuple[str, list[tuple[str, float]]]], name: str, labels: str = "") -> float:
    for lab, v in fams[name][1]:
        if lab == labels:
            return v
    raise KeyError(f"{name}{labels}")


def test_metrics_format_and_values(open_client: TestClient, sup: Supervisor) -> None:
    sup.pipeline.process([traffic("rs-1"), traffic("rs-2"), lamp("lamp-1"), camera("cam-1", online=False),
                          msg("city/c/traffic/rs-3/telemetry", {"flow": "x"}), msg("elsewhere", {})])
    r = open_client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = parse(r.text)
    assert value(fams, "urban_ingest_received_total") == 6
    assert value(fams, "urban_ingest_decoded_total") == 4
    assert value(fams, "urban_ingest_errors_total", '{driver="-",reason="unknown_topic"}') == 1
    assert sum(v for _, v in fams["urban_ingest_errors_total"][1]) == 2
    assert value(fams, "urban_devices", '{family="traffic",status="ok"}') == 2
    assert value(fams, "urban_devices", '{family="cctv",status="fault"}') == 1
    assert value(fams, "urban_writer_pending_lines") == 4
    assert value(fams, "urban_mqtt_connected") == 0
    assert fams["urban_ingest_lag_seconds"][0] == "gauge"
    assert fams["urban_writer_points_written_total"][0] == "counter"
    # parts not configured have no metrics; the alarm list exists without a model (the
    # supervisor's own alarms), with nothing active here
    assert not any(n.startswith("urban_rules") for n in fams)
    assert fams["urban_alarms_active"] == ("gauge", [])


def test_label_values_are_escaped(open_client: TestClient, sup: Supervisor) -> None:
    # a refused topic name ends up in no label, but a driver reason could carry anything: check the writer
    out = Exposition("t_")
    out.add("odd_total", "counter", 'help with \\ and\nnewline', [({"v": 'a"b\\c\nd'}, 1)])
    text = out.render()
    assert 'v="a\\"b\\\\c\\nd"' in text
    assert "# HELP t_odd_total help with \\\\ and\\nnewline\n" in text
    parse(text)


def test_exposition_refuses_misnamed_metrics() -> None:
    out = Exposition()
    with pytest.raises(ValueError, match="_total"):
        out.counter("points", "x", 1)
    with pytest.raises(ValueError, match="_total"):
        out.gauge("points_total", "x", 1)
    with pytest.raises(ValueError, match="invalid label"):
        out.add("g", "gauge", "x", [({"bad-label": "v"}, 1)])
    out.gauge("g2", "x", 1)
    with pytest.raises(ValueError, match="twice"):
        out.gauge("g2", "x", 1)


def test_format_value() -> None:
    assert format_value(True) == "1"
    assert format_value(3) == "3"
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN"
    assert format_value(0.25) == "0.25"
    assert escape_label_value("plain") == "plain"
