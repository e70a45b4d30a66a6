"""``urban-supervisor rules``: check rule files, list the installed rule kinds.

``rules check DIR [--city FILE]`` validates every rule file of DIR (and, with a city file, that
every selector resolves to devices of the city) and prints one problem per line:
``file: rule ID: field.path: message``. Exit status 0 when valid, 2 otherwise. With a city, it
also says what the rule set puts in the ingest control lane (the inputs and lamps of commanding
rules) and warns, naming the rules, when that is most of the city's expected traffic.

``rules kinds`` prints the installed rule kinds (built-in and third-party entry points), one per
line: ``name  module  summary``; the reference of the built-in ones is ``rules/README.md``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_INVALID, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rules", help="rule engine tools (check rule files)")
    sub = parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="validate a directory of rule files",
        description="Validate every *.yaml rule file of DIR; print one problem per line; exit 0 or 2.",
    )
    check.add_argument("dir", metavar="DIR", help="directory of rule files")
    check.add_argument("--city", metavar="FILE", help="city file: also check that selectors resolve")
    check.set_defaults(func=run_check)
    kinds = sub.add_parser("kinds", help="list the installed rule kinds",
                           description="List the installed rule kinds (entry points urban_supervisor.rule_kinds).")
    kinds.set_defaults(func=run_kinds)


def run_kinds(args: argparse.Namespace) -> int:
    from rules import rule_kinds

    for name, kind in rule_kinds().items():
        summary = (kind.spec.__doc__ or "").strip().splitlines()
        print(f"{name:<20} {kind.spec.__module__:<32} {summary[0] if summary else ''}")
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    from rules import RuleFileError, load_rules

    topology = None
    if args.city:
        try:
            from supervisor.model import CityFileError, load_city
        except ImportError as exc:
            print(f"urban-supervisor rules: cannot check against a city: {exc}", file=sys.stderr)
            return EXIT_INVALID
        try:
            topology = load_city(args.city)
        except (CityFileError, OSError) as exc:
            print(f"{args.city}: {exc}", file=sys.stderr)
            return EXIT_INVALID
    try:
        ruleset = load_rules(args.dir, topology)
    except RuleFileError as exc:
        for issue in exc.issues:
            print(issue)
        return EXIT_INVALID
    kinds: dict[str, int] = {}
    for r in ruleset:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    where = f" against {args.city}" if args.city else ""
    print(f"{args.dir}: {len(ruleset)} rules OK{where} ({summary})")
    if topology is not None:
        print(_lane_report(ruleset, topology))
    return EXIT_OK


class _DryRun:
    """The commands a check would send (a schedule asks its lamps at load): counted, never sent."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, cmd: object) -> None:
        self.count += 1


def _lane_report(ruleset: Any, topology: Any) -> str:
    """The control lane this rule set makes (the same engine code as at load), and its warning."""
    from rules import RealClock, RuleEngine
    from supervisor.state.registry import StateRegistry

    engine = RuleEngine(topology, StateRegistry({}), _DryRun(), RealClock())
    engine.load(ruleset)
    plan = engine.lane
    share = engine.lane_share()
    alarm_only = f"; alarm-only, on the bulk path: {', '.join(plan.alarm_only)}" if plan.alarm_only else ""
    line = (f"control lane: {len(plan.devices)} devices, {share.share:.0%} of the expected traffic, "
            f"from {len(plan.by_rule)} commanding rules{alarm_only}")
    return line + (f"\nwarning: {share.warning()}" if share.too_large else "")
