"""The shared lighting building blocks (drivers/lighting.py) and the public kit's old name."""

from __future__ import annotations

import math

import pytest

import drivers._declarative as old_kit
from drivers import DecodeError, EncodeError, kit
from drivers.lighting import (
    level_command,
    mired_to_kelvin,
    percent_to_whole,
    percent_to_zigbee,
    switch_command,
    zigbee_level,
    zigbee_to_percent,
)


def test_the_old_private_name_re_exports_the_public_kit() -> None:
    assert old_kit.__all__ == kit.__all__
    for name in kit.__all__:
        assert getattr(old_kit, name) is getattr(kit, name), name


def test_zigbee_level_edges_and_rounding() -> None:
    assert zigbee_to_percent(0) == 0.0
    assert zigbee_to_percent(1) == 0.39  # 0.3937 to 2 decimals
    assert zigbee_to_percent(254) == 100.0
    assert percent_to_zigbee(0) == 0
    assert percent_to_zigbee(100) == 254
    assert percent_to_zigbee(0.01) == 1  # above 0 never rounds down to off
    assert percent_to_zigbee(99.9) == 254
    assert all(percent_to_zigbee(zigbee_to_percent(raw)) == raw for raw in range(255))


def test_whole_percent_never_rounds_a_lit_level_to_off() -> None:
    assert percent_to_whole(0) == 0
    assert percent_to_whole(0.2) == 1
    assert percent_to_whole(50.5) == 50  # banker's rounding, as Python's round
    assert percent_to_whole(100) == 100


def test_zigbee_level_read_from_a_payload() -> None:
    assert zigbee_level(None, "Dimmer") is None
    assert zigbee_level("", "Dimmer") is None
    assert zigbee_level("127", "Dimmer") == 50.0
    assert zigbee_level(254, "Dimmer") == 100.0
    assert zigbee_level(0, "Dimmer") == 0.0
    for bad in (-1, 255, 1000):
        with pytest.raises(DecodeError) as err:
            zigbee_level(bad, "Dimmer")
        assert err.value.reason == "out_of_range" and "0..254" in str(err.value)
    assert zigbee_level(255, "brightness", clamp_255=True) == 100.0
    with pytest.raises(DecodeError) as err:
        zigbee_level(256, "brightness", clamp_255=True)
    assert err.value.reason == "out_of_range"
    with pytest.raises(DecodeError) as err:
        zigbee_level(12.5, "brightness")
    assert err.value.reason == "bad_value"


def test_mired_to_kelvin() -> None:
    assert mired_to_kelvin(None, "CT") is None
    assert mired_to_kelvin(250, "CT") == 4000.0
    assert mired_to_kelvin("153", "CT") == 6535.9  # 1e6 / 153 to one decimal
    assert mired_to_kelvin(500, "CT") == 2000.0
    for bad in (0, -5):
        with pytest.raises(DecodeError) as err:
            mired_to_kelvin(bad, "CT")
        assert err.value.reason == "bad_value"
    with pytest.raises(DecodeError) as err:
        mired_to_kelvin(10, "CT")  # 100 000 K: outside the canonical colour temperature range
    assert err.value.reason == "out_of_range"


def test_set_level_check() -> None:
    assert level_command("d", 0) == 0.0 and type(level_command("d", 0)) is float
    assert level_command("d", 100) == 100.0
    assert level_command("d", 33.3) == 33.3
    for bad in (-0.1, 100.1, math.nan, math.inf, True, False):
        with pytest.raises(EncodeError, match=r"^d: "):
            level_command("d", bad)
    with pytest.raises(EncodeError, match="needs a number"):
        level_command("d", "50")  # type: ignore[arg-type]  # what a bad caller may send


def test_switch_check() -> None:
    assert switch_command("d", True) is True
    assert switch_command("d", False) is False
    for bad in (1, 0, 1.0):
        with pytest.raises(EncodeError, match="switch needs true or false"):
            switch_command("d", bad)


def test_identifier_check() -> None:
    assert kit.is_identifier("lamp-12.a:b_C")
    for bad in ("", "a b", "a/b", "a+b", "é", "lamp#1"):
        assert not kit.is_identifier(bad), bad
