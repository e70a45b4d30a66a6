"""Data for the dashboard tests: ONE fixture, ``grafana_db``, produces it.

This producer writes a simulated city straight into a fresh database of the real InfluxDB, in
line protocol that follows docs/architecture.md (millisecond precision). It is the stand-in
until the full pipeline's session run exists: to test the boards on pipeline data, replace the
body of ``grafana_db`` with that run and return a :class:`GrafanaData` for it. Facts the run does
not fix can be left out of ``facts``; the known-value tests that need them then skip, naming the
missing fact.
"""

from __future__ import annotations

import itertools
import json
import math
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.services import Influx

T0_MS = 1_768_492_800_000  # 2026-01-15T16:00:00Z, on a 15-minute boundary
MINUTES = 240  # four hours: an evening with lights on, dimmed and off again
MIN_MS = 60_000

LAMP_W = 70.0  # rated power of one simulated lamp at 100 %
STANDBY_W = 5.0  # cabinet controller draw when the lamps are off
INSTANCE = "sup-1"


@dataclass
class GrafanaData:
    db: str
    start_ms: int  # a time range covering every point written
    end_ms: int
    facts: dict[str, Any] = field(default_factory=dict)
    source: str = "synthetic"
    # panels this data source cannot feed, with the reason (their queries still run)
    not_fed: dict[str, str] = field(default_factory=dict)


# What a few hours of simulated city through the pipeline cannot produce; the synthetic data cover them.
PIPELINE_NOT_FED = {
    "Day-burning": "needs lamps lit in daylight (a fault the simulator does not inject)",
    "Day-burning by cabinet": "needs lamps lit in daylight (a fault the simulator does not inject)",
    "Leak alarms": "a leak is suspected after k nights: a multi-night run (covered in tests/integration)",
    "Leak reports": "a leak is suspected after k nights: a multi-night run (covered in tests/integration)",
    "Open alarms per service": "one stat per service, LoRaWAN included: the simulated city has no LoRaWAN "
                               "gateway (the synthetic data cover every service)",
    "Maintenance windows": "planned works are declared by an operator, not by telemetry (the lifecycle's "
                           "tests check the points it writes)",
}


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def line(measurement: str, tags: dict[str, str], fields: dict[str, object], ts_ms: int) -> str:
    tag_s = "".join(f",{k}={v}" for k, v in sorted(tags.items()))
    field_s = ",".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    return f"{measurement}{tag_s} {field_s} {ts_ms}"


def _level_at(minute: int) -> float:
    if minute < 30 or minute >= 210:
        return 0.0
    return 100.0 if minute < 120 else 50.0


def _eaqi_level(pollutant: str, value: float) -> int:
    """The EAQI level of one concentration, by the driver's own bands (drivers/air_quality)."""
    from drivers.air_quality import EAQI_BANDS

    return 1 + sum(value > upper for upper in EAQI_BANDS[pollutant])


def _trapezoid_wh(samples: list[tuple[int, float]]) -> float:
    """Trapezoidal integral in watt-hours of (ts_ms, watts) samples, as InfluxQL integral(x, 1h)."""
    return sum((a[1] + b[1]) / 2 * (b[0] - a[0]) / 3_600_000 for a, b in itertools.pairwise(samples))


def _traffic(t: list[int]) -> list[str]:
    """Traffic: four detectors, one reading a minute."""
    lines: list[str] = []
    traffic = {"tr-n1": "north", "tr-n2": "north", "tr-s1": "south", "tr-s2": "south"}
    for i, (dev, zone) in enumerate(traffic.items()):
        for m, ts in enumerate(t):
            flow = 300.0 + 100 * i + 50 * math.sin(m / 20)
            lines.append(line("traffic", {"device": dev, "zone": zone},
                              {"flow": round(flow, 1), "speed": 45.0 + i, "occupancy": round(flow / 60, 2)}, ts))
    return lines


