"""``urban-supervisor model``: check a city file, query impact and pooling, generate a city.

- ``model check FILE``: one problem per line (``file: element: message``); exit 0 when valid, 2 if not.
- ``model impact FILE ELEMENT``: what fails if ELEMENT fails, JSON on stdout.
- ``model shared FILE``: the elements that carry two services or more, JSON on stdout.
- ``model generate --devices N --seed S OUT``: write a generated city file.
- ``model reload``: the running supervisor reads its city file again (``POST /api/v1/model/reload``,
  operator token); prints the diff; exit 2 when the file is refused (the running model is kept).
- ``model drift --config FILE [--json]``: the links the switches report over LLDP against the city
  file's uplinks (missing, miscabled, unexpected); exit 0 when none, 1 when drift, 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_INVALID, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "model",
        help="check a city file, query impact and shared infrastructure, generate a city",
        description="The layered network model of the city (see docs/city-file.md).",
    )
    sub = parser.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    check = sub.add_parser("check", help="validate a city file; print one problem per line")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_check)

    impact = sub.add_parser("impact", help="what fails if ELEMENT fails (JSON)")
    impact.add_argument("file", metavar="FILE")
    impact.add_argument("element", metavar="ELEMENT")
    impact.set_defaults(func=_impact)

    shared = sub.add_parser("shared", help="elements carrying two services or more (JSON)")
    shared.add_argument("file", metavar="FILE")
    shared.set_defaults(func=_shared)

    gen = sub.add_parser("generate", help="write a seeded, consistent city file")
    gen.add_argument("--devices", type=int, default=1000, metavar="N", help="number of devices (>= 5)")
    gen.add_argument("--seed", type=int, default=1, metavar="S")
    gen.add_argument("--zones", type=int, default=None, metavar="Z", help="number of zones (default: by size)")
    gen.add_argument("--name", default="Simville")
    gen.add_argument("--air-per-zone", type=int, default=None, metavar="A",
                     help="air-quality stations per zone, part of --devices (default 2)")
    gen.add_argument("out", metavar="OUT", help="output file (.json)")
    gen.set_defaults(func=_generate)

    from ._api import add_connection_options

    reload = sub.add_parser("reload", help="the running supervisor reloads its city file (API, operator token)")
    add_connection_options(reload)
    reload.set_defaults(func=_reload)

    drift = sub.add_parser("drift", help="LLDP neighbours of the switches against the designed uplinks")
    drift.add_argument("--config", required=True, metavar="FILE",
                       help="the supervisor's configuration: its city and snmp.credentials")
    drift.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    drift.set_defaults(func=_drift)


def _drift(args: argparse.Namespace) -> int:
    from supervisor.config import ConfigFileError, load_settings
    from supervisor.snmp.drift import drift
    from supervisor.snmp.poller import CredentialsError, targets_from_model

    try:
        settings = load_settings(args.config)
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    if settings.city is None:
        print(f"{args.config}: city: not set (the designed network is the city file)", file=sys.stderr)
        return EXIT_INVALID
    model = _load(str(settings.city))
    if model is None:
        return EXIT_INVALID
    try:
        targets = targets_from_model(model, settings.snmp)
    except CredentialsError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    found, silent = drift(model, targets, settings.snmp)
    if args.json:
        _dump({"drift": [d.as_dict() for d in found], "unreachable": silent, "switches": len(targets)})
    else:
        print(f"{'switch':<20} {'port':<24} {'kind':<11} {'expected':<24} seen")
        for d in found:
            print(f"{d.switch:<20} {d.port:<24} {d.kind:<11} {d.expected or '-':<24} {d.seen or '-'}")
        print(f"{len(found)} drifted link end(s) on {len(targets) - len(silent)} switches read"
              + (f"; not answering: {', '.join(silent)}" if silent else ""), file=sys.stderr)
    return 1 if found else EXIT_OK


def _load(path: str) -> Any:
    """The model, or None after printing the problems on stderr."""
    from supervisor.model import CityFileError, load_city

    try:
        return load_city(path)
    except CityFileError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        if exc.more:
            print(f"{path}: <root>: ... and {exc.more} more problems", file=sys.stderr)
        return None


def _dump(data: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _check(args: argparse.Namespace) -> int:
    from supervisor.model import CityFileError, load_city

    try:
        model = load_city(args.file)
    except CityFileError as exc:
        for p in exc.problems:
            print(p)
        if exc.more:
            print(f"{args.file}: <root>: ... and {exc.more} more problems")
        return EXIT_INVALID
    print(f"{args.file}: ok: {len(model.devices)} devices, {len(model.elements)} elements", file=sys.stderr)
    return EXIT_OK


def _impact(args: argparse.Namespace) -> int:
    from supervisor.model import UnknownElementError

    model = _load(args.file)
    if model is None:
        return EXIT_INVALID
    try:
        result = model.impact(args.element)
    except UnknownElementError as exc:
        print(f"urban-supervisor model impact: {exc}", file=sys.stderr)
        return EXIT_INVALID
    _dump(result.as_dict())
    return EXIT_OK


def _shared(args: argparse.Namespace) -> int:
    model = _load(args.file)
    if model is None:
        return EXIT_INVALID
    _dump(model.shared_infrastructure())
    return EXIT_OK


def _generate(args: argparse.Namespace) -> int:
    from simulators.city import DEFAULT_AIR_PER_ZONE, write_city

    air = DEFAULT_AIR_PER_ZONE if args.air_per_zone is None else args.air_per_zone
    try:
        path = write_city(args.out, seed=args.seed, devices=args.devices, zones=args.zones, name=args.name,
                          air_per_zone=air)
    except ValueError as exc:
        print(f"urban-supervisor model generate: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"urban-supervisor model generate: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{path}: {args.devices} devices, {air} air stations per zone among them (seed {args.seed})",
          file=sys.stderr)
    return EXIT_OK


def _reload(args: argparse.Namespace) -> int:
    import json

    from ._api import call, run

    def body(a: argparse.Namespace) -> int:
        out = call(a, "POST", "/model/reload")
        if a.json:
            print(json.dumps(out, indent=2))
            return EXIT_OK
        c = out["diff"]["counts"]
        parts = [f"{kind} +{c['added'][kind]} -{c['removed'][kind]} ~{c['changed'][kind]}"
                 for kind in ("devices", "elements")]
        rules = out.get("rules") or {}
        print(f"reloaded {out['source']}: {', '.join(parts)}; rules rebuilt {len(rules.get('rebuilt', []))}, "
              f"added {len(rules.get('added', []))}, removed {len(rules.get('removed', []))}; "
              f"{out['alarms_cleared']} alarm(s) cleared; swap {out['swap_ms']} ms")
        return EXIT_OK

    return run(body, args)
