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
from typing import Any

NAME = "model"
HELP = "network model: load time, RSS and impact-query latency for large cities"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model-devices", type=int, nargs="*", default=None,
                   help="city sizes (default 100000 1000000; quick 10000)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = args.model_devices or ([10_000] if args.quick else [100_000, 1_000_000])
    out: dict[str, Any] = {}
    for n in sizes:
        code = ("import json, sys; from supervisor.model import model_benchmark; "
                f"print(json.dumps(model_benchmark({int(n)})))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            out[str(n)] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else f"exit {proc.returncode}"}
            continue
        out[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out
