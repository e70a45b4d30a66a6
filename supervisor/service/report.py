"""The supervisor's summary (``GET /api/v1/summary``, ``urban-supervisor run`` logs)."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from supervisor.state.registry import STATUS_CODE

if TYPE_CHECKING:
    from supervisor.service.supervisor import Supervisor


def summary(sup: Supervisor) -> dict[str, Any]:
    c = sup.pipeline.counters
    ws = sup.writer.stats()
    identity = sup.pipeline.identity
    stats = sup.mqtt.stats
    return {
        "instance": sup.instance,
        "uptime_s": round(time.time() - sup.started_at, 1) if sup.started_at else 0.0,
        "mqtt": {"host": sup.settings.mqtt.host, "port": sup.settings.mqtt.port,
                 "connected": stats.connected, "connects": stats.connects,
                 "received": stats.received, "acked": stats.acked,
                 "inbox": len(sup.inbox), "inbox_full_waits": sup.inbox.full_waits,
                 "lane_connected": sup.lane.enabled and sup.lane.mqtt.stats.connected,
                 "lane_ready": sup.lane.ready,
                 "broker_dropped": sup.broker_dropped,
                 # a resumed session's backlog: still being taken (its events judged by their age)?
                 "backlog": sup.mqtt.backlog.report() if sup.mqtt.backlog is not None else None},
        "ingest": c.as_dict(),
        "storage": {"backend": sup.settings.storage.backend, "points_written": ws.points_written,
                    "batches": ws.batches, "retries": ws.retries, "failures": ws.failures,
                    "pending": ws.pending, "dead_letters": ws.dead_letters,
                    "spool_bytes": ws.spool_bytes, "last_latency_ms": ws.last_latency_ms,
                    "last_write_at": ws.last_write_at,
                    "spool_alarm": sup.spool_alarm, "points_refused": sup.points_refused},
        # one pass (under the supervisor's lock, which the lane waits for): one pass per status took
        # ~100 ms on a 100,000-device city, and bench storm's probes waited for each summary
        "devices": {"total": len(sup.state), "by_status": _by_status(sup)},
        "alarms": None if sup.alarms is None else len(sup.alarms.active()),
        "identity": {"unknown": (identity.report()[:20] if identity else []),
                     "unplaced": len(identity.unplaced) if identity else 0},
        "commands_refused": sup.commands_refused,
        # backlog events too old to command (rules/_engine.py on_events), and what they would have asked
        "rules": None if sup.rules is None else {
            k: v for k, v in sup.rules.stats().items() if k in ("commands_sent", "late_events", "late_requests")},
        "lane": sup.lane_fields(),
        # the pipeline thread's slow iterations, long collections, slow writes (diagnostics of a stall)
        "loop": {**sup.loop_watch.report(), "bulk_slices_past_room": sup.pipeline.slices_past_room,
                 "bulk_slice": sup.bulk_slice.size,
                 # the lane inputs that waited longest in the supervisor (received -> reacted), with times
                 "lane_slowest": [{"ms": ms, "at": at, "received": rx, "topic": t}
                                  for ms, at, rx, t in sorted(sup.lane.slowest, key=lambda x: x[1])],
                 "bulk_us_per_message": round(sup.bulk_slice.per_message * 1e6, 1),
                 "writer_producer_waits": sup.writer.producer_waits,
                 "writer_producer_wait_max_ms": round(sup.writer.producer_wait_max_ms, 1),
                 "writer_slow_writes": [{"at": a, "ms": m, "lines": n} for a, m, n in sup.writer.slow_writes()],
                 "writer_overshoot": sup.writer.overshoot,
                 # a backlog drains: staleness not judged (PeriodicWork._check)
                 "behind_s": round(sup.behind(), 1), "stale_checks_held": sup.periodic.stale_checks_held},
        "model_reloads": sup.reloader.fields(),
    }


def _by_status(sup: Supervisor) -> dict[str, int]:
    seen = Counter(d.status for d in sup.state)
    return {s: seen.get(s, 0) for s in STATUS_CODE}