def _lighting(t: list[int]) -> tuple[list[str], int, float]:
    """Lighting: three cabinets (two circuits each) and two individual lamps, with the decisions and
    commands; also the lamps failed at the end and the kWh saved against full power."""
    lines: list[str] = []
    cabinets = {"cab-n1": ("north", 24), "cab-s1": ("south", 12), "cab-s2": ("south", 18)}
    expected_kwh = 0.0
    failed_last = 0
    for dev, (zone, lamps) in cabinets.items():
        energy = 1000.0
        full: list[tuple[int, float]] = []
        measured: list[tuple[int, float]] = []
        for m, ts in enumerate(t):
            failures = {"cab-n1": 2, "cab-s1": 0}.get(dev, 0 if m < 120 else 1)
            level = _level_at(m)
            working = lamps - failures
            lamp_power = working * LAMP_W * level / 100
            power = STANDBY_W + lamp_power
            energy += power / 60 / 1000
            lines.append(line("lighting", {"device": dev, "zone": zone}, {
                "power": power, "energy": round(energy, 6), "voltage": 231.0, "current": round(power / 231, 4),
                "lamp_failures": failures, "lamps": lamps, "door_open": False}, ts))
            for ch in ("1", "2"):
                lines.append(line("lighting", {"device": dev, "zone": zone, "channel": ch},
                                  {"on": level > 0, "level": level, "power": lamp_power / 2}, ts))
            full.append((ts, working * LAMP_W if power > 20.0 else 0.0))
            measured.append((ts, power))
        failed_last += failures
        expected_kwh += (_trapezoid_wh(full) - _trapezoid_wh(measured)) / 1000
    for dev in ("lamp-n1", "lamp-n2"):
        for m, ts in enumerate(t):
            level = _level_at(m)
            lines.append(line("lighting", {"device": dev, "zone": "north"},
                              {"on": level > 0, "level": level, "power": LAMP_W * level / 100}, ts))
    # day-burning as the lamp-faults rule records it: two detections on cab-s1, each ended
    for m, ends in ((10, 14), (20, 25)):
        tags = {"rule": "lamp-faults", "device": "cab-s1", "zone": "south"}
        lines.append(line("decisions", tags, {
            "output": 845.0, "inputs": json.dumps({"power": 845.0, "threshold": 30.0}),
            "text": "cab-s1: day-burning \u2014 845 W drawn at 09:10 local while the sun is up (threshold 30 W)"},
            t[m]))
        lines.append(line("decisions", tags, {"output": 0.0, "inputs": json.dumps({"power": 0.0}),
                                              "text": "cab-s1: day-burning ended (0 W)"}, t[ends]))
    commands = [("cab-n1", "pending", 120, 0), ("cab-n1", "confirmed", 120, 2_000),
                ("cab-s1", "pending", 120, 0), ("cab-s1", "confirmed", 120, 3_000),
                ("cab-s2", "pending", 121, 0), ("cab-s2", "failed", 123, 0)]
    for dev, state, m, off in commands:
        lines.append(line("commands", {"device": dev, "state": state},
                          {"level": 50.0, "attempts": 3 if state == "failed" else 1}, t[m] + off))
    for dev, zone in (("cab-n1", "north"), ("cab-s1", "south"), ("cab-s2", "south")):
        lines.append(line("decisions", {"rule": "evening_dim", "device": dev, "zone": zone},
                          {"output": 50.0, "inputs": json.dumps({"hour": 20}),
                           "text": f"dim {dev} to 50 % after 20:00"}, t[119]))
    return lines, failed_last, expected_kwh


