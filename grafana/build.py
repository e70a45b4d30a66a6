# The InfluxQL here is built from constants of this file only (no outside input): S608 does not apply.
# "×" is the multiplication sign of the panel descriptions the city staff read.
# ruff: noqa: S608, RUF001, RUF003
"""Generate the Grafana dashboards of urban-supervisor (``grafana/dashboards/*.json``).

One generator keeps the eight boards consistent: the same datasource uid, the same template
variables, the same annotation of rule decisions, the same InfluxQL conventions:

* every query is raw InfluxQL against the schema of ``docs/architecture.md``;
* every column of the outermost ``SELECT`` is named with ``AS`` (legends and tests rely on it);
* template variables are used as regexes (``=~ /^$zone$/``) so that "All" (``.*``) works;
* ``$timeFilter`` is in every statement that reads data, inner sub-queries included.

Run ``python grafana/build.py`` after a change and commit the JSON; ``tests/grafana`` checks the
committed files equal this generator's output and runs every query against a real InfluxDB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE_UID = "urban-influx"
DS = {"type": "influxdb", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAGS = ["urban-supervisor"]

Json = dict[str, Any]


# ----------------------------------------------------------------------------- variables


def query_var(name: str, label: str, query: str, *, multi: bool = True) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change: new devices appear without a reload
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "skipUrlSync": False,
        "regex": "",
    }


def textbox_var(name: str, label: str, value: str, description: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "textbox",
        "description": description,
        "query": value,
        "current": {"selected": False, "text": value, "value": value},
        "options": [{"selected": True, "text": value, "value": value}],
        "hide": 0,
        "skipUrlSync": False,
    }


#: the retention policies of docs/data-protection.md, as storage.retention names them by default:
#: the raw points (the database's default policy, ``autogen``) and the hourly and daily aggregates
#: the continuous queries write with the same field names (supervisor/storage/retention.py)
RESOLUTIONS = (("raw (30 days)", "autogen"), ("hourly (2 years)", "hourly"), ("daily (10 years)", "daily"))


def resolution_var() -> Json:
    """``$rp``: which retention policy the long-range panels read (raw, hourly or daily aggregates)."""
    options = [{"selected": i == 0, "text": text, "value": value} for i, (text, value) in enumerate(RESOLUTIONS)]
    return {
        "name": "rp",
        "label": "Resolution",
        "type": "custom",
        "description": "Raw points are kept 30 days: pick hourly for ranges beyond, daily beyond 2 years. "
                       "Aggregates keep the field names (means, sums, last values as the schema declares).",
        "query": ",".join(f"{text} : {value}" for text, value in RESOLUTIONS),
        "current": {"selected": True, "text": RESOLUTIONS[0][0], "value": RESOLUTIONS[0][1]},
        "options": options,
        "multi": False,
        "includeAll": False,
        "hide": 0,
        "skipUrlSync": False,
    }


def zone_var(measurement: str) -> Json:
    return query_var("zone", "Zone", f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "zone"')


def device_var(measurement: str) -> Json:
    return query_var(
        "device", "Device",
        f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "device" WHERE "zone" =~ /^$zone$/',
    )


def family_var() -> Json:
    return query_var("family", "Service", 'SHOW TAG VALUES FROM "fleet" WITH KEY = "family"')


def instance_var() -> Json:
    return query_var("instance", "Instance", 'SHOW TAG VALUES FROM "supervisor" WITH KEY = "instance"')


# ----------------------------------------------------------------------------- annotations


def decisions_annotation(zone_filter: bool = True) -> Json:
    where = "$timeFilter"
    if zone_filter:
        where += ' AND "zone" =~ /^$zone$/'
    query = f'SELECT "text" AS "text", "rule" AS "rule", "device" AS "device" FROM "decisions" WHERE {where}'
    return {
        "name": "Rule decisions",
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": "purple",
        "query": query,
        "textColumn": "text",
        "tagsColumn": "rule,device",
        "titleColumn": "rule",
    }


BUILTIN_ANNOTATION: Json = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


# ----------------------------------------------------------------------------- panels


def target(query: str, ref: str = "A", alias: str = "", fmt: str = "time_series") -> Json:
    t: Json = {"refId": ref, "datasource": DS, "rawQuery": True, "query": query, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def panel(kind: str, title: str, description: str, targets: list[Json], *, unit: str = "short",
          w: int = 12, h: int = 8, interval: str | None = None, decimals: int | None = None,
          options: Json | None = None, custom: Json | None = None, stack: bool = False,
          bars: bool = False, overrides: list[Json] | None = None, no_value: str | None = None) -> Json:
    defaults: Json = {"unit": unit}
    if no_value is not None:  # what the panel shows when the query has no row (e.g. a count of nothing)
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        c: Json = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 30 if bars else 10,
                   "spanNulls": True, "showPoints": "never"}
        if stack:
            c["stacking"] = {"mode": "normal", "group": "A"}
        c.update(custom or {})
        defaults["custom"] = c
    p: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "_size": (w, h),
    }
    if interval:
        p["interval"] = interval
    return p


def ts(title: str, description: str, *targets: Json, **kw: Any) -> Json:
    kw.setdefault("options", {"legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]},
                              "tooltip": {"mode": "multi", "sort": "desc"}})
    return panel("timeseries", title, description, list(targets), **kw)


def stat(title: str, description: str, *targets: Json, **kw: Any) -> Json:
    kw.setdefault("w", 6)
    kw.setdefault("h", 5)
    kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                              "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"})
    return panel("stat", title, description, list(targets), **kw)


def table(title: str, description: str, *targets: Json, **kw: Any) -> Json:
    kw.setdefault("options", {"showHeader": True, "cellHeight": "sm"})
    tgts = [dict(t, resultFormat="table") for t in targets]
    return panel("table", title, description, tgts, **kw)


#: device status codes (``device_status.code``, supervisor/state/registry.py) and their colours on the map
STATUS_COLOURS = (("ok", 0, "green"), ("stale", 1, "orange"), ("fault", 2, "red"))


def device_map(title: str, description: str, query: str, *, w: int = 24, h: int = 12) -> Json:
    """A Geomap of devices: one marker per row at (``lat``, ``lon``), coloured by ``code``.

    Grafana gives one frame per ``GROUP BY`` series: the ``merge`` transformation makes them one
    table, whose ``lat``/``lon`` columns place the markers."""
    p = panel("geomap", title, description, [target(query, fmt="table")], w=w, h=h, options={
        "view": {"id": "fit", "allLayers": True, "lat": 0, "lon": 0, "zoom": 15},
        "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True, "showScale": True},
        "basemap": {"type": "default", "name": "Base map", "config": {}},
        "layers": [{
            "type": "markers", "name": "Devices", "tooltip": True,
            "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
            "config": {"showLegend": True, "style": {
                "size": {"fixed": 5, "min": 2, "max": 15},
                "color": {"field": "code", "fixed": "dark-green"},
                "opacity": 0.8,
                "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
            }},
        }],
        "tooltip": {"mode": "details"},
    })
    p["fieldConfig"]["defaults"].update({
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": [
            {"color": colour, "value": None if code == 0 else code} for _, code, colour in STATUS_COLOURS]},
        "mappings": [{"type": "value", "options": {
            str(code): {"text": name, "color": colour, "index": code} for name, code, colour in STATUS_COLOURS}}],
    })
    p["transformations"] = [{"id": "merge", "options": {}}]
    return p


def device_status_map(extra_where: str = "") -> str:
    """Every device's last status and position in the range: the supervisor writes a status point at
    each change and a snapshot of every device at start and every ``state.snapshot_interval``."""
    return ('SELECT last("code") AS "code", last("status") AS "status", last("lat") AS "lat", '
            f'last("lon") AS "lon" FROM "device_status" WHERE $timeFilter{extra_where} GROUP BY "device"')


def layout(panels: list[Json]) -> list[Json]:
    """Place panels left to right, top to bottom, on Grafana's 24-column grid."""
    x = y = row_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_size")
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append({"id": i, **p, "gridPos": {"h": h, "w": w, "x": x, "y": y}})
        x += w
        row_h = max(row_h, h)
    return out


