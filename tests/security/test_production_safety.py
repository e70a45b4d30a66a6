"""Production refuses to be unsafe (issue 17): anonymous or plain-text links, an open API, no city.

A table of configurations, each unsafe in exactly one way: the validation function refuses each
one with an error naming the key, ``urban-supervisor run`` exits with code 2 and prints it, and
``allow_insecure`` lets each one start for real (a private Mosquitto, the shared InfluxDB) with a
WARNING. Demo and test modes start with no secret at all.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import BaseModel

from simulators.city import write_city
from supervisor.config import (
    ENDPOINT,
    INSECURE_COSTS,
    ConfigFileError,
    Insecure,
    InsecureConfigError,
    Settings,
    endpoint_urls,
    enforce_production_safety,
    insecurities,
    is_loopback,
    load_settings,
)
from tests.support.services import INFLUX_URL, Influx, mosquitto

ROOT = Path(__file__).resolve().parents[2]
MQTT_SECRET = "mqtt-Pa55-not-a-default-7f3a"
TOKEN = "api-token-0123456789-abcdef"
# A name (not resolved by the check, so remote to it) that the machine resolves to loopback:
# the real starts below cross no network while the configuration looks remote.
REMOTE_LOOKING = socket.gethostname()


def _resolves_to_loopback(name: str) -> bool:
    try:
        return all(is_loopback(str(info[4][0])) for info in socket.getaddrinfo(name, None))
    except OSError:
        return False


# key refused -> (allow_insecure name, what makes the safe base configuration unsafe)
UNSAFE: dict[str, tuple[Insecure, dict[str, Any]]] = {
    "mqtt.username": (Insecure.ANONYMOUS_MQTT, {"mqtt": {"username": None, "password": None}}),
    "mqtt.tls": (Insecure.PLAINTEXT_MQTT, {"mqtt": {"host": REMOTE_LOOKING}}),
    "storage.url": (Insecure.PLAINTEXT_HTTP, {"storage": {"url": f"http://{REMOTE_LOOKING}:8086"}}),
    "notifications.channels.ops.url": (Insecure.PLAINTEXT_HTTP, {"notifications": {"channels": {"ops": {
        "type": "webhook", "url": f"http://{REMOTE_LOOKING}:9/hook", "secret": "s" * 20}}}}),
    "notifications.channels.crew.starttls": (Insecure.PLAINTEXT_SMTP, {"notifications": {"channels": {"crew": {
        "type": "email", "host": REMOTE_LOOKING, "port": 25, "starttls": False, "from": "sup@city.example",
        "to": ["night-crew@city.example"]}}}}),
    "api.host": (Insecure.OPEN_API, {"api": {"host": REMOTE_LOOKING, "viewer_tokens": [],
                                             "operator_tokens": []}}),
    "city": (Insecure.NO_CITY, {"city": None}),
    "snmp.credentials.lab": (Insecure.PLAINTEXT_SNMP, {"snmp": {"enabled": True, "credentials": {"lab": {
        "version": "2c", "community": "c0mmunity-not-logged"}}}}),
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(autouse=True)
def _no_urban_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("URBAN_"):
            monkeypatch.delenv(key)


@pytest.fixture
def city(tmp_path: Path) -> Path:
    return write_city(tmp_path / "city.json", seed=3, devices=20)


def safe_config(tmp_path: Path, city: Path, *, mqtt_port: int = 1883, database: str = "urban") -> dict[str, Any]:
    """A production configuration that passes every check: credentials, loopback, a city."""
    return {
        "mode": "production", "data_dir": str(tmp_path / "var"), "city": str(city),
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "username": "supervisor", "password": MQTT_SECRET,
                 "client_id": f"prodsafe-{os.getpid()}-{tmp_path.name}"[:64]},
        "storage": {"url": INFLUX_URL, "database": database, "spool_dir": str(tmp_path / "spool")},
        "api": {"host": "127.0.0.1", "port": 0, "operator_tokens": [TOKEN]},
    }


def unsafe_config(tmp_path: Path, city: Path, key: str, **kw: Any) -> dict[str, Any]:
    return _merge(safe_config(tmp_path, city, **kw), UNSAFE[key][1])


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    f = tmp_path / "config.yaml"
    f.write_text(yaml.safe_dump(config), encoding="utf-8")
    return f


def run_cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("URBAN_")}
    return subprocess.run([sys.executable, "-m", "supervisor", "run", "--config", str(config), *args],
                          check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=config.parent)


# ----------------------------------------------------------------------------- the validation function


def test_the_safe_base_passes_without_warning(tmp_path: Path, city: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="supervisor.config"):
        assert enforce_production_safety(load_settings(None, **safe_config(tmp_path, city))) == []
    assert caplog.records == []


def test_the_table_covers_every_waiver_and_the_docs_document_each() -> None:
    assert {name for name, _ in UNSAFE.values()} == set(Insecure) == set(INSECURE_COSTS)
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in security.splitlines() if line.startswith("|")]
    for key, (name, _) in UNSAFE.items():
        documented = re.sub(r"^(notifications\.channels|snmp\.credentials)\.[^.]+(\.|$)", r"\1.<name>\2", key)
        assert any(f"`{documented}`" in r and f"| `{name.value}` |" in r for r in rows), f"docs/security.md: {key}"
        assert name.value in readme


@pytest.mark.parametrize("key", sorted(UNSAFE))
def test_each_unsafe_configuration_is_refused_with_its_key(tmp_path: Path, city: Path, key: str) -> None:
    name, _ = UNSAFE[key]
    settings = load_settings(None, **unsafe_config(tmp_path, city, key))
    assert [(f.name, f.key) for f in insecurities(settings)] == [(name, key)]
    with pytest.raises(InsecureConfigError) as e:
        enforce_production_safety(settings, source="site.yaml")
    assert str(e.value).startswith(f"site.yaml: {key}: production refuses ")
    assert f"list {name.value} in allow_insecure" in str(e.value)
    assert MQTT_SECRET not in str(e.value) and TOKEN not in str(e.value)


@pytest.mark.parametrize("key", sorted(UNSAFE))
def test_each_waiver_passes_with_a_warning_naming_its_cost(tmp_path: Path, city: Path, key: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    name, _ = UNSAFE[key]
    settings = load_settings(None, **unsafe_config(tmp_path, city, key), allow_insecure=[name.value])
    with caplog.at_level(logging.WARNING, logger="supervisor.config"):
        waived = enforce_production_safety(settings)
    assert [(f.name, f.key) for f in waived] == [(name, key)]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"allow_insecure: {name.value}: {key}" in record.getMessage()
    assert INSECURE_COSTS[name] in record.getMessage()
    assert MQTT_SECRET not in caplog.text and TOKEN not in caplog.text


def test_every_refusal_is_listed_at_once() -> None:
    settings = load_settings(None, mqtt={"host": "broker.example"}, api={"host": "0.0.0.0"},
                             storage={"url": "http://db.example:8086"})
    with pytest.raises(InsecureConfigError) as e:
        enforce_production_safety(settings)
    keys = [line.split(": ")[1] for line in str(e.value).splitlines()]
    assert keys == ["mqtt.username", "mqtt.tls", "storage.url", "api.host", "city"]


def test_an_unneeded_waiver_is_reported(tmp_path: Path, city: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(None, **safe_config(tmp_path, city), allow_insecure=["open_api"])
    with caplog.at_level(logging.WARNING, logger="supervisor.config"):
        assert enforce_production_safety(settings) == []
    assert "open_api is listed but this configuration does not need it" in caplog.text


def test_an_unknown_waiver_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigFileError, match=r"allow_insecure\.1: Input should be 'anonymous_mqtt'"):
        load_settings(None, allow_insecure=["no_city", "no_tls"])


def test_allow_insecure_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBAN_ALLOW_INSECURE", '["anonymous_mqtt", "no_city"]')
    assert enforce_production_safety(load_settings(None)) != []


@pytest.mark.parametrize("mode", ["demo", "test"])
def test_demo_and_test_modes_need_no_secret(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(None, mode=mode, mqtt={"host": "broker.example"}, api={"host": "0.0.0.0"},
                             storage={"url": "http://db.example:8086"})
    assert len(insecurities(settings)) == 5
    with caplog.at_level(logging.WARNING, logger="supervisor.config"):
        assert enforce_production_safety(settings) == []
    assert caplog.records == []


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.10.0.3", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("localhost", True), ("LOCALHOST.", True), ("0.0.0.0", False), ("", False), ("::", False),
    ("10.0.0.8", False), ("128.0.0.1", False), ("::ffff:10.0.0.1", False), ("broker", False),
    ("localhost.example.org", False), ("127.0.0.1.nip.io", False),
])
def test_loopback_is_addresses_and_localhost_and_names_are_not_resolved(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_safe_alternatives_are_accepted(tmp_path: Path, city: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not parsed by the configuration")
    base = safe_config(tmp_path, city)
    for over in (
        {"mqtt": {"host": "broker.example", "tls": {}}},                      # TLS to a remote broker
        {"mqtt": {"username": None, "password": None, "tls": {"cert_file": str(cert)}}},  # certificate login
        {"storage": {"url": "https://db.example:8086"}},
        {"storage": {"url": "http://localhost:8086"}},
        {"api": {"host": "0.0.0.0", "viewer_tokens": [], "operator_tokens": [TOKEN]}},
        {"api": {"host": "0.0.0.0", "enabled": False, "operator_tokens": []}},
    ):
        assert insecurities(load_settings(None, **_merge(base, over))) == [], over


def test_credentials_in_a_url_are_never_echoed() -> None:
    settings = load_settings(None, storage={"url": "http://writer:hunter2-Pw@db.example:8086/write"})
    with pytest.raises(InsecureConfigError) as e:
        enforce_production_safety(settings)
    assert "storage.url: production refuses plain http:// to db.example" in str(e.value)
    assert "hunter2" not in str(e.value) and "writer" not in str(e.value)


class _Channel(BaseModel):
    name: str
    url: Annotated[str, ENDPOINT]


class _Notifications(BaseModel):
    channels: list[_Channel]
    fallback: Annotated[dict[str, str], ENDPOINT]


class _Future(BaseModel):
    notifications: _Notifications
    docs_url: str  # not an endpoint: not marked


def test_endpoint_walker_finds_marked_urls_at_any_depth() -> None:
    """A ``notifications`` section added later is covered by marking its URL fields ENDPOINT."""
    future = _Future(notifications=_Notifications(
        channels=[_Channel(name="a", url="https://x.example"), _Channel(name="b", url="http://y.example")],
        fallback={"ops": "http://127.0.0.1:9000"}), docs_url="http://docs.example")
    assert list(endpoint_urls(future)) == [
        ("notifications.channels.0.url", "https://x.example"),
        ("notifications.channels.1.url", "http://y.example"),
        ("notifications.fallback.ops", "http://127.0.0.1:9000"),
    ]
    assert list(endpoint_urls(Settings(mode="test"))) == [("storage.url", "http://127.0.0.1:8086")]


# ----------------------------------------------------------------------------- the real command line


@pytest.mark.parametrize("key", ["mqtt.username", "mqtt.tls", "storage.url", "api.host", "city"])
def test_run_exits_2_and_names_the_key(tmp_path: Path, city: Path, key: str) -> None:
    proc = run_cli(write(tmp_path, unsafe_config(tmp_path, city, key)), "--duration", "1")
    assert proc.returncode == 2, proc.stderr
    assert f"config.yaml: {key}: production refuses " in proc.stderr
    assert f"list {UNSAFE[key][0].value} in allow_insecure" in proc.stderr
    assert "Traceback" not in proc.stderr and MQTT_SECRET not in proc.stderr + proc.stdout
    assert "running;" not in proc.stderr


def test_no_api_means_the_api_exposure_is_not_checked(tmp_path: Path, city: Path) -> None:
    from supervisor.cli.run import load_safe_settings

    config = str(write(tmp_path, unsafe_config(tmp_path, city, "api.host")))
    with pytest.raises(InsecureConfigError, match=r"api\.host: production refuses"):
        load_safe_settings(config)
    assert load_safe_settings(config, api=False).api.enabled is False


def test_run_workers_refuses_before_starting_any_worker(tmp_path: Path, city: Path) -> None:
    proc = run_cli(write(tmp_path, unsafe_config(tmp_path, city, "mqtt.username")), "--workers", "2")
    assert proc.returncode == 2, proc.stderr
    assert "mqtt.username: production refuses anonymous MQTT" in proc.stderr
    assert "worker 0" not in proc.stderr


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A private Mosquitto (any credentials accepted) and a database of the shared InfluxDB."""
    influx = Influx()
    if not influx.ping():
        pytest.fail(f"InfluxDB is not reachable at {INFLUX_URL}")
    db = influx.create()
    try:
        with mosquitto(tmp_path / "broker") as broker:
            yield broker.port, db
    finally:
        influx.drop(db)


