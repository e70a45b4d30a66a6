"""``urban-supervisor storage provision|backfill``: retention policies and rollups (docs/data-protection.md).

- ``storage provision [--dry-run]``: print the plan (what would be created, altered, dropped; "no
  change" when the server matches), then apply it unless ``--dry-run``. The supervisor does the
  same at each start; running it twice changes nothing.
- ``storage backfill --from T --to T``: compute the hourly and daily aggregates of a past range
  (after an outage longer than what the continuous queries recompute), InfluxDB 1 only.

Exit status 0, 1 when the storage refuses or cannot be reached, 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import EXIT_FAILURE, EXIT_INVALID, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("storage", help="provision retention policies and rollups; backfill aggregates",
                                   description="Retention and downsampling of the stored data "
                                               "(docs/data-protection.md).")
    sub = parser.add_subparsers(dest="storage_command", required=True, metavar="ACTION")
    prov = sub.add_parser("provision", help="create or alter retention policies, continuous queries, buckets, tasks")
    prov.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    prov.set_defaults(func=_provision)
    back = sub.add_parser("backfill", help="aggregate a past range into the hourly and daily series (InfluxDB 1)")
    back.add_argument("--from", dest="start", required=True,
                      help="epoch seconds, ISO 8601 (UTC unless it says) or a duration ago (36h, 30d)")
    back.add_argument("--to", dest="end", default=None, help="epoch seconds or ISO 8601 (default: now)")
    back.add_argument("--tier", choices=("hourly", "daily"), action="append", help="only this tier (repeatable)")
    back.set_defaults(func=_backfill)
    for p in (prov, back):
        p.add_argument("--config", "-c", metavar="FILE", help="YAML configuration (URBAN_* env vars override it)")


def _setup(args: argparse.Namespace) -> Any:
    from supervisor.config import ConfigFileError, load_settings
    from supervisor.service.wiring import storage_config

    try:
        return storage_config(load_settings(args.config))
    except ConfigFileError as exc:
        print(f"urban-supervisor: {exc}", file=sys.stderr)
        return None


def _provision(args: argparse.Namespace) -> int:
    from supervisor.storage import StorageError, retention
    from supervisor.storage.writer import make_sink

    cfg = _setup(args)
    if cfg is None:
        return EXIT_INVALID
    if cfg.backend == "sqlite":
        print("storage provision: the sqlite backend has no retention (it is the demo's embedded store)")
        return EXIT_OK
    if not cfg.retention.enabled:
        print("storage provision: storage.retention.enabled is false: nothing to do")
        return EXIT_OK
    sink = make_sink(cfg)
    try:
        t0 = time.perf_counter()
        plan = retention.plan(sink, cfg)
        assert plan is not None
        print(plan.render())
        if not args.dry_run and plan.changed:
            retention.apply(sink, plan)
            print(f"applied {len(plan.actions)} change(s) in {(time.perf_counter() - t0) * 1000:.0f} ms")
        elif args.dry_run and plan.changed:
            print("dry run: nothing changed")
    except StorageError as exc:
        print(f"storage provision: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        sink.close()
    return EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    from supervisor.storage import InfluxV1Sink, StorageError, retention
    from supervisor.storage.writer import make_sink

    from ._api import _DURATION, CliError, when

    cfg = _setup(args)
    if cfg is None:
        return EXIT_INVALID
    try:
        now = time.time()
        start = 2 * now - when(args.start, now) if _DURATION.match(args.start.strip()) else when(args.start)
        end = when(args.end) if args.end else time.time()
    except CliError as exc:
        print(f"storage backfill: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if end <= start:
        print("storage backfill: --to must be after --from", file=sys.stderr)
        return EXIT_INVALID
    sink = make_sink(cfg.model_copy(update={"timeout": max(cfg.timeout, 300.0)}))  # long statements
    if not isinstance(sink, InfluxV1Sink):
        print("storage backfill: InfluxDB 1 only (InfluxDB 2: run the tasks over the range with `influx task "
              "run retry`, see docs/data-protection.md)", file=sys.stderr)
        return EXIT_INVALID
    try:
        t0 = time.perf_counter()
        n = retention.backfill_v1(sink, cfg, start, end, tiers=args.tier or ("hourly", "daily"))
        print(f"backfill: {n} aggregate point(s) written in {time.perf_counter() - t0:.1f} s")
    except StorageError as exc:
        print(f"storage backfill: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        sink.close()
    return EXIT_OK
