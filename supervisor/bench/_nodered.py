"""Node-RED baseline for ``bench ingest``: the same messages through Node-RED 4 into InfluxDB.

Node-RED 4 and node-red-contrib-influxdb are installed with npm into ``var/node-red/npm`` (a cache,
git-ignored; set ``URBAN_NODE_RED_DIR`` to use another place). The generated flow is the one a
Node-RED user would build: ``mqtt in`` (QoS 1, ``city/#``) → ``json`` → ``function`` (the native
payloads mapped to the supervisor's points: same measurements, tags and fields, one point per
reading and per event, gathered into batches of up to 5,000 points or 100 ms) → ``influxdb
batch`` (InfluxDB 1.x, ms precision) into a fresh database.

Differences that favour Node-RED, said where the figure is reported: mqtt.js acknowledges each
message on receipt (not after storage, so no at-least-once), nothing is validated (no ranges, no
identifiers, no refusals), there is no device state and no rules, and integers are written as
floats. The rate is timed from the publisher's start until InfluxDB holds every point: the
server's ``pointsWrittenOK`` counter (``/debug/vars``, cheap) is polled often, then the points are
counted once (``SELECT count``, costly) to confirm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from supervisor.bench.procs import free_port
from supervisor.bench.report import rss_mb

PACKAGES = ("node-red@4", "node-red-contrib-influxdb@0.7")
BATCH = 5000
FLUSH_MS = 100

# function node: native payload -> points (measurement, tags, fields, timestamp); batches in context
_MAP = r"""
const p = msg.topic.split("/");
if (p.length !== 5 || p[0] !== "city") { return null; }
const zone = p[1], fam = p[2], device = p[3], kind = p[4];
const o = msg.payload;
if (o === null || typeof o !== "object") { return null; }
const t = new Date(typeof o.ts === "number" ? Math.round(o.ts * 1000) : Date.now());
const buf = context.get("buf");
function pick(keys, src) {
  const f = {}; let n = 0;
  for (const k of keys) { const v = src[k]; if (v !== undefined && v !== null) { f[k] = v; n++; } }
  return n ? f : null;
}
function reading(fields, tags) {
  if (fields) { buf.push({measurement: fam, tags: Object.assign({device: device, zone: zone}, tags || {}),
                          fields: fields, timestamp: t}); }
}
function event(k, data) {
  buf.push({measurement: "events", tags: {device: device, family: fam, kind: k, zone: zone},
            fields: {value: 1, data: JSON.stringify(data)}, timestamp: t});
}
if (fam === "traffic") {
  reading(pick(["flow", "speed", "occupancy", "heavy_flow"], o));
} else if (fam === "lighting" && kind === "telemetry") {
  if (Array.isArray(o.circuits)) {
    reading(pick(["power", "energy", "voltage", "current", "lamp_failures", "lamps", "door_open"], o));
    for (const c of o.circuits) { reading(pick(["on", "level", "power"], c), {channel: String(c.id)}); }
  } else {
    reading(pick(["on", "level", "power", "setpoint"], o));
  }
} else if (fam === "cctv" && kind === "telemetry") {
  reading(pick(["online", "recording", "fps", "bitrate", "tamper"], o));
} else if (fam === "cctv" && kind === "event") {
  const data = {}; for (const k of Object.keys(o)) { if (k !== "ts" && k !== "type") { data[k] = o[k]; } }
  event(String(o.type).toLowerCase(), data);
} else if (fam === "water") {
  let alarms;
  if (Array.isArray(o.alarms)) {
    alarms = o.alarms.map(x => String(x).toUpperCase()).filter(x => x !== "OK" && x !== "NO_ALARM");
  }
  const f = pick(["index", "flow"], o) || {};
  if (alarms !== undefined) { f.alarms = alarms.join(","); }
  reading(Object.keys(f).length ? f : null);
  if (alarms) { for (const a of alarms) { event("alarm", {token: a}); } }
}
if (buf.length >= %(batch)d) { context.set("buf", []); return {payload: buf}; }
return null;
"""

_INIT = r"""
context.set("buf", []);
const timer = setInterval(function () {
  const buf = context.get("buf");
  if (buf.length) { context.set("buf", []); node.send({payload: buf}); }
}, %(flush)d);
context.set("timer", timer);
"""

_FINAL = 'clearInterval(context.get("timer"));'


def install_dir() -> Path:
    env = os.environ.get("URBAN_NODE_RED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "var" / "node-red" / "npm"


def available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def ensure_installed(timeout: float = 600.0) -> Path:
    """``red.js`` of Node-RED 4 with node-red-contrib-influxdb, installed on first use."""
    d = install_dir()
    red = d / "node_modules" / "node-red" / "red.js"
    influx = d / "node_modules" / "node-red-contrib-influxdb" / "influxdb.js"
    if red.exists() and influx.exists():
        return red
    d.mkdir(parents=True, exist_ok=True)
    pkg = d / "package.json"
    if not pkg.exists():
        pkg.write_text(json.dumps({"name": "urban-bench-node-red", "private": True}))
    res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
                         cwd=d, capture_output=True, timeout=timeout, check=False)
    if res.returncode != 0 or not red.exists():
        raise RuntimeError(f"npm install {' '.join(PACKAGES)} in {d} failed ({res.returncode}): "
                           f"{res.stderr.decode(errors='replace')[-600:]}")
    return red


def _flow(mqtt_port: int, influx: urllib.parse.SplitResult, database: str) -> list[dict[str, Any]]:
    return [
        {"id": "ub_tab", "type": "tab", "label": "bench"},
        {"id": "ub_broker", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1", "port": str(mqtt_port),
         "clientid": f"node-red-bench-{os.getpid()}", "autoConnect": True, "usetls": False, "protocolVersion": "4",
         "keepalive": "60", "cleansession": True},
        {"id": "ub_influx", "type": "influxdb", "hostname": influx.hostname or "127.0.0.1",
         "port": str(influx.port or 8086), "protocol": "http", "database": database, "name": "bench",
         "usetls": False, "influxdbVersion": "1.x"},
        {"id": "ub_in", "type": "mqtt in", "z": "ub_tab", "topic": "city/#", "qos": "1", "datatype": "auto-detect",
         "broker": "ub_broker", "nl": False, "rap": False, "inputs": 0, "wires": [["ub_json"]]},
        {"id": "ub_json", "type": "json", "z": "ub_tab", "property": "payload", "action": "obj", "pretty": False,
         "wires": [["ub_map"]]},
        {"id": "ub_map", "type": "function", "z": "ub_tab", "name": "native → points",
         "func": _MAP % {"batch": BATCH}, "initialize": _INIT % {"flush": FLUSH_MS}, "finalize": _FINAL,
         "outputs": 1, "timeout": 0, "noerr": 0, "libs": [], "wires": [["ub_write"]]},
        {"id": "ub_write", "type": "influxdb batch", "z": "ub_tab", "influxdb": "ub_influx", "precision": "ms",
         "retentionPolicy": "", "name": "", "wires": []},
    ]


class NodeRedProcess:
    """Node-RED running the generated flow headless (no editor, no admin API)."""

    def __init__(self, workdir: Path, mqtt_port: int, influx_url: str, database: str) -> None:
        red = ensure_installed()
        user = workdir / "node-red"
        user.mkdir(parents=True, exist_ok=True)
        (user / "flows.json").write_text(json.dumps(_flow(mqtt_port, urllib.parse.urlsplit(influx_url), database)))
        settings = user / "settings.js"
        settings.write_text(
            "module.exports = {\n"
            f"  uiPort: {free_port()}, uiHost: '127.0.0.1', httpAdminRoot: false, httpNodeRoot: false,\n"
            "  flowFile: 'flows.json', credentialSecret: false, disableEditor: true,\n"
            "  logging: {console: {level: 'warn', metrics: false, audit: false}},\n"
            "  contextStorage: {default: {module: 'memory'}},\n"
            "  editorTheme: {projects: {enabled: false}}, telemetry: {enabled: false},\n"
            "};\n")
        self.log_path = user / "node-red.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(["node", str(red), "--settings", str(settings), "--userDir", str(user)],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=user)
        self.peak_rss = 0.0

    def sample_rss(self) -> None:
        self.peak_rss = max(self.peak_rss, rss_mb(self.proc.pid))

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"Node-RED exited ({self.proc.returncode}): "
                               f"{self.log_path.read_text(errors='replace')[-800:]}")

    def stop(self) -> None:
        from supervisor.bench.procs import end_process

        end_process(self.proc, 15)
        self._log.close()