def dashboard(uid: str, title: str, description: str, variables: list[Json], panels: list[Json],
              *, zone_annotation: bool = True, refresh: str = "1m", time_from: str = "now-24h") -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [*TAGS],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [{"type": "dashboards", "tags": [*TAGS], "asDropdown": True, "title": "Boards",
                   "includeVars": False, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "annotations": {"list": [BUILTIN_ANNOTATION, decisions_annotation(zone_annotation)]},
        "templating": {"list": variables},
        "panels": layout(panels),
    }


# ----------------------------------------------------------------------------- shared queries

TF = "$timeFilter"
GT = "GROUP BY time($__interval)"
RP = '"$rp".'  # before a measurement: read the policy $rp chooses (resolution_var)
#: household water meters' raw points: personal data, in a policy of their own (storage.retention.personal_policy)
WATER = '"personal_raw"."water"'


def fleet_last(extra_where: str = "", by_time: bool = False) -> str:
    grp = f'{GT}, "family", "zone"' if by_time else 'GROUP BY "family", "zone"'
    return ('SELECT last("total") AS "total", last("ok") AS "ok", last("stale") AS "stale", '
            f'last("fault") AS "fault" FROM "fleet" WHERE {TF}{extra_where} {grp}')


def active_alarms(extra_where: str = "") -> str:
    """Alarms whose last lifecycle change in the range is not ``cleared``.

    One alarm per (kind, element) at a time: the latest point of each such pair says whether
    it is still active. ``state`` is a tag; selecting it next to the ``last()`` selector returns
    the state of that same point.
    """
    return (
        'SELECT "alarm" AS "alarm", "kind" AS "kind", "element" AS "element", "severity" AS "severity", '
        '"state" AS "state", "devices" AS "devices", "services" AS "services", "affected" AS "affected" '
        'FROM (SELECT last("id") AS "alarm", "severity" AS "severity", "state" AS "state", '
        '"devices" AS "devices", "services" AS "services", "affected" AS "affected" '
        f'FROM "alarms" WHERE {TF}{extra_where} GROUP BY "kind", "element") '
        f"WHERE {TF} AND \"state\" != 'cleared'"
    )


def active_alarm_count(extra_where: str = "", name: str = "active alarms") -> str:
    return (
        f'SELECT count("alarm") AS "{name}" FROM (SELECT last("id") AS "alarm", "state" AS "state" '
        f'FROM "alarms" WHERE {TF}{extra_where} GROUP BY "kind", "element") '
        f"WHERE {TF} AND \"state\" != 'cleared'"
    )


def maintenance_list() -> str:
    """Every maintenance window declared or removed in the range, in its latest state, with its start
    and end (ms, for Grafana's time units)."""
    return (
        'SELECT "element" AS "element", "window" AS "window", "state" AS "state", "start" * 1000 AS "from", '
        '"end" * 1000 AS "until", "reason" AS "reason", "by" AS "by" '
        'FROM (SELECT last("start") AS "start", "end" AS "end", "reason" AS "reason", "by" AS "by", '
        f'"state" AS "state" FROM "maintenance" WHERE {TF} GROUP BY "element", "window") WHERE {TF}'
    )


def alarm_list() -> str:
    """Every alarm of the range in its latest state (one per kind and element: the latest
    occurrence), with who acknowledged it and when it was raised (ms, for Grafana's age)."""
    return (
        'SELECT "alarm" AS "alarm", "state" AS "state", "severity" AS "severity", "kind" AS "kind", '
        '"element" AS "element", "raised_at" * 1000 AS "raised", "acked_by" AS "acknowledged by", '
        '"maintenance" AS "maintenance", "text" AS "text" '
        'FROM (SELECT last("id") AS "alarm", "state" AS "state", "severity" AS "severity", '
        '"raised_at" AS "raised_at", "acked_by" AS "acked_by", "maintenance" AS "maintenance", "text" AS "text" '
        f'FROM "alarms" WHERE {TF} GROUP BY "kind", "element") WHERE {TF}'
    )


#: the network services (VLANs) of the catalogue's families, as written in an alarm's `services`
SERVICES = ("cctv", "lighting", "traffic", "water", "air", "lorawan")  # the catalogue's (a test checks)


def open_alarms_of(service: str) -> str:
    """Active alarms whose impacted services include ``service`` (``services`` is comma-joined)."""
    return (
        f'SELECT count("alarm") AS "{service}" FROM (SELECT last("id") AS "alarm", "state" AS "state", '
        f'"services" AS "services" FROM "alarms" WHERE {TF} GROUP BY "kind", "element") '
        f"WHERE {TF} AND \"state\" != 'cleared' AND \"services\" =~ /(^|,){service}(,|$)/"
    )


def availability(by_time: bool, family_where: str = ' AND "family" =~ /^$family$/ AND "zone" =~ /^$zone$/') -> str:
    inner = fleet_last(family_where, by_time=by_time)
    grp = f'{GT}, "family"' if by_time else 'GROUP BY "family"'
    return (f'SELECT 100 * sum("ok") / sum("total") AS "availability" FROM ({inner}) '
            f'WHERE {TF} {grp}')


# ----------------------------------------------------------------------------- boards

ZONE = '"zone" =~ /^$zone$/'
DEVICE = '"device" =~ /^$device$/'
ZD = f" AND {ZONE} AND {DEVICE}"
FAMILY_ZONE = f' AND "family" =~ /^$family$/ AND {ZONE}'
CCTV_FLEET = f" AND \"family\" = 'cctv' AND {ZONE}"


def overview() -> Json:
    fam = FAMILY_ZONE
    panels = [
        stat("Active alarms", "Alarms raised (or acknowledged) in the selected range and not cleared.",
             target(active_alarm_count())),
        stat("Root causes", "Active alarms on shared infrastructure (kind root_cause).",
             target(active_alarm_count(" AND \"kind\" = 'root_cause'", "root causes"))),
        stat("Messages per second", "Telemetry rate received by the supervisor (all instances).",
             target('SELECT sum("rate") AS "msg/s" FROM (SELECT last("msg_rate") AS "rate" FROM "supervisor" '
                    f'WHERE {TF} GROUP BY "instance") WHERE {TF}'), unit="reqps", decimals=1),
        stat("Devices", "Devices known to the supervisor (last fleet check, selected services and zones).",
             target(f'SELECT sum("total") AS "devices" FROM ({fleet_last(fam)}) WHERE {TF}')),
        table("Devices by service and status",
              "Last fleet check, summed over the selected zones: total, ok (fresh data), stale (silent for "
              "longer than stale_factor × the reporting interval), fault (device reports a fault).",
              target(f'SELECT sum("total") AS "total", sum("ok") AS "ok", sum("stale") AS "stale", '
                     f'sum("fault") AS "fault" FROM ({fleet_last(fam)}) WHERE {TF} GROUP BY "family"'),
              w=12, h=8),
        ts("Device status over time", "Devices ok, stale and in fault, summed over services and zones.",
           target(f'SELECT sum("ok") AS "ok", sum("stale") AS "stale", sum("fault") AS "fault" '
                  f'FROM ({fleet_last(fam, by_time=True)}) WHERE {TF} {GT} fill(previous)'),
           stack=True, w=12, h=8),
        device_map("Devices on the map",
                   "Every device of the selected services and zones at its place in the city model, coloured by "
                   "its last status in the range: green ok, orange stale (silent for longer than stale_factor × "
                   "its reporting interval), red fault. The supervisor stores a snapshot of every device at "
                   "start and every state.snapshot_interval (15 min by default), and each change at once: "
                   "a range shorter than the interval may miss quiet devices.",
                   device_status_map(fam)),
        table("Active alarms", "Alarms not cleared, with the devices and services they affect.",
              target(active_alarms()), w=24, h=8),
        table("Active root causes",
              "Shared infrastructure elements (gateways, backhaul, power feeds) identified as the root cause "
              "of device alarms.",
              target(active_alarms(" AND \"kind\" = 'root_cause'")), w=12, h=7),
        table("Alarm list",
              "Every alarm of the range in its latest state (raised, acknowledged, shelved, cleared): severity, "
              "element, age, who acknowledged it, the maintenance window it fell in. Acknowledge, comment and "
              "shelve with the API or `urban-supervisor alarms`.",
              target(alarm_list()), w=24, h=9,
              overrides=[{"matcher": {"id": "byName", "options": "raised"},
                          "properties": [{"id": "unit", "value": "dateTimeFromNow"},
                                         {"id": "displayName", "value": "age"}]}]),
        table("Maintenance windows",
              "Planned works declared (or removed) in the range: the element, its window and why. Alarms in "
              "the element's impact set during the window are recorded in maintenance and never notified. "
              "Declare them with the API or `urban-supervisor maintenance add`.",
              target(maintenance_list()), w=12, h=5,
              overrides=[{"matcher": {"id": "byName", "options": name},
                          "properties": [{"id": "unit", "value": "dateTimeAsIso"}]} for name in ("from", "until")]),
        stat("Open alarms per service", "Active alarms whose impacted devices include the service "
             "(a root cause over several services counts in each).",
             *(target(open_alarms_of(svc), chr(ord("A") + i)) for i, svc in enumerate(SERVICES)), w=12, h=5,
             no_value="0"),
        ts("Messages per second",
           "msg_rate reported by each instance, and the derivative of its received counter.",
           target(f'SELECT mean("msg_rate") AS "msg_rate" FROM "supervisor" WHERE {TF} {GT}, "instance"',
                  "A", "$tag_instance msg_rate"),
           target(f'SELECT non_negative_derivative(last("received"), 1s) AS "received/s" FROM "supervisor" '
                  f'WHERE {TF} {GT}, "instance"', "B", "$tag_instance received/s"),
           unit="reqps", w=12, h=7),
    ]
    return dashboard("urban-overview", "Urban · City overview",
                     "Devices by service and status, active alarms and root causes, message rate.",
                     [family_var(), zone_var("fleet")], panels)


def _savings_inner(expr: str) -> str:
    # Full-power baseline of a cabinet while it burns: working lamps × rated wattage. "Burning" is
    # measured power above the controller's standby draw: CEIL((power - standby) / 1e6) is 1 when
    # power exceeds $standby_w and 0 (or -0) otherwise, power being at most 1e6 W (drivers/_schema.py).
    # Only points carrying "lamps" (cabinet totals, not circuits) count, so nothing is counted twice.
    return f'SELECT {expr} AS "w" FROM "lighting" WHERE {TF} AND "lamps" > 0{ZD}'


# The lamp-faults rule (rules/_faults.py) raises a day-burning as an alarm of kind
# "rule:day_burning" on the cabinet (supervisor/runtime.py). Alarms carry no zone tag: the
# device variable filters them (a device chosen in a zone), the zone variable alone does not.
DAY_BURNING = "\"kind\" = 'rule:day_burning' AND \"state\" = 'raised' AND \"element\" =~ /^$device$/"

FULL_W = '("lamps" - "lamp_failures") * $lamp_w * CEIL(("power" - $standby_w) / 1000000)'
SAVED_W = f'({FULL_W} - "power")'

# InfluxDB 1.6 returns wrong, varying results for a statement holding two integral() calls over a
# sub-query (one of them comes back null or paired with another series): every statement below
# holds exactly one integral(), and the saving is integrated from the per-point difference
# (the integral is linear, so this is baseline energy minus measured energy).


def savings_total() -> str:
    per_device = (f'SELECT integral("w", 1h) / 1000 AS "kwh" FROM ({_savings_inner(SAVED_W)}) '
                  f'WHERE {TF} GROUP BY "device"')
    # No time condition outside: InfluxDB 1.x stamps integral() without GROUP BY time at epoch 0,
    # so an outer $timeFilter would drop every row (the inner queries carry the range).
    return ('SELECT sum("kwh") AS "kWh saved", sum("kwh") * $price AS "EUR saved", '
            f'sum("kwh") * $co2 AS "kg CO2 saved" FROM ({per_device})')


def savings_series(expr: str, name: str) -> str:
    per_device = (f'SELECT integral("w", 1h) / 1000 AS "kwh" FROM ({_savings_inner(expr)}) '
                  f'WHERE {TF} {GT}, "device"')
    return f'SELECT sum("kwh") AS "{name}" FROM ({per_device}) WHERE {TF} {GT}'


def lighting() -> Json:
    variables = [
        zone_var("lighting"), device_var("lighting"), resolution_var(),
        textbox_var("lamp_w", "Rated lamp power (W)", "60",
                    "Rated wattage of one lamp at 100 %: the full-power baseline is working lamps × this."),
        textbox_var("standby_w", "Standby draw (W)", "20",
                    "A cabinet drawing more than this is burning; below it only the controller is powered."),
        textbox_var("price", "Energy price (€/kWh)", "0.20", "Price of one kWh, to value the energy saved."),
        textbox_var("co2", "Emission factor (kg CO2/kWh)", "0.25", "kg CO2 emitted per kWh of grid electricity."),
    ]
    panels = [
        stat("Savings against full power",
             "Energy, money and CO2 saved by dimming in the selected range: baseline energy (working lamps × "
             "rated wattage × burning hours) minus measured energy, valued at $price €/kWh and $co2 kg CO2/kWh.",
             target(savings_total()), w=12, h=5, decimals=2),
        stat("Failed lamps", "Lamps reported failed, last report of each cabinet.",
             target('SELECT sum("failures") AS "failed lamps" FROM (SELECT last("lamp_failures") AS "failures" '
                    f'FROM "lighting" WHERE {TF}{ZD} GROUP BY "device") WHERE {TF}')),
        stat("Day-burning", "Day-burning detections (power drawn while the sun is up) in the selected range "
             "(filtered by device, not by zone).",
             target(f'SELECT count("id") AS "day-burning" FROM "alarms" WHERE {TF} AND {DAY_BURNING}')),
        ts("Energy: baseline, measured, saved",
           "Per interval: the energy the lamps would have used at 100 % while burning, the energy measured, "
           "and their difference (the saving).",
           target(savings_series(FULL_W, "baseline kWh"), "A"),
           target(savings_series('"power"', "measured kWh"), "B"),
           target(savings_series(SAVED_W, "saved kWh"), "C"),
           unit="kwatth", interval="1h"),
        ts("Power", "Active power of each cabinet or lamp (circuits excluded).",
           target(f'SELECT mean("power") AS "power" FROM {RP}"lighting" WHERE {TF}{ZD} AND "channel" = \'\' '
                  f'{GT}, "device" fill(null)', alias="$tag_device"), unit="watt"),
        ts("Dimming level", "Applied level of each circuit or lamp (0 = off).",
           target(f'SELECT mean("level") AS "level" FROM {RP}"lighting" WHERE {TF}{ZD} {GT}, "device", "channel"',
                  alias="$tag_device $tag_channel"), unit="percent"),
        ts("Metered energy", "Energy counted by the meters per interval (counter increase; resets ignored).",
           target('SELECT sum("kwh") AS "energy" FROM (SELECT non_negative_difference(last("energy")) AS "kwh" '
                  f'FROM {RP}"lighting" WHERE {TF}{ZD} {GT}, "device") WHERE {TF} {GT}'),
           unit="kwatth", interval="1h", bars=True),
        ts("Lamp failures", "Lamps reported failed, per cabinet.",
           target(f'SELECT last("lamp_failures") AS "failures" FROM "lighting" WHERE {TF}{ZD} {GT}, "device" '
                  "fill(previous)", alias="$tag_device"), w=12),
        table("Commands", "Dimming and switching commands, with their state (pending, confirmed, failed).",
              target(f'SELECT "device" AS "device", "state" AS "state", "level" AS "level", '
                     f'"attempts" AS "attempts" FROM "commands" WHERE {TF} AND {DEVICE}'), w=12),
        table("Command outcomes", "Command state changes in the selected range, by state.",
              target(f'SELECT count("attempts") AS "commands" FROM "commands" WHERE {TF} AND {DEVICE} '
                     'GROUP BY "state"'), w=12, h=6),
        table("Day-burning by cabinet", "Day-burning detections per cabinet (filtered by device, not by zone).",
              target(f'SELECT count("id") AS "detections" FROM "alarms" WHERE {TF} AND {DAY_BURNING} '
                     'GROUP BY "element"'),
              w=12, h=6),
    ]
    return dashboard("urban-lighting", "Urban · Lighting",
                     "Street lighting: levels, commands, power, energy, lamp failures, day-burning and the "
                     "savings of dimming against a full-power baseline.", variables, panels)


def traffic() -> Json:
    panels = [
        ts("Flow per zone", "Vehicles per hour, summed over the zone's detectors.",
           target(f'SELECT sum("flow") AS "flow" FROM (SELECT mean("flow") AS "flow" FROM {RP}"traffic" '
                  f'WHERE {TF}{ZD} {GT}, "device", "zone") WHERE {TF} {GT}, "zone"', alias="$tag_zone"),
           unit="veh/h", w=12),
        ts("Mean speed per zone", "Mean speed over the zone's detectors.",
           target(f'SELECT mean("speed") AS "speed" FROM {RP}"traffic" WHERE {TF}{ZD} {GT}, "zone"',
                  alias="$tag_zone"), unit="velocitykmh", w=12),
        ts("Flow per segment", "Vehicles per hour at each detector (road segment).",
           target(f'SELECT mean("flow") AS "flow" FROM {RP}"traffic" WHERE {TF}{ZD} {GT}, "device"',
                  alias="$tag_device"), unit="veh/h", w=8),
        ts("Speed per segment", "Mean speed at each detector.",
           target(f'SELECT mean("speed") AS "speed" FROM {RP}"traffic" WHERE {TF}{ZD} {GT}, "device"',
                  alias="$tag_device"), unit="velocitykmh", w=8),
        ts("Occupancy per segment", "Share of time each detector is occupied (congestion indicator).",
           target(f'SELECT mean("occupancy") AS "occupancy" FROM {RP}"traffic" WHERE {TF}{ZD} {GT}, "device"',
                  alias="$tag_device"), unit="percent", w=8),
        table("Segments, last reading", "Last flow, speed and occupancy of each detector.",
              target('SELECT last("flow") AS "flow", last("speed") AS "speed", last("occupancy") AS "occupancy" '
                     f'FROM "traffic" WHERE {TF}{ZD} GROUP BY "zone", "device"'), w=24),
    ]
    return dashboard("urban-traffic", "Urban · Traffic",
                     "Road sensors: flow, speed and occupancy per segment and per zone.",
                     [zone_var("traffic"), device_var("traffic"), resolution_var()], panels)


def cctv() -> Json:
    cam_last = f'SELECT last("online") AS "online" FROM "cctv" WHERE {TF}{ZD} GROUP BY "device"'
    panels = [
        stat("Cameras online", "Cameras whose last report says online.",
             target(f'SELECT count("online") AS "online" FROM ({cam_last}) WHERE {TF} AND "online" = true')),
        stat("Cameras", "Cameras that reported in the selected range.",
             target(f'SELECT count("online") AS "cameras" FROM ({cam_last}) WHERE {TF}')),
        stat("Tampered cameras", "Cameras whose last report says tamper (covered, moved, defocused).",
             target('SELECT count("tamper") AS "tampered" FROM (SELECT last("tamper") AS "tamper" FROM "cctv" '
                    f'WHERE {TF}{ZD} GROUP BY "device") WHERE {TF} AND "tamper" = true')),
        stat("Availability", "Share of CCTV devices ok at the last fleet check (selected zones).",
             target('SELECT 100 * sum("ok") / sum("total") AS "availability" FROM '
                    f"({fleet_last(CCTV_FLEET)}) "
                    f"WHERE {TF}"), unit="percent", decimals=1),
        ts("Availability over time", "Share of CCTV devices ok (fresh, not in fault), per zone.",
           target('SELECT 100 * sum("ok") / sum("total") AS "availability" FROM '
                  f"({fleet_last(CCTV_FLEET, by_time=True)}) "
                  f'WHERE {TF} {GT}, "zone"', alias="$tag_zone"), unit="percent", w=24, h=7),
        ts("Frames per second", "Frames per second received from each camera.",
           target(f'SELECT mean("fps") AS "fps" FROM "cctv" WHERE {TF}{ZD} {GT}, "device"', alias="$tag_device"),
           unit="fps"),
        ts("Bitrate", "Stream bitrate of each camera.",
           target(f'SELECT mean("bitrate") AS "bitrate" FROM "cctv" WHERE {TF}{ZD} {GT}, "device"',
                  alias="$tag_device"), unit="Kbits"),
        ts("Tamper reports", "Reports with tamper set, and tamper events, per camera.",
           target(f'SELECT count("tamper") AS "tamper" FROM "cctv" WHERE {TF}{ZD} AND "tamper" = true '
                  f'{GT}, "device"', "A", "$tag_device reports"),
           target(f"SELECT count(\"value\") AS \"events\" FROM \"events\" WHERE {TF} AND \"family\" = 'cctv' "
                  f"AND \"kind\" = 'tamper'{ZD} {GT}, \"device\"", "B", "$tag_device events"),
           bars=True),
        table("Cameras offline", "Cameras whose last report says offline.",
              target(f'SELECT "online" AS "online" FROM (SELECT last("online") AS "online" FROM "cctv" '
                     f'WHERE {TF}{ZD} GROUP BY "zone", "device") WHERE {TF} AND "online" = false '
                     'GROUP BY "zone", "device"')),
    ]
    return dashboard("urban-cctv", "Urban · CCTV",
                     "Cameras: availability (share online), frames per second, bitrate, tamper.",
                     [zone_var("cctv"), device_var("cctv")], panels)


def water() -> Json:
    # District flow per hour: each meter's mean flow in the hour, summed over the district (meters
    # report every 15 min, so each reports in every complete hour). Hours cut by the edges of
    # the range may miss meters and would make a false minimum: only hour buckets wholly inside
    # the range count. (InfluxDB 1.6 pitfalls avoided here: fill(previous) in a sub-query breaks
    # the outer aggregation, and an outer aggregate without GROUP BY time over time-grouped
    # sub-queries returns nothing when the range does not start on a bucket boundary.)
    district_1h = (f'SELECT sum("flow") AS "flow" FROM (SELECT mean("flow") AS "flow" FROM {WATER} '
                   f'WHERE {TF} AND {ZONE} GROUP BY time(1h), "device", "zone") '
                   f'WHERE {TF} GROUP BY time(1h), "zone"')
    whole_hours = "time >= ${__from}ms AND time <= ${__to}ms - 1h"
    panels = [
        ts("Consumption per district", "Volume consumed per interval (meter index increase), per zone.",
           target(f'SELECT sum("m3") AS "consumption" FROM (SELECT non_negative_difference(last("index")) AS "m3" '
                  f'FROM {WATER} WHERE {TF}{ZD} {GT}, "device", "zone") WHERE {TF} {GT}, "zone"',
                  alias="$tag_zone"), unit="m3", interval="1h", bars=True, stack=True, w=12),
        ts("Flow per meter", "Instantaneous flow reported by each meter.",
           target(f'SELECT mean("flow") AS "flow" FROM {WATER} WHERE {TF}{ZD} {GT}, "device"', alias="$tag_device"),
           unit="m3/h", w=12),
        ts("Minimum night flow per district",
           "Daily minimum of the district's total flow (hourly means summed over its meters). In a "
           "district the minimum falls at night, when legitimate use is lowest: a rising minimum night flow "
           "is the classic sign of a leak.",
           target(f'SELECT min("flow") AS "min night flow" FROM ({district_1h}) WHERE {whole_hours} '
                  'GROUP BY time(1d), "zone"',
                  alias="$tag_zone"), unit="m3/h", w=12, bars=True),
        stat("Lowest night flow in range",
             "Lowest of the daily minimum night flows of each district over the selected range.",
             target(f'SELECT min("flow") AS "min night flow" FROM ({district_1h}) WHERE {whole_hours} '
                    'GROUP BY time(1d), "zone"', alias="$tag_zone"),
             unit="m3/h", w=12, h=8, decimals=3,
             options={"reduceOptions": {"calcs": ["min"], "fields": "", "values": False},
                      "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"}),
        table("Leak alarms", "Meters whose reports carry the LEAK alarm in the selected range, last report.",
              target(f'SELECT last("alarms") AS "alarms", last("flow") AS "flow" FROM {WATER} '
                     f'WHERE {TF}{ZD} AND "alarms" =~ /LEAK/ GROUP BY "zone", "device"'), w=12),
        ts("Leak reports", "Reports carrying LEAK, per zone.",
           target(f'SELECT count("alarms") AS "leak reports" FROM {WATER} WHERE {TF}{ZD} AND "alarms" =~ /LEAK/ '
                  f'{GT}, "zone"', alias="$tag_zone"), bars=True, w=12),
    ]
    return dashboard("urban-water", "Urban · Water",
                     "Water meters: consumption, flow, minimum night flow per district, leak alarms.",
                     [zone_var("water"), device_var("water")], panels)


# European Air Quality Index levels (drivers/air_quality/README.md): name and colour of each level
EAQI_LEVELS = (("good", "#50f0e6"), ("fair", "#50ccaa"), ("moderate", "#f0e641"), ("poor", "#ff5050"),
               ("very poor", "#960032"), ("extremely poor", "#7d2181"))
UG_M3 = "suffix: µg/m³"


def _eaqi(p: Json) -> Json:
    """``p`` showing an EAQI level (1..6) by its name, coloured as the EEA does."""
    p["fieldConfig"]["defaults"].update({
        "mappings": [{"type": "value", "options": {str(i): {"text": n, "color": c, "index": i - 1}
                                                   for i, (n, c) in enumerate(EAQI_LEVELS, start=1)}}],
        "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": None if i == 1 else i}
                                                     for i, (_, c) in enumerate(EAQI_LEVELS, start=1)]},
        "min": 1, "max": 6, "color": {"mode": "thresholds"},
    })
    return p


