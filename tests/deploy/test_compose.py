"""docker-compose.yml, the Dockerfile and the broker configuration agree with the supervisor.

Docker does not run here: the compose file is parsed and checked against the settings model
(supervisor/config.py), the files it mounts, .env.example and the Mosquitto configuration.
"""

from __future__ import annotations

import re
import types
import typing
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from supervisor.config import ENV_PREFIX, InsecureConfigError, Settings, enforce_production_safety, load_settings
from tests.deploy.compose import (
    CONTAINER_CONFIG,
    DOCKERFILE,
    MOSQUITTO_CONF,
    ROOT,
    acl_users,
    compose,
    conf_directives,
    env_example,
    environment,
    interpolate,
    port_targets,
    references,
)

SERVICES = {"mosquitto", "influxdb", "urban-supervisor", "grafana", "simulator"}
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET")


def filled_env() -> dict[str, str]:
    """.env.example with a made-up, valid secret wherever it leaves the value empty."""
    return {k: v or f"test-{k.lower().replace('_', '-')}-0123456789" for k, v in env_example().items()}


def service_env(name: str) -> dict[str, str]:
    env = filled_env()
    return {k: interpolate(v, env) for k, v in environment(compose()["services"][name]).items()}


def compose_strings() -> str:
    """Every string of the compose file (keys and values, comments excluded), one per line."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif node is not None:
            out.append(str(node))

    walk(compose())
    return "\n".join(out)


def dockerignore() -> set[str]:
    text = (ROOT / ".dockerignore").read_text()
    return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")}


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for v in service.get("volumes", []):
        parts = str(v).split(":")
        out.append((parts[0], parts[1]))
    return out


def _model_of(annotation: Any) -> Any:
    """The BaseModel or dict type inside an annotation such as ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
        return None
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return annotation
    return None


def is_settings_path(parts: list[str], model: Any = Settings) -> bool:
    if not parts:
        return True
    if typing.get_origin(model) is dict:
        _, value = typing.get_args(model)
        inner = _model_of(value)
        return len(parts) == 1 if inner is None else is_settings_path(parts[1:], inner)
    fields = model.model_fields
    name = parts[0].lower()
    if name not in fields:
        return False
    if len(parts) == 1:
        return True
    inner = _model_of(fields[name].annotation)
    return inner is not None and is_settings_path(parts[1:], inner)


# ----------------------------------------------------------------------------- services and env


def test_services_and_the_hosts_the_supervisor_uses() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    env = service_env("urban-supervisor")
    assert env["URBAN_MQTT__HOST"] in services
    url = urllib.parse.urlsplit(env["URBAN_STORAGE__URL"])
    assert url.hostname in services
    assert url.hostname == "influxdb" and url.port == 8086
    grafana_env = service_env("grafana")
    assert urllib.parse.urlsplit(grafana_env["INFLUX_URL"]).hostname == "influxdb"
    assert grafana_env["INFLUX_DB"] == env["URBAN_STORAGE__DATABASE"]


def test_every_urban_variable_is_a_settings_field() -> None:
    for name in ("urban-supervisor",):
        for key in environment(compose()["services"][name]):
            if key.startswith(ENV_PREFIX):
                parts = key[len(ENV_PREFIX):].split("__")
                assert is_settings_path(parts), f"{key} is no field of supervisor.config.Settings"
    # the walker itself rejects what is not a field
    assert not is_settings_path(["MQTT", "HOSTNAME"])
    assert is_settings_path(["DRIVERS", "cctv", "ENABLED"])


def test_simulator_settings_are_what_the_simulate_command_reads() -> None:
    sim = compose()["services"]["simulator"]
    assert sim["profiles"] == ["sim"]
    cmd = sim["command"]
    assert cmd[0] == "simulate"
    args = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert args["--host"] in compose()["services"]
    assert args["--username"] in acl_users()
    source = (ROOT / "supervisor" / "cli" / "simulate.py").read_text(encoding="utf-8")
    for flag in args:
        assert f'"{flag}"' in source, f"urban-supervisor simulate has no {flag}"
    for key in environment(sim):
        assert f'"{key}"' in source, f"urban-supervisor simulate does not read {key}"
    config = yaml.safe_load(CONTAINER_CONFIG.read_text())
    assert args["--city"] == config["city"], "simulator and supervisor must share the city file"


def test_container_config_validates_with_and_without_the_compose_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    plain = load_settings(CONTAINER_CONFIG)
    assert plain.mode == "production"
    for key, value in service_env("urban-supervisor").items():
        monkeypatch.setenv(key, value)
    s = load_settings(CONTAINER_CONFIG)
    env = filled_env()
    assert s.mqtt.host == "mosquitto" and s.mqtt.username == "supervisor"
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == env["MQTT_SUPERVISOR_PASSWORD"]
    assert s.storage.username == env["INFLUXDB_WRITE_USER"]
    assert s.storage.password is not None
    assert s.storage.password.get_secret_value() == env["INFLUXDB_WRITE_USER_PASSWORD"]
    assert [t.get_secret_value() for t in s.api.operator_tokens] == [env["URBAN_OPERATOR_TOKEN"]]
    assert s.storage.create_database is False  # the writer user cannot create databases
    assert str(s.storage.spool_dir).startswith(str(s.data_dir))
    # a deployment with the example's default-looking secret is refused by the settings
    monkeypatch.setenv("URBAN_MQTT__PASSWORD", "changeme")
    with pytest.raises(Exception, match="default password"):
        load_settings(CONTAINER_CONFIG)


