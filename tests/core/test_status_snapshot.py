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


def test_the_loop_writes_the_rest_of_a_snapshot_a_step_per_pass_between_checks(tmp_path: Path) -> None:
    n = 3 * SNAPSHOT_SLICE + 1
    work, out, _ = _work(tmp_path, n, 100.0)
    work._next_health = work._next_save = float("inf")  # only the check and the snapshot
    work.run()  # the first check starts the snapshot and writes its first step
    assert len(out.lines) == 2 * SNAPSHOT_SLICE, "the check's step, then the loop's"
    work.run()
    work.run()
    assert _devices(out.lines) == [f"d{i}" for i in range(n)]
    work.run()
    assert len(out.lines) == n, "done until the next snapshot is due"


def test_staleness_is_not_judged_while_a_backlog_drains(tmp_path: Path) -> None:
    work, _, _ = _work(tmp_path, 0, 0.0)
    state = work.state = StateRegistry({}, stale_factor=1.0, default_interval=1.0)
    for d in ("d0", "d1"):
        state.register(d, "lighting", "z", now=0.0)
    behind = [120.0]
    work.behind = lambda: behind[0]
    work._check(10.0)
    assert work.stale_checks_held == 1 and {d.status for d in state} == {"ok"}
    behind[0] = 0.0  # caught up (or nothing waits): the silent devices are stale
    work._check(11.0)
    assert {d.status for d in state} == {"stale"}
