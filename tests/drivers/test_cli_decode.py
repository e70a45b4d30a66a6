"""``urban-supervisor decode`` through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "urban-supervisor"
TRAFFIC = "city/north/traffic/det-001/telemetry"


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: pip install -e . --no-deps")
    proc = subprocess.run([str(SCRIPT), "decode", *args], input=stdin, capture_output=True, timeout=30,
                          check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_decode_stdin_prints_observations() -> None:
    r = cli("--driver", "road_sensor", "--topic", TRAFFIC, "-",
            stdin=b'{"ts": 1764115200.0, "flow": 420.0, "speed": "47.5"}')
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == [
        {"device": "det-001", "family": "traffic", "measure": "flow", "value": 420.0, "unit": "veh/h",
         "ts": 1764115200.0, "zone": "north"},
        {"device": "det-001", "family": "traffic", "measure": "speed", "value": 47.5, "unit": "km/h",
         "ts": 1764115200.0, "zone": "north"},
    ]
    assert r.stderr == ""


def test_decode_file_with_events(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(b'{"index": 3, "alarms": "leak,burst"}\n')
    r = cli("--driver", "water_meter", "--topic", "city/east/water/0042/telemetry", str(f))
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert [o.get("measure") for o in out[:2]] == ["index", "alarms"]
    assert out[1]["value"] == "LEAK,BURST" and out[1]["device"] == "0042"
    assert [(o["event"], o["data"]) for o in out[2:]] == [("alarm", {"token": "LEAK"}), ("alarm", {"token": "BURST"})]


def test_decode_cabinet_channels() -> None:
    r = cli("--driver", "lighting_cabinet", "--topic", "city/c/lighting/cab/telemetry",
            stdin=b'{"power": 10, "circuits": [{"id": "1", "on": "ON"}]}')
    assert r.returncode == 0, r.stderr
    assert [(o["measure"], o.get("channel")) for o in lines(r.stdout)] == [("power", None), ("on", "1")]


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (("--driver", "nope", "--topic", TRAFFIC), b"{}", ["unknown driver", "nope", "road_sensor"]),
        (("--driver", "cctv", "--topic", TRAFFIC), b'{"flow": 1}', ["cctv", TRAFFIC, "does not claim"]),
        (("--driver", "road_sensor", "--topic", TRAFFIC), b'{"flow": NaN}', ["road_sensor", TRAFFIC, "invalid_json"]),
        (("--driver", "road_sensor", "--topic", TRAFFIC), b'{"occupancy": 101}', ["road_sensor", "out_of_range"]),
        (("--driver", "road_sensor", "--topic", TRAFFIC, "/nonexistent/p.json"), b"", ["cannot read"]),
        (("--all", "--topic", "other/topic"), b"{}", ["no installed driver", "other/topic"]),
    ],
)
def test_decode_refusals_exit_2(args: tuple[str, ...], stdin: bytes, words: list[str]) -> None:
    r = cli(*args, stdin=stdin)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr


def test_decode_all_names_the_drivers() -> None:
    r = cli("--all", "--topic", "city/c/cctv/cam-1/event", stdin=b'{"type": "Motion", "score": 0.5}')
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == [{"event": "motion", "device": "cam-1", "family": "cctv", "ts": None, "zone": "c",
                                "data": {"score": 0.5}, "driver": "cctv"}]
    assert "decoded by cctv" in r.stderr


def test_decode_all_reports_refusal() -> None:
    r = cli("--all", "--topic", "city/c/cctv/cam-1/event", stdin=b'{"score": 0.5}')
    assert r.returncode == 2
    assert "cctv" in r.stderr and "missing_field" in r.stderr and "decoded by none" in r.stderr


def test_decode_needs_a_driver_choice() -> None:
    r = cli("--topic", TRAFFIC)
    assert r.returncode == 2 and "--driver" in r.stderr


def test_driver_options_are_passed_with_option_flags(tmp_path: Path) -> None:
    """FIWARE leaves power units to the deployment: without the options the payload is refused."""
    payload = tmp_path / "light.json"
    payload.write_text('{"id": "streetlight:1", "type": "Streetlight", "powerConsumption": 90}')
    base = ("--driver", "fiware", "--topic", "fiware/Streetlight/streetlight:1", str(payload))
    refused = cli(*base)
    assert refused.returncode == 2 and "unknown_unit" in refused.stderr
    ok = cli(*base, "-o", "power_unit=W", "-o", "energy_unit=kWh")
    assert ok.returncode == 0, ok.stderr
    assert any(r["measure"] == "power" and r["value"] == 90.0 and r["unit"] == "W" for r in lines(ok.stdout))
    bad = cli(*base, "-o", "power_unit")
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr
