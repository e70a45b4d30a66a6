"""``urban-supervisor bench``: measured figures, printed as JSON (stdout) and a table (stderr)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from supervisor.cli import EXIT_INVALID, EXIT_OK


def register(sub: Any) -> None:
    from supervisor.bench import scenarios

    p = sub.add_parser("bench", help="benchmarks: ingest, model, rules, ... (JSON on stdout, a table on stderr)")
    found = scenarios()
    p.add_argument("scenario", nargs="*", choices=[*found, "all", []], default=[],
                   help=f"scenarios to run (default: ingest model rules); any of: {', '.join(found)}")
    p.add_argument("--suite", choices=["default", "reliability", "all"], default=None,
                   help="a named group of scenarios (reliability: the fault and soak figures)")
    p.add_argument("--quick", action="store_true", help="small counts: a smoke test for CI, not figures")
    p.add_argument("--influx-url", default="http://127.0.0.1:8086", help="InfluxDB 1.x used by the scenarios")
    p.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE")
    for mod in found.values():
        add = getattr(mod, "add_arguments", None)
        if add is not None:
            add(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from supervisor.bench import scenarios
    from supervisor.bench.report import table

    found = scenarios()
    names: list[str] = list(args.scenario)
    if args.suite == "reliability":
        names += ["reliability"]
    elif args.suite == "all" or "all" in names:
        names = list(found)
    if not names:
        names = [n for n in ("ingest", "model", "rules") if n in found]
    names = [n for n in dict.fromkeys(names) if n != "all"]
    missing = [n for n in names if n not in found]
    if missing:
        print(f"urban-supervisor bench: unknown scenario(s): {', '.join(missing)}", file=sys.stderr)
        return EXIT_INVALID
    report: dict[str, Any] = {"quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name in names:
        t0 = time.monotonic()
        result = found[name].run(args)
        result["scenario_seconds"] = round(time.monotonic() - t0, 1)
        report[name] = result
        print(table(f"bench {name}", result), file=sys.stderr)
        print(file=sys.stderr)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return EXIT_OK
