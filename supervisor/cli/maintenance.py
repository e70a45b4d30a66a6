"""``urban-supervisor maintenance add|list|remove``: planned works on an element of the network.

Alarms within the element's impact set raised during the window are recorded "in maintenance"
and never notified. Talks to the running supervisor's API (see :mod:`supervisor.cli._api`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from . import EXIT_OK
from ._api import CliError, add_connection_options, call, run, stamp, when


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("maintenance", help="declare, list and remove maintenance windows")
    sub = parser.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="declare maintenance on an element (switch, cabinet, feeder, zone, device...)")
    add.add_argument("element")
    add.add_argument("--start", default="0s", help="epoch, ISO 8601 (UTC) or a duration from now (default: now)")
    add.add_argument("--end", required=True, help="epoch, ISO 8601 (UTC) or a duration from now: 2h")
    add.add_argument("--reason", required=True)
    add.add_argument("--user", required=True)
    add.set_defaults(func=lambda a: run(_add, a))
    ls = sub.add_parser("list", help="list the maintenance windows")
    ls.set_defaults(func=lambda a: run(_list, a))
    rm = sub.add_parser("remove", help="remove a maintenance window")
    rm.add_argument("id")
    rm.set_defaults(func=lambda a: run(_remove, a))
    for p in (add, ls, rm):
        add_connection_options(p)


def _add(args: argparse.Namespace) -> int:
    start, end = when(args.start), when(args.end)
    if end <= start:
        raise CliError(f"the window ends ({stamp(end)}) before it starts ({stamp(start)})")
    w = call(args, "POST", "/maintenance", {"element": args.element, "start": start, "end": end,
                                             "reason": args.reason, "user": args.user})
    line = f"{w['id']} {w['element']} {stamp(w['start'])} .. {stamp(w['end'])}"
    print(json.dumps(w, indent=2) if args.json else line)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    items = call(args, "GET", "/maintenance")["items"]
    if args.json:
        print(json.dumps(items, indent=2))
        return EXIT_OK
    for w in items:
        now = " (now)" if w["active"] else ""
        print(f"{w['id']}  {w['element']}  {stamp(w['start'])} .. {stamp(w['end'])}{now}  {w['reason']} "
              f"- {w['created_by']}")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    w = call(args, "DELETE", f"/maintenance/{quote(args.id, safe='')}")
    print(f"{w['id']} removed")
    return EXIT_OK