def test_container_config_passes_the_production_checks_only_with_the_compose_environment(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """With compose's secrets the container starts, waiving only plain text on the private compose network."""
    import logging
    import os

    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    with pytest.raises(InsecureConfigError) as e:  # the image alone, without compose's environment
        enforce_production_safety(load_settings(CONTAINER_CONFIG))
    assert [line.split(": ")[1] for line in str(e.value).splitlines()] == ["mqtt.username", "api.host"]
    for key, value in service_env("urban-supervisor").items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.WARNING, logger="supervisor.config"):
        waived = enforce_production_safety(load_settings(CONTAINER_CONFIG))
    assert sorted((f.name.value, f.key) for f in waived) == [("plaintext_http", "storage.url"),
                                                            ("plaintext_mqtt", "mqtt.tls")]
    assert len(caplog.records) == 2 and all(r.levelno == logging.WARNING for r in caplog.records)
    # the waived hosts are services of this compose project, not machines elsewhere
    services = compose()["services"]
    env = service_env("urban-supervisor")
    assert env["URBAN_MQTT__HOST"] in services
    assert urllib.parse.urlsplit(env["URBAN_STORAGE__URL"]).hostname in services


def test_ports_match_the_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    env = service_env("urban-supervisor")
    listeners = [int(v.split()[0]) for v in conf_directives(MOSQUITTO_CONF)["listener"]]
    assert listeners == [int(env["URBAN_MQTT__PORT"])]
    assert port_targets(services["mosquitto"]) == listeners
    assert "1883" in " ".join(services["mosquitto"]["healthcheck"]["test"])
    assert services["influxdb"]["expose"] == ["8086"]
    assert "8086" in " ".join(services["influxdb"]["healthcheck"]["test"])
    assert port_targets(services["grafana"]) == [3000]
    assert "3000" in " ".join(services["grafana"]["healthcheck"]["test"])
    api_port = int(env["URBAN_API__PORT"])
    default_api_port = Settings.model_fields["api"].default_factory().port  # type: ignore[misc]
    assert api_port == default_api_port == 8080
    assert port_targets(services["urban-supervisor"]) == [api_port]
    assert f":{api_port}/health" in " ".join(services["urban-supervisor"]["healthcheck"]["test"])
    assert "8080" in DOCKERFILE.read_text() and env["URBAN_API__HOST"] == "0.0.0.0"


