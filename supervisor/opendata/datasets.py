"""The open datasets: what each one holds, its Table Schema, and the queries that build it.

Every dataset is a privacy-safe aggregate of the stored measurements (supervisor/storage/schema.py:
the family measurements ``traffic``, ``lighting``, ``water``, ``air``, tags ``device``, ``zone``,
``channel``) joined with the network model (streets, zones, positions). Periods are UTC: hourly rows
are ``[start_datetime, end_datetime)``, daily rows are UTC days. A dataset's rows are built by
:attr:`Dataset.build` and written by :mod:`supervisor.opendata.export`; its Table Schema is
:data:`DATASETS` ``[name].table_schema(k)``, and a test validates every file with frictionless.

Household water meters never leave this module: meter ids are read to count the meters of a cell
and are dropped there; a cell (district x day) of fewer than ``k`` meters is published with its
volume and meter count empty and ``suppressed`` true.
"""

# InfluxQL built from numbers (epoch seconds, the validated rated power and standby) and the storage
# configuration's database name, never from a request: S608 (SQL built from strings) does not apply.
# ruff: noqa: S608
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.model import CityModel
    from supervisor.opendata.config import OpenDataConfig
    from supervisor.opendata.source import InfluxReader, Row

HOUR, DAY = 3600, 86400
COMPTAGE_MOBILITES = "https://schema.data.gouv.fr/etalab/schema-comptage-mobilites-measure/"

Cell = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # Table Schema type: string, integer, number, boolean, date, datetime
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    at_least_k: bool = False  # its minimum is the export's k: the schema itself checks the suppression

    def table_schema(self, k: int) -> dict[str, Any]:
        f: dict[str, Any] = {"name": self.name, "type": self.type, "description": self.description}
        c: dict[str, Any] = {}
        if self.required:
            c["required"] = True
        if self.at_least_k:
            c["minimum"] = k
        elif self.minimum is not None:
            c["minimum"] = self.minimum
        if self.maximum is not None:
            c["maximum"] = self.maximum
        if c:
            f["constraints"] = c
        if self.unit:
            f["unit"] = self.unit  # informative (not a Table Schema keyword; validators ignore it)
        return f


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    title: str
    description: str
    frequency: str  # hourly | daily: the rows' time step
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    conforms_to: tuple[str, ...] = ()  # national schemas whose conventions the columns follow
    build: Callable[[InfluxReader, CityModel, OpenDataConfig, int, int], list[tuple[Cell, ...]]] = field(
        default=lambda *_: [], compare=False, repr=False)

    def table_schema(self, k: int) -> dict[str, Any]:
        """The Table Schema of the files of an export whose water cells aggregate at least ``k`` meters."""
        return {
            "$schema": "https://specs.frictionlessdata.io/schemas/table-schema.json",
            "name": self.name, "title": self.title, "description": self.description,
            "fields": [c.table_schema(k) for c in self.columns],
            "primaryKey": list(self.primary_key),
            "missingValues": [""],
        }


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _time(start: int, end: int) -> str:
    return f"time >= {start}s AND time < {end}s"