def _cctv(t: list[int]) -> list[str]:
    """CCTV: four cameras; cam-s2 goes offline at minute 180, cam-n2 is covered at minute 200."""
    lines: list[str] = []
    cams = {"cam-n1": "north", "cam-n2": "north", "cam-s1": "south", "cam-s2": "south"}
    for dev, zone in cams.items():
        for m, ts in enumerate(t):
            online = not (dev == "cam-s2" and m >= 180)
            tamper = dev == "cam-n2" and m >= 200
            lines.append(line("cctv", {"device": dev, "zone": zone}, {
                "online": online, "recording": online, "fps": 25.0 if online else 0.0,
                "bitrate": 4096.0 if online else 0.0, "tamper": tamper}, ts))
    lines.append(line("events", {"family": "cctv", "kind": "tamper", "device": "cam-n2", "zone": "north"},
                      {"value": 1, "data": json.dumps({"score": 0.93})}, t[200]))
    lines.append(line("events", {"family": "cctv", "kind": "motion", "device": "cam-s1", "zone": "south"},
                      {"value": 1, "data": json.dumps({"score": 0.81})}, t[60]))
    lon, lat = DEVICE_POSITIONS["cam-s2"]
    lines.append(line("device_status", {"family": "cctv", "zone": "south", "device": "cam-s2"},
                      {"status": "stale", "code": 1, "reason": "silent for 900 s", "lat": lat, "lon": lon}, t[183]))
    return lines


#: every synthetic device: (family, zone)
DEVICES = {
    **{d: ("traffic", z) for d, z in (("tr-n1", "north"), ("tr-n2", "north"), ("tr-s1", "south"),
                                      ("tr-s2", "south"))},
    **{d: ("lighting", z) for d, z in (("cab-n1", "north"), ("cab-s1", "south"), ("cab-s2", "south"),
                                       ("lamp-n1", "north"), ("lamp-n2", "north"))},
    **{d: ("cctv", z) for d, z in (("cam-n1", "north"), ("cam-n2", "north"), ("cam-s1", "south"),
                                   ("cam-s2", "south"))},
    **{d: ("water", z) for d, z in (("wm-n1", "north"), ("wm-n2", "north"), ("wm-s1", "south"),
                                    ("wm-s2", "south"))},
    **{d: ("air", z) for d, z in (("aq-n1", "north"), ("aq-s1", "south"), ("aq-s2", "south"))},
}
#: their positions (lon, lat): north of 48.85 N in the north zone, south of it in the south zone
DEVICE_POSITIONS = {d: (2.30 + 0.002 * i, (48.86 if z == "north" else 48.84) + 0.0005 * i)
                    for i, (d, (_, z)) in enumerate(DEVICES.items())}


def _device_snapshot(t: list[int]) -> list[str]:
    """The supervisor's status snapshot at start (supervisor/service/periodic.py): every device ok, with
    its position (cam-s2 turns stale later, in :func:`_cctv`)."""
    return [line("device_status", {"family": fam, "zone": zone, "device": dev},
                 {"status": "ok", "code": 0, "reason": "snapshot", "lat": DEVICE_POSITIONS[dev][1],
                  "lon": DEVICE_POSITIONS[dev][0]}, t[0])
            for dev, (fam, zone) in DEVICES.items()]


def _water(t: list[int]) -> list[str]:
    """Water: four meters every 5 minutes; wm-s2 reports LEAK from minute 150."""
    lines: list[str] = []
    meters = {"wm-n1": ("north", 0.5), "wm-n2": ("north", 0.3), "wm-s1": ("south", 0.4), "wm-s2": ("south", 0.2)}
    for dev, (zone, base) in meters.items():
        index = 500.0
        for m in range(0, MINUTES, 5):
            flow = base + (0.6 if m < 120 else 0.0)  # evening use, then the night minimum
            index += flow * 5 / 60
            alarms = "LEAK" if dev == "wm-s2" and m >= 150 else ""
            lines.append(line("water", {"device": dev, "zone": zone},
                              {"index": round(index, 6), "flow": flow, "alarms": alarms}, t[m]))
    return lines


def _air(t: list[int]) -> list[str]:
    """Air: three stations every 10 minutes; aq-s2 (by a road) turns poor (PM2.5 40) from minute 200."""
    lines: list[str] = []
    stations = {"aq-n1": ("north", 1.0), "aq-s1": ("south", 0.8), "aq-s2": ("south", 1.3)}
    for dev, (zone, k) in stations.items():
        for m in range(0, MINUTES, 10):
            pm25 = 40.0 if dev == "aq-s2" and m >= 200 else round(8.0 * k, 1)
            no2 = round(30.0 * k, 1)
            values = {"no2": no2, "pm10": round(2 * pm25, 1), "pm25": pm25, "o3": 45.0}
            level = max(_eaqi_level(p, v) for p, v in values.items())
            lines.append(line("air", {"device": dev, "zone": zone},
                              {**values, "eaqi": level, "temperature": 4.0, "humidity": 80.0}, t[m]))
    return lines


