"""``GET /metrics``: Prometheus text exposition, through ``prometheus_client``.

Open unless viewer tokens are configured. Families are prefixed ``urban_``; counters end in
``_total``; everything else is a gauge. Parts that are not configured (model, alarms, rules)
simply have no metrics. Each app scrapes its own registry (``app.state.metrics``, made by
:func:`metrics_registry`), never the process-wide default one.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry

from supervisor.api.deps import MetricsReaderDep
from supervisor.api.prometheus import CONTENT_TYPE, Exposition, app_registry, render
from supervisor.service.facade import MetricsView, Service
from supervisor.state.registry import STATUS_CODE

router = APIRouter(tags=["metrics"])


class _PrometheusText(PlainTextResponse):
    media_type = CONTENT_TYPE


@router.get("/metrics", name="metrics-get", response_class=_PrometheusText)
def metrics(request: Request, _: MetricsReaderDep) -> _PrometheusText:
    return _PrometheusText(render(request.app.state.metrics), media_type=CONTENT_TYPE)


def metrics_registry(svc: Service) -> CollectorRegistry:
    """The app's registry: every scrape reads the service once and writes every family."""
    return app_registry("urban_", lambda out: fill_metrics(out, svc.metrics()))


def fill_metrics(out: Exposition, view: MetricsView) -> None:
    _ingest(out, view)
    _state(out, view)
    _alarms(out, view)
    _rules(out, view)
    _writer(out, view)
    _mqtt(out, view)
    _lane(out, view)
    _reloads(out, view)


def _reloads(out: Exposition, view: MetricsView) -> None:
    if view.model_reloads is None:
        return
    out.add("model_reloads_total", "counter", "City model reloads since start, by result (ok: swapped in; "
            "refused: the running model kept).",
            [({"result": r}, view.model_reloads.get(r, 0)) for r in ("ok", "refused")])


def _ingest(out: Exposition, view: MetricsView) -> None:
    c = view.counters
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
    out.gauge("ingest_dead_letters", "Refused messages kept in the dead-letter sample.", view.dead_letters)
    out.gauge("ingest_message_rate", "Messages per second over the last health period.", view.msg_rate)


def _state(out: Exposition, view: MetricsView) -> None:
    out.add("devices", "gauge", "Devices by family and status (ok, stale, fault).",
            [({"family": f, "status": s}, view.devices.get((f, s), 0)) for f in view.families for s in STATUS_CODE])


def _writer(out: Exposition, view: MetricsView) -> None:
    ws = view.writer_stats
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


def _mqtt(out: Exposition, view: MetricsView) -> None:
    s = view.mqtt_stats
    out.gauge("mqtt_connected", "1 while connected to the broker.", s.connected)
    out.counter("mqtt_connects_total", "Successful connections to the broker.", s.connects)
    out.counter("mqtt_disconnects_total", "Disconnections from the broker.", s.disconnects)
    out.counter("mqtt_received_total", "Messages received from the broker.", s.received)
    out.counter("mqtt_acked_total", "QoS 1 messages acknowledged once durable.", s.acked)
    out.counter("mqtt_published_total", "Messages published (commands).", s.published)
    out.counter("mqtt_bad_topics_total", "Messages received on a topic that is not printable.", s.bad_topics)


def _alarms(out: Exposition, view: MetricsView) -> None:
    if view.alarms_active is None:
        return
    out.add("alarms_active", "gauge", "Active alarms by kind and severity.",
            [({"kind": k, "severity": s}, n) for (k, s), n in sorted(view.alarms_active.items())])


def _rules(out: Exposition, view: MetricsView) -> None:
    st = view.rules_stats
    if st is None:
        return
    out.gauge("rules_loaded", "Rules running.", int(st["rules"]))
    out.counter("rules_decisions_total", "Rule decisions taken.", int(st["decisions"]))
    out.counter("rules_alarms_total", "Alarms raised or cleared by rules.", int(st["alarms"]))
    out.counter("rules_commands_sent_total", "Commands sent by the rule engine (retries included).",
                int(st["commands_sent"]))
    out.counter("rules_late_events_total", "Events from a resumed session's backlog, too old to command anything.",
                int(st["late_events"]))
    out.counter("rules_late_requests_total", "Commands withheld because the event asking for them was too old.",
                int(st["late_requests"]))
    errors = st.get("errors") or {}
    out.add("rules_errors_total", "counter", "Rule errors by rule and reason.",
            [({"rule": k.partition(":")[0], "reason": k.partition(":")[2]}, int(n)) for k, n in sorted(errors.items())])
    by_state = view.commands_by_state or {}
    out.add("rules_commands", "gauge", "Last command per actuator, by state.",
            [({"state": s}, by_state.get(s, 0)) for s in ("pending", "confirmed", "failed")])


def _lane(out: Exposition, view: MetricsView) -> None:
    ln = view.lane
    if not ln:
        return
    out.add("inbox_depth", "gauge", "Messages waiting in the inbox, by lane (control, bulk).",
            [({"lane": "control"}, ln["lane_depth"]), ({"lane": "bulk"}, ln["bulk_depth"])])
    out.add("inbox_oldest_age_seconds", "gauge", "Age of the oldest message waiting in the inbox, by lane.",
            [({"lane": "control"}, ln["lane_oldest_ms"] / 1000.0), ({"lane": "bulk"}, ln["bulk_oldest_ms"] / 1000.0)])
    out.add("lane_reaction_latency_seconds", "gauge",
            "Control lane receive-to-reacted latency over the last minute, by quantile.",
            [({"quantile": "0.5"}, ln["reaction_p50_ms"] / 1000.0),
             ({"quantile": "0.99"}, ln["reaction_p99_ms"] / 1000.0)])
    out.counter("lane_received_total", "Messages the control lane's session handed to its pipeline.",
                ln["lane_received"])
    out.gauge("lane_topics", "Topics the bulk path leaves to the control lane.", ln["lane_topics"])
