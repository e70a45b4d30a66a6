"""The quiet rules are configured in the YAML file (``alarms:``) and reach the alarm manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.alarms._manager import FLAP_WINDOW, RECOVERY_GRACE_INTERVALS
from supervisor.config import ConfigFileError, Settings, load_settings
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.model._small import small_city


def _settings(tmp_path: Path, **alarms: object) -> Settings:
    return load_settings(None, mode="test", alarms=alarms, data_dir=str(tmp_path),
                         storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3"),
                                  "spool_dir": str(tmp_path / "spool")})


def test_the_settings_reach_the_manager(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flap_window=60, recovery_grace_intervals=1.5)
    sup = Supervisor(settings, model=city_from_dict(small_city()))
    try:
        assert sup.alarms is not None
        assert (sup.alarms.flap_window, sup.alarms.recovery_grace_intervals) == (60.0, 1.5)
    finally:
        sup.stop(timeout=5.0)  # never started: nothing connected


def test_the_defaults_are_the_configurations(tmp_path: Path) -> None:
    alarms = _settings(tmp_path).alarms
    assert (alarms.flap_window, alarms.recovery_grace_intervals) == (FLAP_WINDOW, RECOVERY_GRACE_INTERVALS)


@pytest.mark.parametrize(("key", "value"), [("flap_window", -1), ("recovery_grace_intervals", -2),
                                            ("flap_window", "soon"), ("quiet", 1)])
def test_bad_values_are_a_clear_config_error(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ConfigFileError, match=f"alarms.{key}"):
        _settings(tmp_path, **{key: value})
