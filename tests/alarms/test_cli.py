"""``urban-supervisor alarms`` and ``maintenance`` against the live API of a supervisor with a city."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.city import generate_city
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, make_city_supervisor, served_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Supervisor, str]]:
    model = city_from_dict(generate_city(devices=40, seed=1))
    sup = make_city_supervisor(tmp_path, model)
    with served_api(sup) as url:
        yield sup, url


def cli(url: str, *argv: str, token: str | None = OPERATOR, token_file: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("URBAN_API_TOKEN", "URBAN_API_URL")}
    if token is not None:
        env["URBAN_API_TOKEN"] = token
    extra = ["--token-file", str(token_file)] if token_file is not None else []
    return subprocess.run([sys.executable, "-m", "supervisor", *argv, "--url", url, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_alarms_list_ack_shelve_comment(live: tuple[Supervisor, str], tmp_path: Path) -> None:
    sup, url = live
    assert sup.model is not None and sup.alarms is not None
    cam = next(d.id for d in sup.model.devices.values() if d.kind == "camera")
    with sup.lock:
        sup.alarms.update({cam}, time.time())
    (alarm,) = sup.lifecycle.active()
    out = cli(url, "alarms", "list", token=VIEWER)
    assert out.returncode == 0, out.stderr
    assert "1 alarm(s), 1 active" in out.stdout and alarm.id in out.stdout and cam in out.stdout
    assert cli(url, "alarms", "ack", alarm.id, "--user", "alice", token=VIEWER).returncode == 1  # 403
    token_file = tmp_path / "token"
    token_file.write_text(OPERATOR + "\n", encoding="utf-8")
    out = cli(url, "alarms", "ack", alarm.id, "--user", "alice", token=None, token_file=token_file)
    assert out.returncode == 0 and "acknowledged" in out.stdout, out.stderr
    assert sup.lifecycle.active()[0].acked_by == "alice (operator#1)"
    assert cli(url, "alarms", "shelve", alarm.id, "--until", "2h", "--reason", "crew", "--user", "bob").returncode == 0
    assert cli(url, "alarms", "comment", alarm.id, "on site", "--user", "bob").returncode == 0
    assert "shelved until" in cli(url, "alarms", "list", "--state", "shelved").stdout
    out = cli(url, "alarms", "ack", "AL-nope-1", "--user", "alice")
    assert out.returncode == 1 and "404" in out.stderr
    out = cli(url, "alarms", "list", token=None)
    assert out.returncode == 2 and "URBAN_API_TOKEN" in out.stderr


def test_maintenance_add_list_remove(live: tuple[Supervisor, str]) -> None:
    sup, url = live
    assert sup.model is not None
    zone = next(iter(sup.model.zones))
    out = cli(url, "maintenance", "add", zone, "--end", "2h", "--reason", "resurfacing", "--user", "alice")
    assert out.returncode == 0, out.stderr
    wid = out.stdout.split()[0]
    assert wid in cli(url, "maintenance", "list", token=VIEWER).stdout
    out = cli(url, "maintenance", "add", zone, "--start", "2h", "--end", "1h", "--reason", "x", "--user", "a")
    assert out.returncode == 2 and "before it starts" in out.stderr
    out = cli(url, "maintenance", "add", "nowhere", "--end", "1h", "--reason", "x", "--user", "a")
    assert out.returncode == 2 and "unknown element" in out.stderr
    assert cli(url, "maintenance", "remove", wid).returncode == 0
    assert cli(url, "maintenance", "remove", wid).returncode == 1
    assert [w.id for w in sup.lifecycle.windows()] == []
