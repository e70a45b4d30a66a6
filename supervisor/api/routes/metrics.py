"""``GET /metrics``: Prometheus text exposition, written by hand (no client library).

Open unless viewer tokens are configured. Families are prefixed ``urban_``; counters end in
``_total``; everything else is a gauge. Parts that are not configured (model, alarms, rules)
simply have no metrics.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from supervisor.api.deps import MetricsReaderDep, SupervisorDep
from supervisor.api.prometheus import CONTENT_TYPE, Exposition
from supervisor.runtime import Supervisor
from supervisor.state.registry import STATUS_CODE

router = APIRouter(tags=["metrics"])


class _PrometheusText(PlainTextResponse):
    media_type = CONTENT_TYPE


@router.get("/metrics", name="metrics-get", response_class=_PrometheusText)
def metrics(sup: SupervisorDep, _: MetricsReaderDep) -> _PrometheusText:
    return _PrometheusText(render_metrics(sup), media_type=CONTENT_TYPE)


def render_metrics(sup: Supervisor) -> str:
    out = Exposition("urban_")
    with sup.lock:
        _ingest(out, sup)
        _state(out, sup)
        _alarms(out, sup)
        _rules(out, sup)
    _writer(out, sup)
    _mqtt(out, sup)
    return out.render()


def _ingest(out: Exposition, sup: Supervisor) -> None:
    c = sup.pipeline.counters
    out.counter("ingest_received_total", "MQTT messages handed to the pipeline.", c.received)
    out.counter("ingest_decoded_total", "Messages decoded without error.", c.decoded)
    out.add("ingest_decoded_by_family_total", "counter", "Messages decoded, by device family.",
            [({"family": f}, n) for f, n in sorted(c.per_family.items())])
    out.add("ingest_errors_total", "counter", "Messages refused, by driver (- when none claimed it) and reason.",
            [({"driver": d, "reason": r}, n) for (d, r), n in sorted(c.errors.items())])
    out.counter("ingest_readings_total", "Readings decoded.", c.readings)
    out.counter("ingest_events_total", "Events decoded.", c.events)
    out.counter("ingest_points_total", "Line-protocol points handed to the writer.", c.points)
    out.counter("ingest_batches_total", "Batches processed by the pipeline.", c.batches)
    out.gauge("ingest_last_batch_size", "Messages in the last batch.", c.last_batch_size)
    out.gauge("ingest_lag_seconds", "Receive-to-processed delay of the oldest message of the last batch.",
              c.lag_ms / 1000.0)
    out.gauge("ingest_dead_letters", "Refused messages kept in the dead-letter sample.", len(sup.pipeline.dead_letters))
    out.gauge("ingest_message_rate", "Messages per second over the last health period.", sup.msg_rate)


def _state(out: Exposition, sup: Supervisor) -> None:
    counts: Counter[tuple[str, str]] = Counter()
    families: set[str] = set()
    for (family, _zone), by_status in sup.state.counts().items():
        families.add(family)
        for st, n in by_status.items():
            counts[(family, st)] += n
    out.add("devices", "gauge", "Devices by family and status (ok, stale, fault).",
            [({"family": f, "status": s}, counts[(f, s)]) for f in sorted(families) for s in STATUS_CODE])


def _writer(out: Exposition, sup: Supervisor) -> None:
    ws = sup.writer.stats()
    out.counter("writer_points_written_total", "Points the store accepted (replays included).", ws.points_written)
    out.counter("writer_batches_total", "Batches written.", ws.batches)
    out.counter("writer_retries_total", "Write re-attempts after an error.", ws.retries)
    out.counter("writer_failures_total", "Failed write attempts.", ws.failures)
    out.counter("writer_dead_letters_total", "Lines the store refused for good.", ws.dead_letters)
    out.counter("writer_spooled_lines_total", "Lines appended to the on-disk spool.", ws.spooled_lines)
    out.counter("writer_replayed_lines_total", "Lines replayed from the spool to the store.", ws.replayed_lines)
    out.gauge("writer_last_write_latency_seconds", "Duration of the last successful write.",
              ws.last_latency_ms / 1000.0)
    out.gauge("writer_pending_lines", "Lines submitted and not yet durable.", ws.pending)
    out.gauge("writer_spool_bytes", "Bytes held in the on-disk spool.", ws.spool_bytes)
    out.gauge("writer_spool_records", "Batches held in the on-disk spool.", ws.spool_records)
    out.gauge("writer_spool_fill_ratio", "Spool size over its limit (0..1).", ws.spool_fill_ratio)
    out.gauge("writer_unsaved_lines", "Lines that could be neither written nor spooled at stop.", ws.unsaved)


def _mqtt(out: Exposition, sup: Supervisor) -> None:
    s = sup.mqtt.stats
    out.gauge("mqtt_connected", "1 while connected to the broker.", s.connected)
    out.counter("mqtt_connects_total", "Successful connections to the broker.", s.connects)
    out.counter("mqtt_disconnects_total", "Disconnections from the broker.", s.disconnects)
    out.counter("mqtt_received_total", "Messages received from the broker.", s.received)
    out.counter("mqtt_acked_total", "QoS 1 messages acknowledged once durable.", s.acked)
    out.counter("mqtt_published_total", "Messages published (commands).", s.published)
    out.counter("mqtt_bad_topics_total", "Messages received on a topic that is not printable.", s.bad_topics)


def _alarms(out: Exposition, sup: Supervisor) -> None:
    if sup.alarms is None:
        return
    counts: Counter[tuple[str, str]] = Counter()
    for a in sup.alarms.active():
        counts[(str(a.kind), str(a.severity))] += 1
    out.add("alarms_active", "gauge", "Active alarms by kind and severity.",
            [({"kind": k, "severity": s}, n) for (k, s), n in sorted(counts.items())])


def _rules(out: Exposition, sup: Supervisor) -> None:
    if sup.rules is None:
        return
    st = sup.rules.stats()
    out.gauge("rules_loaded", "Rules running.", int(st["rules"]))
    out.counter("rules_decisions_total", "Rule decisions taken.", int(st["decisions"]))
    out.counter("rules_alarms_total", "Alarms raised or cleared by rules.", int(st["alarms"]))
    out.counter("rules_commands_sent_total", "Commands sent by the rule engine (retries included).",
                int(st["commands_sent"]))
    errors = st.get("errors") or {}
    out.add("rules_errors_total", "counter", "Rule errors by rule and reason.",
            [({"rule": k.partition(":")[0], "reason": k.partition(":")[2]}, int(n)) for k, n in sorted(errors.items())])
    by_state: Counter[str] = Counter(str(v.get("state")) for v in sup.rules.commands().values())
    out.add("rules_commands", "gauge", "Last command per actuator, by state.",
            [({"state": s}, by_state[s]) for s in ("pending", "confirmed", "failed")])
