"""The status snapshot of every device (the Grafana map's rows): at the first status check, then every
``state.snapshot_interval``, in slices so that the pipeline thread never stops for a whole city."""

from __future__ import annotations

from pathlib import Path

from supervisor.config import load_settings
from supervisor.service.periodic import SNAPSHOT_SLICE, PeriodicWork
from supervisor.service.rulestate import RuleStateFile
from supervisor.state.registry import StateRegistry
from supervisor.storage import parse_line


class _Lines:
    """What the periodic work submits (the writer's only method it calls here)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def submit(self, lines: list[bytes], *, block: bool = True) -> None:
        self.lines.extend(lines)


def _work(tmp_path: Path, devices: int, interval: float) -> tuple[PeriodicWork, _Lines, StateRegistry]:
    settings = load_settings(None, mode="test", data_dir=str(tmp_path),
                             state={"check_interval": 1.0, "snapshot_interval": interval})
    state = StateRegistry({}, default_interval=1e9)
    for i in range(devices):
        state.register(f"d{i}", "lighting", "z", now=0.0)
    out = _Lines()
    work = PeriodicWork(settings, state, out, health=None, rule_state=RuleStateFile(tmp_path / "s"),  # type: ignore[arg-type]
                        clock=lambda: 0.0)
    work.position_of = lambda dev: (2.0, 48.0 + int(dev[1:]) * 1e-6)
    return work, out, state


def _devices(lines: list[bytes]) -> list[str]:
    return [parse_line(line).tags["device"] for line in lines]


def test_snapshot_covers_every_device_in_slices_then_waits_for_the_interval(tmp_path: Path) -> None:
    n = 2 * SNAPSHOT_SLICE + 7
    work, out, _ = _work(tmp_path, n, 100.0)
    work._check(0.0)
    assert _devices(out.lines) == [f"d{i}" for i in range(SNAPSHOT_SLICE)]
    work._check(1.0)
    work._check(2.0)
    assert _devices(out.lines) == [f"d{i}" for i in range(n)]
    p = parse_line(out.lines[-1])
    assert p.fields["lat"] == 48.0 + (n - 1) * 1e-6 and p.fields["status"] == "ok" and p.ts_ms == 2000
    work._check(50.0)
    assert len(out.lines) == n  # not due yet
    work._check(100.0)
    assert len(out.lines) == n + SNAPSHOT_SLICE  # the next snapshot starts


def test_status_changes_carry_positions_and_zero_interval_snapshots_only_at_start(tmp_path: Path) -> None:
    work, out, state = _work(tmp_path, 3, 0.0)
    work._check(0.0)
    assert len(out.lines) == 3
    from drivers import Reading

    ch = state.update(Reading("d1", "lighting", {"online": False}), 5.0, 5.0)
    assert ch is not None
    work.on_status([ch])
    work._check(1e6)
    (line,) = out.lines[3:]  # the change only: no second snapshot
    p = parse_line(line)
    assert (p.tags["device"], p.fields["status"], p.fields["lat"], p.fields["lon"]) == ("d1", "fault", 48.000001, 2.0)