def _pollutant(title: str, field: str, description: str) -> Json:
    return ts(title, description,
              target(f'SELECT mean("{field}") AS "{field}" FROM {RP}"air" WHERE {TF}{ZD} {GT}, "device"',
                     alias="$tag_device"), unit=UG_M3, w=12)


def air() -> Json:
    last_index = f'SELECT last("eaqi") AS "eaqi" FROM "air" WHERE {TF}{ZD} GROUP BY "device"'
    panels = [
        stat("Stations", "Air-quality stations that reported in the selected range.",
             target(f'SELECT count("eaqi") AS "stations" FROM ({last_index}) WHERE {TF}')),
        _eaqi(stat("Worst index now", "Highest European Air Quality Index among the stations' last reports.",
                   target(f'SELECT max("eaqi") AS "eaqi" FROM ({last_index}) WHERE {TF}'),
                   options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "background", "graphMode": "none", "textMode": "value"})),
        stat("Stations at poor or worse", "Stations whose last index is 4 (poor) or above.",
             target(f'SELECT count("eaqi") AS "poor" FROM ({last_index}) WHERE {TF} AND "eaqi" >= 4')),
        stat("Mean PM2.5", "Mean fine-particle concentration over the stations and the range.",
             target(f'SELECT mean("pm25") AS "pm25" FROM {RP}"air" WHERE {TF}{ZD}'), unit=UG_M3, decimals=1),
        _eaqi(ts("European Air Quality Index", "Index level of each station (1 good .. 6 extremely poor): "
                 "the worst band among NO2, PM10, PM2.5 and O3.",
                 target(f'SELECT max("eaqi") AS "eaqi" FROM {RP}"air" WHERE {TF}{ZD} {GT}, "device"',
                        alias="$tag_device"), w=24, custom={"lineInterpolation": "stepAfter"})),
        _pollutant("Nitrogen dioxide (NO2)", "no2", "NO2 at each station: traffic's pollutant, peaks at rush hours."),
        _pollutant("Ozone (O3)", "o3", "O3 at each station: made by sunlight, highest on summer afternoons."),
        _pollutant("PM10", "pm10", "Particulate matter under 10 µm at each station."),
        _pollutant("PM2.5", "pm25", "Fine particulate matter under 2.5 µm at each station."),
        ts("Temperature", "Air temperature at each station.",
           target(f'SELECT mean("temperature") AS "temperature" FROM {RP}"air" WHERE {TF}{ZD} {GT}, "device"',
                  alias="$tag_device"), unit="celsius", w=12),
        ts("Relative humidity", "Relative humidity at each station.",
           target(f'SELECT mean("humidity") AS "humidity" FROM {RP}"air" WHERE {TF}{ZD} {GT}, "device"',
                  alias="$tag_device"), unit="humidity", w=12),
        table("Stations, last reading", "Last index and concentrations of each station.",
              target('SELECT last("eaqi") AS "eaqi", last("no2") AS "no2", last("pm10") AS "pm10", '
                     'last("pm25") AS "pm25", last("o3") AS "o3" '
                     f'FROM "air" WHERE {TF}{ZD} GROUP BY "zone", "device"'), w=24),
    ]
    return dashboard("urban-air", "Urban · Air quality",
                     "Air-quality stations: European Air Quality Index, NO2, O3, PM10, PM2.5, temperature "
                     "and humidity per station.",
                     [zone_var("air"), device_var("air"), resolution_var()], panels)


