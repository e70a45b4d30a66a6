"""``urban-supervisor alarms list|ack|shelve|comment``: the running supervisor's alarm list.

Talks to the API (see :mod:`supervisor.cli._api` for the URL and the token); writes need an
operator token. Exit status 0, 1 when the API refuses (404 unknown alarm, 409 cleared, 403
viewer token) or cannot be reached, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from . import EXIT_OK
from ._api import add_connection_options, call, run, stamp, when


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("alarms", help="list and acknowledge the running supervisor's alarms")
    sub = parser.add_subparsers(dest="alarms_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="list alarms (active ones unless --all or --state)")
    for name in ("state", "kind", "severity", "service", "zone", "element"):
        ls.add_argument(f"--{name}")
    ls.add_argument("--since", help="raised at or after (epoch, ISO 8601)")
    ls.add_argument("--until", help="raised at or before (epoch, ISO 8601)")
    ls.add_argument("--all", action="store_true", help="cleared alarms too")
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(func=lambda a: run(_list, a))
    ack = sub.add_parser("ack", help="acknowledge an alarm")
    ack.add_argument("id")
    ack.add_argument("--user", required=True, help="who acknowledges")
    ack.set_defaults(func=lambda a: run(_ack, a))
    shelve = sub.add_parser("shelve", help="silence an alarm until a time, with a reason")
    shelve.add_argument("id")
    shelve.add_argument("--until", required=True, help="epoch, ISO 8601 (UTC) or a duration from now: 30m, 2h, 1d")
    shelve.add_argument("--reason", required=True)
    shelve.add_argument("--user", required=True)
    shelve.set_defaults(func=lambda a: run(_shelve, a))
    comment = sub.add_parser("comment", help="add a comment to an alarm's journal")
    comment.add_argument("id")
    comment.add_argument("text")
    comment.add_argument("--user", required=True)
    comment.set_defaults(func=lambda a: run(_comment, a))
    for p in (ls, ack, shelve, comment):
        add_connection_options(p)


def _list(args: argparse.Namespace) -> int:
    query = {k: getattr(args, k) for k in ("state", "kind", "severity", "service", "zone", "element")}
    query |= {"since": when(args.since) if args.since else None, "until": when(args.until) if args.until else None,
              "all": "true" if args.all else None, "limit": args.limit}
    body = call(args, "GET", "/alarms", query=query)
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"{body['total']} alarm(s), {body['active']} active")
    for a in body["items"]:
        marks = "".join((" [maintenance]" if a.get("in_maintenance") else "",
                         f" [shelved until {stamp(a['shelved_until'])}]" if a.get("shelved_until") else ""))
        by = f" by {a['acked_by']}" if a.get("acked_by") else ""
        print(f"{a['id']}  {stamp(a['raised_at'])}  {a['severity']:<8} {a['state']}{by}  {a['kind']} "
              f"{a['element']}: {a['text']}{marks}")
    return EXIT_OK


def _show(args: argparse.Namespace, alarm: dict[str, Any], what: str) -> int:
    if args.json:
        print(json.dumps(alarm, indent=2))
    else:
        print(f"{alarm['id']} {what}: {alarm['state']}")
    return EXIT_OK


def _ack(args: argparse.Namespace) -> int:
    body = call(args, "POST", f"/alarms/{quote(args.id, safe='')}/ack", {"user": args.user})
    return _show(args, body["alarm"], "acknowledged" if body["changed"] else "already acknowledged")


def _shelve(args: argparse.Namespace) -> int:
    body = {"user": args.user, "until": when(args.until), "reason": args.reason}
    return _show(args, call(args, "POST", f"/alarms/{quote(args.id, safe='')}/shelve", body), "shelved")


def _comment(args: argparse.Namespace) -> int:
    body = {"user": args.user, "text": args.text}
    return _show(args, call(args, "POST", f"/alarms/{quote(args.id, safe='')}/comment", body), "commented")