def _chunks(start: int, end: int, step: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` in windows of ``step`` s: one answer of InfluxDB stays bounded (a day of hourly
    rows, a week of daily rows) whatever the period, and so does the export's memory."""
    for a in range(start, end, step):
        yield a, min(a + step, end)


def _rows(src: InfluxReader, start: int, end: int, step: int, query: Callable[[int, int], str]) -> Iterator[Row]:
    """The rows of ``query(a, b)`` over every window of :func:`_chunks`."""
    for a, b in _chunks(start, end, step):
        yield from src.select(query(a, b))[0]


def _num(v: Any, digits: int = 3) -> float | None:
    return None if v is None else round(float(v), digits)


# -- traffic: hourly counts and mean speed per street --------------------------------------------
def _traffic(src: InfluxReader, model: CityModel, cfg: OpenDataConfig, start: int, end: int) -> list[tuple[Cell, ...]]:
    # one counting point = one (device, channel) series; its hourly mean flow (veh/h) over one hour is
    # the vehicles that passed it in that hour
    acc: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    sensors: dict[tuple[str, int], set[str]] = defaultdict(set)
    devices = model.devices
    for r in _rows(src, start, end, DAY, lambda a, b: (
            f'SELECT mean("flow") AS "flow", mean("speed") AS "speed" FROM {src.measurement("traffic")} '
            f'WHERE {_time(a, b)} GROUP BY time(1h), "device", "channel" fill(none)')):
        dev = devices.get(r.tags.get("device", ""))
        if dev is None or dev.street is None or r.values.get("flow") is None:
            continue
        a = acc[(dev.street, r.time)]
        flow = float(r.values["flow"])
        a[0] += flow
        speed = r.values.get("speed")
        if speed is not None:
            a[1] += flow * float(speed)  # flow-weighted speed
            a[2] += flow
            a[3] += float(speed)
            a[4] += 1
        sensors[(dev.street, r.time)].add(dev.id)
    rows: list[tuple[Cell, ...]] = []
    for (street, t), (count, fs, fw, s, n) in sorted(acc.items()):
        speed = fs / fw if fw > 0 else (s / n if n else None)
        name = model.streets[street].name if street in model.streets else None
        rows.append((street, name, iso(t), iso(t + HOUR), round(count, 1), _num(speed, 1), len(sensors[(street, t)])))
    return rows


TRAFFIC = Dataset(
    "traffic-hourly", "Hourly traffic counts and mean speed per street",
    "Vehicles counted per street and hour by the city's road sensors, and their mean speed. `count` sums, over "
    "the street's counting points (sensor and lane), the hour's mean flow (veh/h) over one hour; `mean_speed_kmh` "
    "is weighted by flow. Times are UTC, start inclusive, end exclusive (the conventions of the national "
    "schema comptage-mobilites, measure file).",
    "hourly",
    (Column("street_id", "string", "street identifier in the city inventory (streets.geojson)", True),
     Column("street_name", "string", "street name"),
     Column("start_datetime", "datetime", "start of the hour, ISO 8601 UTC, inclusive", True),
     Column("end_datetime", "datetime", "end of the hour, ISO 8601 UTC, exclusive", True),
     Column("count", "number", "vehicles counted over the hour", True, minimum=0, unit="veh"),
     Column("mean_speed_kmh", "number", "flow-weighted mean speed", minimum=0, unit="km/h"),
     Column("sensors", "integer", "counting sensors of the street that reported in the hour", True, minimum=1)),
    ("street_id", "start_datetime"), ("traffic", "comptage", "mobilité"), (COMPTAGE_MOBILITES,), _traffic)


# -- lighting: daily energy per cabinet and savings against full power ---------------------------
def _lighting(src: InfluxReader, model: CityModel, cfg: OpenDataConfig, start: int, end: int) -> list[tuple[Cell, ...]]:
    m = src.measurement("lighting")
    lit = f'CEIL(("power" - {cfg.standby_w:g}) / 1000000)'  # 1 while the cabinet draws over its standby
    full = f'("lamps" - "lamp_failures") * {cfg.lamp_rated_w:g} * {lit}'
    # cabinet totals only (the points carrying "lamps"), never circuits: nothing counted twice; one
    # integral() per statement (InfluxDB 1.6 mixes up two integrals over a sub-query, grafana/build.py)
    measured: dict[tuple[str, int], float] = {}
    baseline: dict[tuple[str, int], float] = {}
    hours: dict[tuple[str, int], float] = {}
    lamps: dict[tuple[str, int], float] = {}
    for a, b in _chunks(start, end, 7 * DAY):
        t = _time(a, b)
        inner = f'FROM {m} WHERE {t} AND "lamps" > 0 GROUP BY "device"'
        by = f"WHERE {t} GROUP BY time(1d), \"device\" fill(none)"
        q = ";".join([
            f'SELECT integral("power", 1h) / 1000 AS "v" FROM {m} WHERE {t} AND "lamps" > 0 GROUP BY time(1d), '
            f'"device" fill(none)',
            f'SELECT integral("w", 1h) / 1000 AS "v" FROM (SELECT {full} AS "w" {inner}) {by}',
            f'SELECT integral("b", 1h) AS "v" FROM (SELECT {lit} AS "b" {inner}) {by}',
            f'SELECT max("lamps") AS "v" FROM {m} WHERE {t} AND "lamps" > 0 GROUP BY time(1d), "device" fill(none)',
        ])
        for acc, rows in zip((measured, baseline, hours, lamps), src.select(q), strict=True):
            acc.update(_by_key(rows))
    out: list[tuple[Cell, ...]] = []
    devices = model.devices
    for key in sorted(measured):
        dev = devices.get(key[0])
        if dev is None or dev.kind != "lighting_cabinet":
            continue
        kwh = max(0.0, measured[key])
        full_kwh = max(0.0, baseline.get(key, 0.0))
        saved = full_kwh - kwh
        out.append((dev.id, dev.zone, day(key[1]), round(kwh, 3), round(full_kwh, 3), round(saved, 3),
                    round(100.0 * saved / full_kwh, 1) if full_kwh > 0 else None,
                    round(max(0.0, hours.get(key, 0.0)), 2), int(lamps[key]) if key in lamps else None))
    return out


def _by_key(rows: Iterable[Row]) -> dict[tuple[str, int], float]:
    return {(r.tags.get("device", ""), r.time): float(r.values["v"]) for r in rows if r.values.get("v") is not None}


LIGHTING = Dataset(
    "lighting-daily", "Daily street-lighting energy per cabinet and savings against full power",
    "Energy drawn per lighting cabinet and UTC day (integral of the measured power), the full-power baseline "
    "(working lamps x rated lamp power x hours lit, lit meaning the cabinet draws more than its standby) and the "
    "saving (baseline minus measured) that dimming made. Rated lamp power and standby are the publisher's "
    "settings (docs/open-data.md).",
    "daily",
    (Column("cabinet_id", "string", "lighting cabinet (controller) identifier, as in cabinets.geojson", True),
     Column("zone_id", "string", "district of the cabinet (districts.geojson)", True),
     Column("date", "date", "UTC day", True),
     Column("energy_kwh", "number", "energy drawn by the cabinet's lamps", True, minimum=0, unit="kWh"),
     Column("full_power_kwh", "number", "baseline: working lamps x rated power x hours lit", True, minimum=0,
            unit="kWh"),
     Column("savings_kwh", "number", "full_power_kwh - energy_kwh (negative when lamps drew more than rated)",
            True, unit="kWh"),
     Column("savings_pct", "number", "savings_kwh as a share of full_power_kwh (empty when the baseline is 0)",
            unit="%"),
     Column("hours_lit", "number", "hours the cabinet drew more than its standby", True, minimum=0, maximum=24,
            unit="h"),
     Column("lamps", "integer", "lamps on the cabinet", minimum=0)),
    ("cabinet_id", "date"), ("éclairage public", "énergie", "street lighting"), (), _lighting)


# -- water: daily consumption per district, k-anonymous -------------------------------------------
def _water(src: InfluxReader, model: CityModel, cfg: OpenDataConfig, start: int, end: int) -> list[tuple[Cell, ...]]:
    m = src.measurement("water")
    # the index is a counter (it may reset): the day's use is the sum of its non-negative steps; the
    # inner range starts a day early so the step into the first day is counted in that day
    volume: dict[tuple[str, int], float] = defaultdict(float)
    meters: dict[tuple[str, int], int] = defaultdict(int)
    devices = model.devices
    for r in _rows(src, start, end, 7 * DAY, lambda a, b: (
            f'SELECT sum("d") AS "v" FROM (SELECT non_negative_difference("index") AS "d" FROM {m} '
            f'WHERE {_time(a - DAY, b)} GROUP BY "device", "zone") WHERE {_time(a, b)} '
            f'GROUP BY time(1d), "device", "zone" fill(none)')):
        dev = devices.get(r.tags.get("device", ""))
        zone = dev.zone if dev is not None else r.tags.get("zone", "")
        if not zone or r.values.get("v") is None:
            continue
        volume[(zone, r.time)] += float(r.values["v"])
        meters[(zone, r.time)] += 1
    out: list[tuple[Cell, ...]] = []
    zones = sorted(set(model.zones) | {z for z, _ in meters})
    for d in range(start - start % DAY, end, DAY):
        for z in zones:
            n = meters.get((z, d), 0)
            name = model.zones[z].name if z in model.zones else None
            if n >= cfg.k:
                out.append((z, name, day(d), round(volume[(z, d)], 3), n, False, None))
            else:
                out.append((z, name, day(d), None, None, True, f"fewer than {cfg.k} meters"))
    return out


WATER = Dataset(
    "water-daily", "Daily water consumption per district",
    "Water drawn per district and UTC day, summed over the district's household meters (the non-negative steps "
    "of each meter's index). Never per household: a cell of fewer than k meters is suppressed (volume and meter "
    "count empty, `suppressed` true, the reason given); no city total is published, so no suppressed cell can "
    "be derived by subtraction.",
    "daily",
    (Column("zone_id", "string", "district identifier (districts.geojson)", True),
     Column("zone_name", "string", "district name"),
     Column("date", "date", "UTC day", True),
     Column("volume_m3", "number", "water drawn in the district that day (empty when suppressed)", minimum=0,
            unit="m3"),
     Column("meters", "integer", "meters aggregated (at least k; empty when suppressed)", at_least_k=True),
     Column("suppressed", "boolean", "true when the cell aggregates fewer than k meters and is withheld", True),
     Column("suppression_reason", "string", "why the cell is withheld")),
    ("zone_id", "date"), ("eau", "consommation", "water"), (), _water)


# -- air quality: hourly per station -------------------------------------------------------------
_AIR = ("no2", "pm10", "pm25", "o3")


def _air(src: InfluxReader, model: CityModel, cfg: OpenDataConfig, start: int, end: int) -> list[tuple[Cell, ...]]:
    sel = ", ".join(f'mean("{p}") AS "{p}"' for p in _AIR)
    out: list[tuple[Cell, ...]] = []
    devices = model.devices
    for r in _rows(src, start, end, DAY, lambda a, b: (
            f'SELECT {sel}, max("eaqi") AS "eaqi" FROM {src.measurement("air")} WHERE {_time(a, b)} '
            f'GROUP BY time(1h), "device" fill(none)')):
        dev = devices.get(r.tags.get("device", ""))
        if dev is None or dev.family != "air":
            continue
        eaqi = r.values.get("eaqi")
        out.append((dev.id, dev.zone, round(dev.lon, 6), round(dev.lat, 6), iso(r.time), iso(r.time + HOUR),
                    *(_num(r.values.get(p), 1) for p in _AIR), None if eaqi is None else int(eaqi)))
    out.sort(key=lambda row: (str(row[0]), str(row[4])))
    return out


def _conc(name: str, what: str) -> Column:
    return Column(f"{name}_ugm3", "number", f"hourly mean {what} concentration", minimum=0, unit="µg/m3")


AIR = Dataset(
    "air-hourly", "Hourly air quality per station",
    "Hourly mean concentrations measured by the city's air-quality stations, and the worst European Air "
    "Quality Index level of the hour (1 good to 6 extremely poor). Times are UTC.",
    "hourly",
    (Column("station_id", "string", "station identifier", True),
     Column("zone_id", "string", "district of the station", True),
     Column("longitude", "number", "WGS84 longitude", True, minimum=-180, maximum=180),
     Column("latitude", "number", "WGS84 latitude", True, minimum=-90, maximum=90),
     Column("start_datetime", "datetime", "start of the hour, ISO 8601 UTC, inclusive", True),
     Column("end_datetime", "datetime", "end of the hour, ISO 8601 UTC, exclusive", True),
     _conc("no2", "nitrogen dioxide"), _conc("pm10", "PM10"), _conc("pm25", "PM2.5"), _conc("o3", "ozone"),
     Column("eaqi", "integer", "worst European Air Quality Index level of the hour", minimum=1, maximum=6)),
    ("station_id", "start_datetime"), ("qualité de l'air", "air quality"), (), _air)

#: the tabular datasets, exported per period
DATASETS: dict[str, Dataset] = {d.name: d for d in (TRAFFIC, LIGHTING, WATER, AIR)}
