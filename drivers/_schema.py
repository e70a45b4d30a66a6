"""Canonical measures: one name, one unit and one storage type per (family, measure).

Every driver, whatever its source format, emits these names in these units (see
``shared/formats.md`` section 5), so that one InfluxDB field and one Grafana panel serve all
sources of a family. The storage type is fixed because InfluxDB refuses a field whose type
changes within a shard.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    unit: str
    kind: type  # float, int, bool or str: the InfluxDB field type
    lo: float | None = None
    hi: float | None = None
    doc: str = ""


F, I, B, S = float, int, bool, str  # noqa: E741 (a table of types reads better short)

CANONICAL: dict[str, dict[str, MeasureSpec]] = {
    "traffic": {
        "flow": MeasureSpec("veh/h", F, 0, 20000, "vehicle flow rate"),
        "speed": MeasureSpec("km/h", F, 0, 300, "mean speed"),
        "occupancy": MeasureSpec("%", F, 0, 100, "share of time the detector is occupied"),
        "heavy_flow": MeasureSpec("veh/h", F, 0, 20000, "heavy-vehicle flow rate"),
        "count": MeasureSpec("veh", I, 0, None, "vehicles counted in the reported interval"),
        "interval": MeasureSpec("s", F, 0, None, "length of the counting interval"),
        "v85": MeasureSpec("km/h", F, 0, 300, "85th percentile speed"),
        "uptime": MeasureSpec("%", F, 0, 100, "share of the interval the counter was active"),
        "bike_flow": MeasureSpec("veh/h", F, 0, 20000, "two-wheeler flow rate"),
        "pedestrian_flow": MeasureSpec("ped/h", F, 0, 100000, "pedestrian flow rate"),
        "speed_ratio": MeasureSpec("%", F, 0, 200, "mean speed as a share of the free-flow speed"),
        "capacity_use": MeasureSpec("%", F, 0, 1000, "flow as a share of the lane's maximum capacity"),
    },
    "lighting": {
        "on": MeasureSpec("bool", B, doc="circuit or lamp switched on"),
        "level": MeasureSpec("%", F, 0, 100, "applied dimming level"),
        "setpoint": MeasureSpec("%", F, 0, 100, "requested dimming level"),
        "power": MeasureSpec("W", F, 0, 1e6, "active power"),
        "energy": MeasureSpec("kWh", F, 0, None, "energy counter (may reset)"),
        "voltage": MeasureSpec("V", F, 0, 1000, "RMS voltage"),
        "current": MeasureSpec("A", F, 0, 10000, "RMS current"),
        "power_factor": MeasureSpec("1", F, -1, 1, "power factor"),
        "lamp_failures": MeasureSpec("count", I, 0, None, "lamps reported failed"),
        "lamps": MeasureSpec("count", I, 0, None, "lamps on the circuit or cabinet"),
        "color_temp": MeasureSpec("K", F, 1000, 10000, "colour temperature"),
        "rssi": MeasureSpec("dBm", F, -150, 20, "radio signal"),
        "online": MeasureSpec("bool", B, doc="controller reachable"),
        "lumens": MeasureSpec("lm", F, 0, None, "light measured at the lamp, as sent (AsyncAPI Streetlights)"),
        "lqi": MeasureSpec("LQI", I, 0, 255, "Zigbee link quality indicator (not convertible to dBm)"),
        "energy_period": MeasureSpec("kWh", F, 0, None, "energy since the previous report (Tasmota Period)"),
        "door_open": MeasureSpec("bool", B, doc="cabinet door open"),
        "reactive_power": MeasureSpec("var", F, -1e6, 1e6, "reactive power"),
        "faults": MeasureSpec("tokens", S, doc="active fault tokens, upper case, comma separated"),
    },
    "cctv": {
        "online": MeasureSpec("bool", B, doc="camera reachable and streaming"),
        "recording": MeasureSpec("bool", B, doc="recording active"),
        "fps": MeasureSpec("fps", F, 0, 1000, "frames per second received"),
        "bitrate": MeasureSpec("kbit/s", F, 0, 1e7, "stream bitrate"),
        "tamper": MeasureSpec("bool", B, doc="tamper detected (covered, moved, defocused)"),
        "motion": MeasureSpec("bool", B, doc="motion currently detected"),
        "objects": MeasureSpec("count", I, 0, None, "objects currently tracked"),
        "inference_ms": MeasureSpec("ms", F, 0, None, "detector inference time"),
        "uptime": MeasureSpec("s", F, 0, None, "time since start"),
        "enabled": MeasureSpec("bool", B, doc="camera processing enabled in the NVR (not a health signal)"),
        "detect": MeasureSpec("bool", B, doc="object detection enabled in the NVR"),
        "cpu": MeasureSpec("%", F, 0, None, "NVR CPU usage (above 100 on several cores)"),
        "gpu": MeasureSpec("%", F, 0, 100, "NVR GPU usage"),
        "battery": MeasureSpec("%", F, 0, 100, "battery charge"),
        "rssi": MeasureSpec("dBm", F, -150, 20, "radio signal"),
    },
    "water": {
        "index": MeasureSpec("m3", F, 0, None, "volume index (counter; may reset)"),
        "flow": MeasureSpec("m3/h", F, 0, 10000, "flow rate"),
        "alarms": MeasureSpec("tokens", S, doc="active alarm tokens, upper case, comma separated"),
        "temperature": MeasureSpec("°C", F, -50, 150, "water temperature"),
        "battery": MeasureSpec("%", F, 0, 100, "battery charge"),
        "rssi": MeasureSpec("dBm", F, -150, 20, "radio signal"),
        "target_index": MeasureSpec("m3", F, 0, None, "volume index at the last billing date"),
        "max_flow": MeasureSpec("m3/h", F, 0, 10000, "highest flow over the meter's reporting window"),
        "min_flow": MeasureSpec("m3/h", F, 0, 10000, "lowest flow over the meter's reporting window"),
        "external_temperature": MeasureSpec("°C", F, -50, 150, "temperature outside the pipe"),
    },
    "air": {
        "no2": MeasureSpec("µg/m3", F, 0, 2000, "nitrogen dioxide concentration"),
        "pm10": MeasureSpec("µg/m3", F, 0, 2000, "particulate matter < 10 µm"),
        "pm25": MeasureSpec("µg/m3", F, 0, 2000, "particulate matter < 2.5 µm"),
        "o3": MeasureSpec("µg/m3", F, 0, 2000, "ozone concentration"),
        "eaqi": MeasureSpec("level", I, 1, 6, "European Air Quality Index level (1 good .. 6 extremely poor)"),
        "temperature": MeasureSpec("°C", F, -60, 70, "air temperature"),
        "humidity": MeasureSpec("%", F, 0, 100, "relative humidity"),
    },
}

FAMILIES: tuple[str, ...] = tuple(CANONICAL)


def spec(family: str, measure: str) -> MeasureSpec | None:
    fam = CANONICAL.get(family)
    return None if fam is None else fam.get(measure)


def unit_of(family: str, measure: str) -> str:
    s = spec(family, measure)
    return "" if s is None else s.unit


def measures_of(*families: str) -> dict[tuple[str, str], str]:
    """``{(family, measure): unit}`` for every canonical measure of the given families."""
    return {(f, m): s.unit for f in families for m, s in CANONICAL[f].items()}
