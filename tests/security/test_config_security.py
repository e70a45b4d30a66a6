"""Secrets in the configuration: refused defaults outside demo mode, never echoed.

Complements tests/core/test_config.py (one default password of mqtt.password).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import DEFAULT_PASSWORDS, ConfigFileError, load_settings
from supervisor.runtime import Supervisor

SECRET_KEYS = {
    "mqtt.password": lambda pw: {"mqtt": {"username": "supervisor", "password": pw}},
    "storage.password": lambda pw: {"storage": {"password": pw}},
    "storage.token": lambda pw: {"storage": {"token": pw}},
}
VARIANTS = [*sorted(DEFAULT_PASSWORDS), "  ChangeMe ", "ADMIN", "\tsecret\n", "   "]


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
@pytest.mark.parametrize("pw", VARIANTS)
def test_production_refuses_empty_and_default_secrets(key: str, pw: str) -> None:
    with pytest.raises(ConfigFileError) as e:
        load_settings(None, **SECRET_KEYS[key](pw))
    assert f"{key} is empty or a default password" in str(e.value)
    if pw.strip().lower() not in ("", "password", "secret"):  # words of the message itself
        assert pw.strip() not in str(e.value)
    for mode in ("demo", "test"):
        load_settings(None, mode=mode, **SECRET_KEYS[key](pw))


def test_a_real_secret_is_accepted_and_hidden() -> None:
    s = load_settings(None, mqtt={"username": "supervisor", "password": "x7-Long-Random-Secret"},
                      storage={"token": "t0ken-Long-Random-Value"})
    assert s.mqtt.password is not None and s.mqtt.password.get_secret_value() == "x7-Long-Random-Secret"
    for text in (repr(s), str(s), str(s.model_dump())):
        assert "x7-Long" not in text and "t0ken-Long" not in text


def test_secret_from_environment_is_refused_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBAN_MQTT__USERNAME", "supervisor")
    monkeypatch.setenv("URBAN_MQTT__PASSWORD", "changeme")
    with pytest.raises(ConfigFileError) as e:
        load_settings(None)
    assert "mqtt.password is empty or a default password" in str(e.value)
    assert "changeme" not in str(e.value)
    assert "URBAN_MQTT__PASSWORD" in str(e.value)  # the override is named, not its value


@pytest.mark.parametrize("key", ["viewer_tokens", "operator_tokens"])
def test_production_refuses_short_api_tokens(key: str) -> None:
    with pytest.raises(ConfigFileError, match=f"api.{key}: tokens must be at least 16 characters") as e:
        load_settings(None, api={key: ["short-token-123"]})
    assert "short-token-123" not in str(e.value)
    load_settings(None, api={key: ["a-token-of-16-ch"]})


def test_username_and_password_go_together() -> None:
    with pytest.raises(ConfigFileError, match="username and password go together"):
        load_settings(None, mqtt={"username": "supervisor"})
    with pytest.raises(ConfigFileError, match="username and password go together"):
        load_settings(None, mqtt={"password": "x7-Long-Random-Secret"})


def test_secrets_file_values_are_not_echoed_on_other_errors(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  username: supervisor\n  password: x7-Long-Random-Secret\n  port: 0\n")
    with pytest.raises(ConfigFileError) as e:
        load_settings(f)
    assert "mqtt.port" in str(e.value) and "x7-Long" not in str(e.value)


@pytest.mark.parametrize("key", ["ca_file", "cert_file"])
def test_missing_tls_files_give_a_precise_error(tmp_path: Path, key: str) -> None:
    missing = tmp_path / "nope" / f"{key}.pem"
    tls = {key: str(missing)}
    with pytest.raises((ConfigFileError, ValueError)) as e:
        s = load_settings(None, mode="test", mqtt={"tls": tls},
                          storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "s.sqlite3")})
        Supervisor(s)
    assert f"mqtt.tls.{key}" in str(e.value) and str(missing) in str(e.value)