def _fleet(t: list[int]) -> list[str]:
    """Fleet, every minute per family and zone."""
    lines: list[str] = []
    fleet = {("traffic", "north"): 2, ("traffic", "south"): 2, ("lighting", "north"): 3,
             ("lighting", "south"): 2, ("cctv", "north"): 2, ("cctv", "south"): 2,
             ("water", "north"): 2, ("water", "south"): 2, ("air", "north"): 1, ("air", "south"): 2}
    for (fam, zone), total in fleet.items():
        for m, ts in enumerate(t):
            stale = 1 if (fam, zone) == ("cctv", "south") and m >= 183 else 0
            lines.append(line("fleet", {"family": fam, "zone": zone},
                              {"total": total, "ok": total - stale, "stale": stale, "fault": 0}, ts))
    return lines


#: the control lane's health fields, constant over the range (bulk_depth varies: 0..60)
LANE_HEALTH = {"lane_depth": 2, "lane_oldest_ms": 1.5, "bulk_oldest_ms": 40.0, "reaction_p50_ms": 3.0,
               "reaction_p99_ms": 12.5, "lane_received": 100, "lane_topics": 7}


def _health(t: list[int]) -> tuple[list[str], dict[str, int]]:
    """Supervisor health every 10 s, ingest errors every minute; also the errors counted in the
    range, by reason."""
    lines: list[str] = []
    errors = {("bad_json", "road_sensor"): 0, ("out_of_range", "water_meter"): 0}
    first: dict[tuple[str, str], int] = {}
    for k in range(MINUTES * 6):
        ts = T0_MS + k * 10_000
        received = 200 * k
        err = k // 30
        lines.append(line("supervisor", {"instance": INSTANCE}, {
            "received": received, "decoded": received - err, "errors": err, "points_written": 3 * received,
            "write_latency_ms": 12.0 + (k % 5), "spool_bytes": 0, "lag_ms": 150.0, "msg_rate": 20.0,
            **LANE_HEALTH, "bulk_depth": 10 * (k % 7)}, ts))
    for m, ts in enumerate(t):
        errors[("bad_json", "road_sensor")] = m // 10
        errors[("out_of_range", "water_meter")] = 2 * (m // 60)
        for (reason, driver), count in errors.items():
            first.setdefault((reason, driver), count)
            lines.append(line("ingest_errors", {"instance": INSTANCE, "reason": reason, "driver": driver},
                              {"count": count}, ts))
    return lines, {r: errors[(r, d)] - first[(r, d)] for r, d in errors}


def _alarms(t: list[int]) -> list[str]:
    """Alarms (supervisor/alarms and supervisor/runtime.py): a root cause still active, one
    cleared, a device alarm and a rule alarm (estimated lamp failures) active, and the rule alarms
    of the two day-burnings, each cleared."""
    lines: list[str] = []
    services = {"tr": "traffic", "cam": "cctv", "cab": "lighting", "lamp": "lighting", "wm": "water", "aq": "air",
                "lgw": "lorawan"}

    raised: dict[str, int] = {}

    def alarm(kind: str, severity: str, element: str, state: str, *, aid: str, affected: list[str],
              m: int, acked_by: str | None = None) -> None:
        if state == "raised":
            raised[aid] = t[m]
        fields = {"id": aid, "devices": len(affected), "raised_at": raised[aid] / 1000,
                  "services": ",".join(sorted({services[a.split("-")[0]] for a in affected})),
                  "affected": json.dumps(affected)}
        if acked_by:
            fields["acked_by"] = acked_by
        lines.append(line("alarms", {"kind": kind, "severity": severity, "element": element, "state": state},
                          fields, t[m]))

    for m, ends in ((10, 14), (20, 25)):
        alarm("rule:day_burning", "minor", "cab-s1", "raised", aid="lamp-faults:cab-s1", affected=["cab-s1"], m=m)
        alarm("rule:day_burning", "minor", "cab-s1", "cleared", aid="lamp-faults:cab-s1", affected=["cab-s1"],
              m=ends)
    alarm("rule:lamp_failures", "minor", "cab-n1", "raised", aid="lamp-faults:cab-n1", affected=["cab-n1"], m=40)

    alarm("root_cause", "major", "feed-south", "raised", aid="A-1", affected=["cab-s1", "cab-s2"], m=50)
    alarm("root_cause", "major", "feed-south", "cleared", aid="A-1", affected=["cab-s1", "cab-s2"], m=80)
    alarm("root_cause", "major", "gw-north", "raised", aid="A-2", affected=["tr-n1", "cam-n1", "cab-n1"], m=100)
    alarm("root_cause", "major", "gw-north", "acknowledged", aid="A-2", affected=["tr-n1", "cam-n1", "cab-n1"], m=110,
          acked_by="alice (operator#1)")
    alarm("device", "minor", "cam-s2", "raised", aid="A-3", affected=["cam-s2"], m=183)
    alarm("rule:water_leak", "major", "wm-s2", "raised", aid="night-leak:wm-s2", affected=["wm-s2"], m=190)
    alarm("rule:threshold", "warning", "aq-s2", "raised", aid="pm25-high:aq-s2", affected=["aq-s2"], m=195)
    alarm("device", "major", "lgw-n1", "raised", aid="A-4", affected=["lgw-n1"], m=196)  # a LoRaWAN gateway
    return lines


def _maintenance(t: list[int]) -> list[str]:
    """Planned works (supervisor/alarms/lifecycle.py): one window declared then removed, one declared."""
    def window(element: str, wid: str, state: str, *, start_m: int, end_m: int, m: int) -> str:
        return line("maintenance", {"element": element, "window": wid, "state": state},
                    {"start": t[start_m] / 1000, "end": t[end_m] / 1000, "reason": f"works on {element}",
                     "by": "op (operator#1)"}, t[m])

    return [window("feed-south", "MW-1", "declared", start_m=50, end_m=90, m=45),
            window("feed-south", "MW-1", "removed", start_m=50, end_m=90, m=85),
            window("cab-n1", "MW-2", "declared", start_m=150, end_m=200, m=140)]


def simulate() -> tuple[list[str], dict[str, Any]]:
    """The simulated city: line protocol and the facts it fixes."""
    t = [T0_MS + m * MIN_MS for m in range(MINUTES)]
    lighting, failed_last, expected_kwh = _lighting(t)
    health, errors_by_reason = _health(t)
    lines = [*_traffic(t), *lighting, *_cctv(t), *_water(t), *_air(t), *_fleet(t), *health, *_alarms(t),
             *_maintenance(t), *_device_snapshot(t)]
    facts: dict[str, Any] = {
        "zones": ["north", "south"],
        # the map: device -> (lat, lon, status)
        "device_map": {d: (lat, lon, "stale" if d == "cam-s2" else "ok") for d, (lon, lat) in DEVICE_POSITIONS.items()},
        "devices_per_family": {"traffic": 4, "lighting": 5, "cctv": 4, "water": 4, "air": 3},
        "fleet_status": {"cctv": {"ok": 3, "stale": 1, "fault": 0}},
        "failed_lamps": failed_last,
        "lamp_rated_w": LAMP_W,
        "savings_kwh": expected_kwh,
        "day_burning": 2,
        "command_states": {"pending": 3, "confirmed": 2, "failed": 1},
        "cameras": 4,
        "cameras_online": 3,
        "cameras_tampered": 1,
        "cameras_offline": ["cam-s2"],
        "leak_devices": ["wm-s2"],
        "air_stations": 3,
        "air_worst_index": 4,  # aq-s2: PM2.5 40 µg/m3 is in the "poor" band
        "air_poor_stations": 1,
        "air_last": {"aq-n1": {"eaqi": 1, "pm25": 8.0}, "aq-s1": {"eaqi": 1, "pm25": 6.4},
                     "aq-s2": {"eaqi": 4, "pm25": 40.0}},
        "min_night_flow": {"north": 0.8, "south": 0.6},
        "active_alarms": 6,
        "active_root_causes": ["gw-north"],
        # the alarm list: (kind, element) -> (id, state, acknowledged by)
        "alarm_list": {("rule:day_burning", "cab-s1"): ("lamp-faults:cab-s1", "cleared", None),
                       ("rule:lamp_failures", "cab-n1"): ("lamp-faults:cab-n1", "raised", None),
                       ("root_cause", "feed-south"): ("A-1", "cleared", None),
                       ("root_cause", "gw-north"): ("A-2", "acknowledged", "alice (operator#1)"),
                       ("device", "cam-s2"): ("A-3", "raised", None),
                       ("rule:water_leak", "wm-s2"): ("night-leak:wm-s2", "raised", None),
                       ("rule:threshold", "aq-s2"): ("pm25-high:aq-s2", "raised", None),
                       ("device", "lgw-n1"): ("A-4", "raised", None)},
        # the maintenance windows: window -> (element, latest state, start ms, end ms)
        "maintenance": {"MW-1": ("feed-south", "removed", t[50], t[90]),
                        "MW-2": ("cab-n1", "declared", t[150], t[200])},
        "open_per_service": {"lighting": 2, "cctv": 2, "traffic": 1, "water": 1, "air": 1, "lorawan": 1},
        "msg_rate": 20.0,
        "errors_by_reason": errors_by_reason,
        "lane_health": {**LANE_HEALTH, "bulk_depth_max": 60},
    }
    return lines, facts


#: the policy the supervisor writes household water into (storage.retention, docs/data-protection.md);
#: here without expiry, so that the fixed dates of the synthetic city stay writable
PERSONAL_RP = "personal_raw"


def write(influx: Influx, db: str, lines: list[str]) -> None:
    """Write as the supervisor does: the personal measurements (water) into their own policy."""
    influx.query(f'CREATE RETENTION POLICY "{PERSONAL_RP}" ON "{db}" DURATION INF REPLICATION 1')
    personal = [ln for ln in lines if ln.startswith("water,")]
    for rp, part in ((None, [ln for ln in lines if not ln.startswith("water,")]), (PERSONAL_RP, personal)):
        body = ("\n".join(part) + "\n").encode()
        url = f"{influx.url}/write?db={db}&precision=ms" + (f"&rp={rp}" if rp else "")
        req = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 204, r.status


@pytest.fixture(scope="session", params=["pipeline", "synthetic"])
def grafana_db(request: pytest.FixtureRequest, influx: Influx,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrafanaData]:
    """The data of the dashboard tests, from two producers.

    ``pipeline``: a simulated city through the real broker and the whole supervisor into InfluxDB
    (tests/grafana/pipeline_run.py); facts from what the simulation fixed and the supervisor's
    final state. ``synthetic``: line protocol written directly, with values exact enough to check
    savings, night flows and the few panels a short pipeline run cannot feed.
    """
    db = influx.create()
    try:
        if request.param == "pipeline":
            from tests.grafana.pipeline_run import pipeline_run

            start, end, facts = pipeline_run(influx, db, tmp_path_factory.mktemp("grafana-run"))
            yield GrafanaData(db=db, start_ms=start, end_ms=end, facts=facts, source="pipeline",
                              not_fed=PIPELINE_NOT_FED)
        else:
            lines, facts = simulate()
            write(influx, db, lines)
            # a range that, like Grafana's, does not start or end on a bucket boundary
            yield GrafanaData(db=db, start_ms=T0_MS - 7 * MIN_MS, end_ms=T0_MS + (MINUTES + 7) * MIN_MS, facts=facts)
    finally:
        influx.drop(db)
