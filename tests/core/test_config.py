from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import ConfigFileError, load_settings


def test_defaults_are_valid() -> None:
    s = load_settings(None)
    assert s.mqtt.protocol == "5" and s.mqtt.qos == 1 and s.mqtt.clean_start is False


def test_error_names_file_key_and_problem(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  port: 70000\n")
    with pytest.raises(ConfigFileError) as e:
        load_settings(f)
    assert f"{f}: mqtt.port: Input should be less than or equal to 65535" in str(e.value)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("storage:\n  bakend: sqlite\n")
    with pytest.raises(ConfigFileError, match=r"storage\.bakend: Extra inputs are not permitted"):
        load_settings(f)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  host: [unclosed\n")
    with pytest.raises(ConfigFileError, match=r"line \d+, column \d+: invalid YAML"):
        load_settings(f)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  host: from-file\n  port: 1884\n")
    monkeypatch.setenv("URBAN_MQTT__HOST", "from-env")
    s = load_settings(f)
    assert s.mqtt.host == "from-env" and s.mqtt.port == 1884


def test_production_refuses_default_passwords_and_never_echoes_them(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  username: sup\n  password: changeme\n")
    with pytest.raises(ConfigFileError) as e:
        load_settings(f)
    assert "mqtt.password is empty or a default password" in str(e.value)
    assert "changeme" not in str(e.value)
    assert load_settings(f, mode="demo").mqtt.password is not None


def test_v2_backend_needs_org_bucket_token(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("storage:\n  backend: influx-v2\n  org: city\n")
    with pytest.raises(ConfigFileError, match="backend influx-v2 needs bucket, token"):
        load_settings(f)


def test_secrets_do_not_appear_in_repr() -> None:
    s = load_settings(None, mode="test", storage={"token": "s3cr3t-token-value", "password": "p4ss-word-xyz"})
    assert "s3cr3t" not in repr(s) and "p4ss" not in repr(s)