def test_healthchecks_and_dependencies() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and hc["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must give conditions"
        for dep, cond in deps.items():
            assert dep in services
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"
    assert set(services["urban-supervisor"]["depends_on"]) == {"mosquitto", "influxdb"}
    assert set(services["grafana"]["depends_on"]) == {"influxdb"}


def test_named_volumes_and_bind_mounts_exist() -> None:
    data = compose()
    declared = set(data["volumes"])
    for name, svc in data["services"].items():
        for source, _target in mounts(svc):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, missing from the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in ("mosquitto", "influxdb", "urban-supervisor", "grafana"):
        assert any(not s.startswith(".") for s, _ in mounts(data["services"][name])), f"{name}: no data volume"


def test_grafana_provisioning_mounts_match_the_provider() -> None:
    grafana = compose()["services"]["grafana"]
    targets = dict(mounts(grafana))
    assert targets["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert (ROOT / "grafana/provisioning/datasources/influxdb.yaml").is_file()
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/provider.yaml").read_text())
    (p,) = provider["providers"]
    assert targets["./grafana/dashboards"] == p["options"]["path"]
    home = PurePosixPath(environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == PurePosixPath(p["options"]["path"])
    assert (ROOT / "grafana/dashboards" / home.name).is_file()
    # every ${VAR} of the datasource file is set in the grafana container
    ds_text = (ROOT / "grafana/provisioning/datasources/influxdb.yaml").read_text()
    body = "\n".join(ln for ln in ds_text.splitlines() if not ln.lstrip().startswith("#"))
    used = {n for n, _, _ in references(body)}
    assert used and used <= set(environment(grafana))


# ----------------------------------------------------------------------------- secrets


def test_every_variable_is_defined_in_env_example() -> None:
    names = {n for n, _, _ in references(compose_strings())}
    example = env_example()
    assert names, "the compose file takes its settings from .env"
    missing = names - set(example)
    assert not missing, f"not in .env.example: {sorted(missing)}"
    # the compose file interpolates completely with a filled .env
    for svc in compose()["services"].values():
        for value in environment(svc).values():
            interpolate(value, filled_env())


def test_no_secret_is_committed() -> None:
    example = env_example()
    secret_keys = {k for k in example if any(w in k for w in SECRET_WORDS)}
    assert secret_keys
    for key in secret_keys:
        assert example[key] == "", f".env.example must leave {key} empty"
    for name, op, _ in references(compose_strings()):
        if name in secret_keys:
            assert op == ":?", f"${{{name}}} must be required (:?) so that compose refuses to start without it"
    for name, svc in compose()["services"].items():
        for key, value in environment(svc).items():
            if any(w in key for w in SECRET_WORDS):
                literal = re.sub(r"\$\{[^}]*\}", "", value).strip("[]\"' ")
                assert literal == "", f"{name}: {key} carries a literal value"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert {".env", ".git", ".venv"} <= dockerignore()


# ----------------------------------------------------------------------------- mosquitto


def test_mosquitto_queues_auth_and_persistence() -> None:
    d = conf_directives(MOSQUITTO_CONF)
    assert int(d["max_queued_messages"][0]) > 1000  # the stock 1000 silently drops QoS 1 messages
    assert int(d["max_queued_bytes"][0]) > 0  # bounded memory
    assert d["allow_anonymous"] == ["false"]
    assert d["persistence"] == ["true"]
    mosquitto = compose()["services"]["mosquitto"]
    targets = {t: s for s, t in mounts(mosquitto)}
    assert targets["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto/mosquitto.conf"
    (acl,) = d["acl_file"]
    assert targets[acl] == "./deploy/mosquitto/acl"
    (pw,) = d["password_file"]
    data_dir = next(t for s, t in mounts(mosquitto) if not s.startswith("."))
    assert PurePosixPath(pw).parent == PurePosixPath(data_dir)
    assert d["persistence_location"][0].rstrip("/") == data_dir
    script = "\n".join(mosquitto["command"])
    for user in acl_users():
        assert f"mosquitto_passwd -b {pw} {user} " in script, f"no password generated for ACL user {user}"
    assert script.rstrip().endswith("exec mosquitto -c /mosquitto/config/mosquitto.conf")


def test_acl_gives_each_user_its_topics_only() -> None:
    users = acl_users()
    assert set(users) == {"supervisor", "gateway", "simulator"}
    assert ("read", "city/#") in users["supervisor"]
    assert ("write", "city/+/+/+/cmd") in users["supervisor"]
    for user in ("gateway", "simulator"):
        assert ("read", "city/#") not in users[user]
        assert ("read", "city/+/+/+/cmd") in users[user]
        assert ("write", "city/+/+/+/telemetry") in users[user]


# ----------------------------------------------------------------------------- image


def test_dockerfile() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert froms == ["FROM python:3.11-slim"]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any("pip install -c constraints.txt ." in ln for ln in lines)
    assert 'ENTRYPOINT ["urban-supervisor"]' in lines
    cmd = next(ln for ln in lines if ln.startswith("CMD "))
    assert cmd == 'CMD ["run", "--config", "/etc/urban-supervisor/config.yaml"]'
    assert compose()["services"]["urban-supervisor"]["command"] == ["run", "--config",
                                                                  "/etc/urban-supervisor/config.yaml"]
    copies = [ln.split()[1:] for ln in lines if ln.startswith("COPY ")]
    for *sources, _dest in copies:
        for s in sources:
            assert (ROOT / s).exists(), f"COPY {s}: missing"
    assert ["deploy/urban-supervisor/config.yaml", "/etc/urban-supervisor/config.yaml"] in copies
    config = yaml.safe_load(CONTAINER_CONFIG.read_text())
    assert ["rules/examples", config["rules_dir"]] in copies
    assert any(config["city"] in ln and "write_city" in ln for ln in lines)
    ignored = dockerignore()
    for *sources, _ in copies:
        for s in sources:
            assert s.split("/")[0] not in ignored, f"COPY {s} but .dockerignore drops it"


def test_image_city_and_rules_make_a_supervisor(tmp_path: Path) -> None:
    """The city the Dockerfile generates and the rules it copies load together under the container config."""
    from simulators.city import write_city
    from supervisor.model import load_city
    from supervisor.runtime import Supervisor

    text = DOCKERFILE.read_text()
    m = re.search(r"write_city\('([^']+)', seed=(\d+), devices=(\d+)\)", text)
    assert m, "the Dockerfile generates the city with write_city(path, seed=…, devices=…)"
    config = yaml.safe_load(CONTAINER_CONFIG.read_text())
    assert m.group(1) == config["city"]
    city = write_city(tmp_path / "city.json", seed=int(m.group(2)), devices=int(m.group(3)))
    settings = load_settings(CONTAINER_CONFIG, city=str(city), rules_dir=str(ROOT / "rules" / "examples"),
                             data_dir=str(tmp_path / "var"), storage={"spool_dir": str(tmp_path / "spool")})
    sup = Supervisor(settings, model=load_city(city))
    assert sup.rules is not None and sup.model is not None
