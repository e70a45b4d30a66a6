"""``bench model``: load time, memory and query latency of the layered network model.

Generates cities of 100,000 and 1,000,000 devices (10,000 with ``--quick``), writes them to a file,
loads them in a fresh process (so that each figure is that city's alone), and times impact,
root-cause and geography queries (see ``supervisor.model.model_benchmark``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

NAME = "model"
HELP = "network model: load time, RSS and impact-query latency for large cities"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model-devices", type=int, nargs="*", default=None,
                   help="city sizes (default 100000 1000000; quick 10000)")


def _python(code: str) -> tuple[str | None, str]:
    """Run ``code`` in a fresh interpreter; (last stdout line, error) ."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr else f"exit {proc.returncode}"
    return proc.stdout.strip().splitlines()[-1], ""


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = args.model_devices or ([10_000] if args.quick else [100_000, 1_000_000])
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="urban-bench-model-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"city-{int(n)}.json"
            # generate in one process, load in another: the load's peak RSS is then its own
            gen, err = _python("import json, time; from simulators.city import write_city; t0 = time.perf_counter(); "
                               f"write_city({str(path)!r}, seed=1, devices={int(n)}); "
                               "print(json.dumps(time.perf_counter() - t0))")
            if gen is None:
                out[str(n)] = {"error": f"generation: {err}"}
                continue
            res, err = _python("import json; from supervisor.model import model_benchmark; "
                               f"print(json.dumps(model_benchmark({int(n)}, path={str(path)!r})))")
            if res is None:
                out[str(n)] = {"error": err}
                continue
            out[str(n)] = {"generate_write_s": round(float(gen), 3), **json.loads(res)}
            path.unlink()
    return out