def network() -> Json:
    rc = " AND \"kind\" = 'root_cause'"
    panels = [
        table("Availability per service", "Share of each service's devices ok at the last fleet check.",
              target(availability(by_time=False)), w=12, h=7),
        ts("Availability per service over time", "Share of devices ok, per service (all selected zones).",
           target(availability(by_time=True), alias="$tag_family"), unit="percent", w=12, h=7),
        ts("Devices stale or in fault per zone",
           "Devices silent or in fault, per zone: several services failing together in one zone point at "
           "shared infrastructure.",
           target('SELECT sum("stale") + sum("fault") AS "unavailable" FROM '
                  f'({fleet_last(FAMILY_ZONE, by_time=True)}) '
                  f'WHERE {TF} {GT}, "zone"', alias="$tag_zone"), stack=True, w=12),
        ts("Root-cause alarms per element",
           "Lifecycle changes of root-cause alarms, per shared element (gateway, backhaul, power feed).",
           target(f'SELECT count("id") AS "changes" FROM "alarms" WHERE {TF}{rc} {GT}, "element", "state"',
                  alias="$tag_element $tag_state"), bars=True, w=12),
        table("Shared infrastructure: active root causes",
              "Elements whose root-cause alarm is not cleared, with the devices and services behind them.",
              target(active_alarms(rc)), w=24, h=7),
        table("Shared infrastructure: last state of each element",
              "Last root-cause alarm change of each element in the range (cleared = healthy again).",
              target('SELECT last("id") AS "alarm", "state" AS "state", "severity" AS "severity", '
                     f'"devices" AS "devices", "services" AS "services" FROM "alarms" WHERE {TF}{rc} '
                     'GROUP BY "element"'), w=24, h=7),
    ]
    return dashboard("urban-network", "Urban · Network layers",
                     "Availability per service, health of the shared infrastructure, root-cause alarms.",
                     [family_var(), zone_var("fleet")], panels, zone_annotation=True)


