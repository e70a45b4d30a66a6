from __future__ import annotations

from drivers import Reading
from supervisor.state.registry import FAULT, OK, STALE, StateRegistry


def _reading(device: str, family: str = "traffic", **values: object) -> Reading:
    return Reading(device=device, family=family, values=dict(values), zone="z1")  # type: ignore[arg-type]


def test_device_turns_stale_after_interval_times_factor_and_recovers() -> None:
    reg = StateRegistry({"traffic": 10.0}, stale_factor=3)
    assert reg.update(_reading("rs-1", flow=100.0), now=0.0, ts=0.0) is None
    assert reg.check(29.0) == []
    changes = reg.check(31.0)
    assert [(c.device, c.old, c.new) for c in changes] == [("rs-1", OK, STALE)]
    assert reg.check(40.0) == []  # reported once only
    back = reg.update(_reading("rs-1", flow=90.0), now=41.0, ts=41.0)
    assert back is not None and (back.old, back.new) == (STALE, OK)
    assert reg.last_value("rs-1", "flow") == 90.0


def test_a_reading_that_reports_a_fault_sets_fault_status() -> None:
    reg = StateRegistry({"cctv": 60.0})
    reg.update(_reading("cam-1", "cctv", online=True, fps=25.0), 0.0, 0.0)
    ch = reg.update(_reading("cam-1", "cctv", online=False, fps=0.0), 1.0, 1.0)
    assert ch is not None and ch.new == FAULT and ch.reason == "offline"
    ch = reg.update(_reading("cam-1", "cctv", online=True, tamper=True), 2.0, 2.0)
    assert ch is None and reg.get("cam-1").fault == "tamper"  # type: ignore[union-attr]
    ch = reg.update(_reading("cam-1", "cctv", online=True, tamper=False), 3.0, 3.0)
    assert ch is not None and ch.new == OK


def test_registered_devices_that_never_report_go_stale() -> None:
    reg = StateRegistry({"water": 900.0}, stale_factor=2)
    reg.register("wm-1", "water", "z2", now=0.0)
    assert reg.check(1799.0) == []
    assert [c.device for c in reg.check(1801.0)] == ["wm-1"]
    assert reg.not_ok() == {"wm-1"}
    assert reg.counts()[("water", "z2")][STALE] == 1


def test_channel_readings_keep_values_per_circuit_without_touching_status() -> None:
    reg = StateRegistry({"lighting": 300.0})
    r = Reading(device="cab-1", family="lighting", values={"level": 60.0, "on": True}, channel="2", zone="z1")
    assert reg.update(r, 0.0, 0.0) is None
    assert reg.last_value("cab-1", "level@2") == 60.0


def test_status_counts_per_family_and_zone() -> None:
    """``counts()`` (the fleet points of each health tick): every device once, by family, zone, status."""
    from supervisor.state.registry import StateRegistry

    r = StateRegistry({})
    for i in range(12):
        r.register(f"d{i}", "lighting" if i % 3 else "traffic", f"z{i % 2}", 60.0, 0.0)
    r.check(10_000.0)  # all silent since 0: stale
    r.register("fresh", "lighting", "z0", 60.0, 10_000.0)
    c = r.counts()
    assert {k: dict(v) for k, v in c.items()} == {
        ("traffic", "z0"): {"stale": 2}, ("traffic", "z1"): {"stale": 2},
        ("lighting", "z0"): {"stale": 4, "ok": 1}, ("lighting", "z1"): {"stale": 4},
    }
