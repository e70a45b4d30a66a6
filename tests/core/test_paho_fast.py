"""The paho fast path's fence: every private paho member it uses is present and has the shape it was verified with.

If one of these fails after a paho upgrade, the message names the member: read the header of
``supervisor/ingest/_paho_fast.py`` for why it is used, adapt the fast path (or keep paho's pin), and
meanwhile run with ``mqtt.fast_path: false``. The supervisor itself falls back to the plain path.
"""

from __future__ import annotations

import inspect
import logging
import re
import tomllib
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from supervisor.config import MqttConfig, load_settings
from supervisor.ingest import _paho_fast
from supervisor.ingest._paho_fast import _ATTRIBUTES, _METHODS, FastClient, paho_mismatches
from supervisor.ingest.mqtt import Inbox, MqttIngest, ReconnectingClient

_check = paho_mismatches.__wrapped__  # uncached: the monkeypatched cases below change paho


@pytest.mark.parametrize("name", sorted(_METHODS))
def test_each_private_method_has_the_verified_signature(name: str) -> None:
    fn = getattr(mqtt.Client, name, None)
    assert callable(fn), f"paho.mqtt.client.Client.{name} is gone: the fast path calls it"
    got = [(p.name, p.kind) for p in list(inspect.signature(fn).parameters.values())[1:]]
    assert got == _METHODS[name], f"paho.mqtt.client.Client.{name} changed its parameters: {got}"


@pytest.mark.parametrize("name", sorted(_ATTRIBUTES))
def test_each_private_attribute_has_the_verified_shape(name: str) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    assert hasattr(c, name), f"paho.mqtt.client.Client().{name} is gone: the fast path uses it"
    assert _ATTRIBUTES[name](getattr(c, name)), f"paho.mqtt.client.Client().{name} changed shape: {getattr(c, name)!r}"


def test_the_installed_paho_is_as_verified() -> None:
    problems = _check()
    assert problems == [], "\n".join(problems)
    assert paho_mismatches() == []  # what MqttIngest consults at start


def test_every_paho_member_the_fast_client_touches_is_checked_and_named_in_the_header() -> None:
    """A new use of a paho internal cannot slip in without its check and its line in the header."""
    source = inspect.getsource(FastClient)
    ours = set(vars(FastClient))
    used = {m for m in re.findall(r"self\.(_\w+)", source) if m not in ours}
    assert used, "the pattern found nothing: the test would pass vacuously"
    checked = set(_METHODS) | set(_ATTRIBUTES)
    assert used <= checked, f"paho members used but not checked: {sorted(used - checked)}"
    header = _paho_fast.__doc__ or ""
    for name in sorted(checked | {"time_func", "MalformedPacket", "_topic"}):
        assert f"{name}" in header, f"{name} is not named in the header of _paho_fast.py"


def test_a_missing_method_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(mqtt.Client, "_packet_queue")
    assert _check() == ["paho.mqtt.client.Client._packet_queue is gone (the fast path calls it)"]


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt.Client, "_sock_recv", lambda self, bufsize, flags: b"")
    (problem,) = _check()
    assert problem.startswith("paho.mqtt.client.Client._sock_recv changed its parameters")


def test_a_changed_attribute_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    init = mqtt.Client.__init__

    def renamed(self: mqtt.Client, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        self._in_packet = {"command": 0}  # type: ignore[typeddict-item]
        del self._last_bytes_received

    monkeypatch.setattr(mqtt.Client, "__init__", renamed)
    assert _check() == ["paho.mqtt.client.Client()._in_packet changed shape: {'command': 0}",
                        "paho.mqtt.client.Client()._last_bytes_received is gone (the fast path uses it)"]


def test_a_changed_message_member_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    init = mqtt.MQTTMessage.__init__

    def decoded(self: mqtt.MQTTMessage, mid: int = 0, topic: bytes = b"") -> None:
        init(self, mid, topic)
        self._topic = topic.decode("utf-8", "replace")  # type: ignore[assignment]

    monkeypatch.setattr(mqtt.MQTTMessage, "__init__", decoded)
    assert _check() == ["paho.mqtt.client.MQTTMessage._topic is no longer the raw topic bytes (plain path, bad topics)"]


def test_a_changed_paho_falls_back_to_the_plain_path_with_an_error(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_paho_fast, "paho_mismatches", lambda: ["paho.mqtt.client.Client._sock is gone"])
    with caplog.at_level(logging.ERROR, logger="supervisor.ingest.mqtt"):
        ing = MqttIngest(MqttConfig(), ["city/#"], Inbox())
    assert not ing.fast_path and type(ing._client) is ReconnectingClient
    assert "Client._sock is gone" in caplog.text and "using the plain paho path" in caplog.text


def test_the_switch_selects_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MqttIngest(MqttConfig(), ["city/#"], Inbox()).fast_path  # the default
    monkeypatch.setenv("URBAN_MQTT__FAST_PATH", "false")
    cfg = load_settings(None, mode="test").mqtt
    assert cfg.fast_path is False
    ing = MqttIngest(cfg, ["city/#"], Inbox())
    assert not ing.fast_path and type(ing._client) is ReconnectingClient
    assert isinstance(MqttIngest(MqttConfig(fast_path=True), ["city/#"], Inbox())._client, FastClient)


def test_paho_pins_agree_and_hold_the_installed_version() -> None:
    """pyproject's range, constraints.txt's pin and the installed paho: one verified minor version."""
    root = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [Requirement(d).specifier for d in deps if Requirement(d).name == "paho-mqtt"]
    (pin,) = [line.split("==")[1].strip() for line in (root / "constraints.txt").read_text().splitlines()
              if line.startswith("paho-mqtt==")]
    assert spec.contains(pin), f"constraints.txt pins paho-mqtt {pin}, outside pyproject's {spec}"
    assert paho.mqtt.__version__ == pin, f"installed paho-mqtt {paho.mqtt.__version__}, constraints.txt says {pin}"
    assert not spec.contains(f"{Version(pin).major}.{Version(pin).minor + 1}.0"), "the range must stop at this minor"