def supervisor() -> Json:
    inst = ' AND "instance" =~ /^$instance$/'
    panels = [
        ts("Ingest rate", "Messages per second received (msg_rate) and points written per second.",
           target(f'SELECT mean("msg_rate") AS "msg/s" FROM "supervisor" WHERE {TF}{inst} {GT}, "instance"',
                  "A", "$tag_instance msg/s"),
           target(f'SELECT non_negative_derivative(last("points_written"), 1s) AS "points/s" FROM "supervisor" '
                  f'WHERE {TF}{inst} {GT}, "instance"', "B", "$tag_instance points/s"),
           unit="reqps"),
        ts("Lag", "Delay between a reading's timestamp and its processing.",
           target(f'SELECT mean("lag_ms") AS "mean", max("lag_ms") AS "max" FROM "supervisor" WHERE {TF}{inst} '
                  f'{GT}, "instance"', alias="$tag_instance $col"), unit="ms"),
        ts("Write latency", "Time taken by one batch write to InfluxDB.",
           target(f'SELECT mean("write_latency_ms") AS "mean", max("write_latency_ms") AS "max" FROM "supervisor" '
                  f'WHERE {TF}{inst} {GT}, "instance"', alias="$tag_instance $col"), unit="ms"),
        ts("Spool depth", "Bytes waiting on disk because InfluxDB could not take them (0 when healthy).",
           target(f'SELECT last("spool_bytes") AS "spool" FROM "supervisor" WHERE {TF}{inst} {GT}, "instance"',
                  alias="$tag_instance"), unit="bytes"),
        ts("Errors by reason", "Ingest errors per interval, by reason and driver.",
           target('SELECT sum("n") AS "errors" FROM (SELECT non_negative_difference(last("count")) AS "n" '
                  f'FROM "ingest_errors" WHERE {TF}{inst} {GT}, "instance", "reason", "driver") '
                  f'WHERE {TF} {GT}, "reason", "driver"', alias="$tag_reason ($tag_driver)"),
           bars=True, stack=True),
        table("Errors by reason, selected range", "Ingest errors counted in the range, by reason.",
              target('SELECT sum("n") AS "errors" FROM (SELECT non_negative_difference("count") AS "n" '
                     f'FROM "ingest_errors" WHERE {TF}{inst} GROUP BY "instance", "reason", "driver") '
                     f'WHERE {TF} GROUP BY "reason"')),
        ts("Control lane: reaction latency and waiting age",
           "What the rules react to goes through the control lane, ahead of bulk telemetry (docs/architecture.md): "
           "the lane's receive-to-reacted latency (p50, p99 over the last minute), the age of the oldest "
           "message waiting in the lane, and of the oldest bulk message not yet stored (in the inbox or "
           "the writer; a growing bulk age is a backlog).",
           target(f'SELECT max("reaction_p50_ms") AS "reaction p50", max("reaction_p99_ms") AS "reaction p99", '
                  f'max("lane_oldest_ms") AS "lane oldest", max("bulk_oldest_ms") AS "bulk oldest" '
                  f'FROM "supervisor" WHERE {TF}{inst} {GT}, "instance"', alias="$tag_instance $col"), unit="ms"),
        ts("Inbox depth: control lane and bulk", "Messages waiting in the control lane and in the bulk inbox.",
           target(f'SELECT max("lane_depth") AS "lane", max("bulk_depth") AS "bulk" FROM "supervisor" '
                  f'WHERE {TF}{inst} {GT}, "instance"', alias="$tag_instance $col")),
        ts("Received, decoded, errors", "Messages per second received, decoded and rejected.",
           target('SELECT non_negative_derivative(last("received"), 1s) AS "received", '
                  'non_negative_derivative(last("decoded"), 1s) AS "decoded", '
                  'non_negative_derivative(last("errors"), 1s) AS "errors" '
                  f'FROM "supervisor" WHERE {TF}{inst} {GT}', alias="$col"), unit="reqps", w=24),
    ]
    return dashboard("urban-supervisor-health", "Urban · Supervisor health",
                     "The supervisor itself: ingest rate, lag, write latency, spool depth, control lane, errors by "
                     "reason.",
                     [instance_var()], panels, zone_annotation=False, refresh="30s", time_from="now-6h")


BOARDS = {
    "city-overview": overview,
    "lighting": lighting,
    "traffic": traffic,
    "cctv": cctv,
    "water": water,
    "air-quality": air,
    "network-layers": network,
    "supervisor-health": supervisor,
}


def render() -> dict[str, str]:
    """File name → JSON text of every board."""
    return {f"{name}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in BOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(BOARDS)} dashboards to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