@pytest.mark.parametrize("key", sorted(UNSAFE))
def test_an_allowed_exception_really_starts_with_a_warning(tmp_path: Path, city: Path, key: str,
                                                           services: tuple[int, str]) -> None:
    if REMOTE_LOOKING in str(UNSAFE[key][1]) and not _resolves_to_loopback(REMOTE_LOOKING):
        pytest.skip(f"the host name {REMOTE_LOOKING!r} does not resolve to loopback here")
    port, db = services
    name, _ = UNSAFE[key]
    config = unsafe_config(tmp_path, city, key, mqtt_port=port, database=db)
    proc = run_cli(write(tmp_path, {**config, "allow_insecure": [name.value]}), "--duration", "3")
    assert proc.returncode == 0, proc.stderr
    assert f"WARNING supervisor.config: allow_insecure: {name.value}: {key}: running with " in proc.stderr
    assert "urban-supervisor: running; MQTT" in proc.stderr
    summary = yaml.safe_load(proc.stdout)  # the JSON summary printed at the end
    assert summary["mqtt"]["connects"] >= 1, summary["mqtt"]  # it did reach the broker
    assert MQTT_SECRET not in proc.stderr + proc.stdout and TOKEN not in proc.stderr + proc.stdout


def test_test_mode_really_starts_with_no_secret(tmp_path: Path, services: tuple[int, str]) -> None:
    port, db = services
    config = {"mode": "test", "data_dir": str(tmp_path / "var"), "mqtt": {"port": port},
              "storage": {"database": db, "spool_dir": str(tmp_path / "spool")}, "api": {"port": 0}}
    proc = run_cli(write(tmp_path, config), "--duration", "2")
    assert proc.returncode == 0, proc.stderr
    assert "allow_insecure" not in proc.stderr and "WARNING supervisor.config" not in proc.stderr
