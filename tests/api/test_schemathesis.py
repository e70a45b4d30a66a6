"""Schemathesis (a fuzzer no one here wrote) against the live API of a supervisor with a city.

The supervisor has the network model, the example rules and every device registered, and its API
is served by the real :class:`ApiServer` over HTTP. Schemathesis reads the served OpenAPI document
and runs every phase (examples, coverage, fuzzing, stateful) with every check, once with an
operator token and once with a viewer token, with a fixed seed and a bounded number of examples.
Zero failures is the bar: a failure prints Schemathesis's own report (with a curl line to replay).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.city import generate_city
from supervisor.api import ApiServer
from supervisor.api.limits import Limits
from supervisor.config import ApiConfig
from supervisor.model import city_from_dict
from supervisor.snmp.config import SnmpConfig
from supervisor.snmp.service import SnmpService
from tests.api.conftest import OPERATOR, VIEWER, make_city_supervisor

SEED = 20261203
MAX_EXAMPLES = 12  # per operation and phase: the whole run stays well under a minute
PHASES = "examples,coverage,fuzzing,stateful"
TIMEOUT_S = 300  # a hung run fails the test instead of the suite
CONFIG = Path(__file__).with_name("schemathesis.toml")  # what JSON Schema cannot say about our bodies

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    city = generate_city(devices=40, seed=1)
    model = city_from_dict(city)
    tmp = tmp_path_factory.mktemp("st")
    sup = make_city_supervisor(tmp, model)
    city_file = tmp / "city.json"  # POST /model/reload reads it again (an empty diff each time)
    city_file.write_text(json.dumps(city))
    sup.settings = sup.settings.model_copy(update={"city": city_file})
    # every optional part configured, SNMP too (no switch has a mgmt address: a drift check of nothing),
    # so that 503 "not configured" is never the answer (tests/snmp test it)
    sup.snmp = SnmpService(SnmpConfig(enabled=True), model, submit=lambda lines: None, observe=lambda seen: None)
    sup.snmp.check_drift()
    cfg = ApiConfig(host="127.0.0.1", port=0, viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    # the rate limit is exercised by test_limits; here it would only turn most writes into 429s
    server = ApiServer(sup, cfg, limits=Limits(writes_per_second=10_000.0, write_burst=10_000)).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def _run(base: str, token: str, workdir: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    st = Path(sys.executable).with_name("st")
    cmd = [
        str(st), "--config-file", str(CONFIG), "run", f"{base}/api/v1/openapi.json",
        "--checks", "all",
        "--phases", PHASES,
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "10",
        "-H", f"Authorization: Bearer {token}",
        "--no-color",
    ]
    started = time.monotonic()
    # cwd: Schemathesis keeps a cache directory where it runs
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=workdir)
    return done, time.monotonic() - started


def _cases(output: str) -> int:
    """Test cases Schemathesis sent, from its summary (``Test cases: 735 generated, ...``)."""
    found = re.search(r"Test cases:\s+(\d+) generated", output)
    assert found is not None, output[-5_000:]
    return int(found.group(1))


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_schemathesis_finds_nothing(live_api: str, role: str, tmp_path: Path) -> None:
    token = OPERATOR if role == "operator" else VIEWER
    done, took = _run(live_api, token, tmp_path)
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    for phase in PHASES.split(","):  # each phase ran (the examples are the request models' own)
        assert re.search(rf"✅ {phase.capitalize()}\b", done.stdout), f"phase {phase} did not pass:\n{done.stdout}"
    cases = _cases(done.stdout)
    print(f"schemathesis ({role} token): {cases} cases in {took:.1f} s")
    assert cases > 100, f"schemathesis ran only {cases} cases: the run did not reach the API"
