/* urban-supervisor operator console (docs/console.md).
 *
 * Everything comes from /api/v1 with the token typed at login, sent as "Authorization: Bearer"
 * (kept in sessionStorage, never in a URL). Live updates: GET /api/v1/events read with fetch
 * (EventSource cannot send a header). Devices are clustered with supercluster and drawn on one
 * canvas; nothing kept per update grows: statuses live in fixed typed arrays, the drawn markers are
 * replaced on every redraw, decisions are not kept.
 */
"use strict";

(function () {
  const API = "/api/v1";
  const STATUS = ["ok", "stale", "fault", "maintenance", "unknown"];
  const CODE = { ok: 0, stale: 1, fault: 2, maintenance: 3, unknown: 4 };
  const COLOUR = { ok: "#2e9d48", stale: "#8c8c8c", fault: "#d7301f", maintenance: "#3b6fd1", unknown: "#c9a400" };
  // The cluster index holds positions only: built once, never rebuilt when statuses change. A cluster's
  // colour and counts come from its devices' current statuses at each redraw (its leaves are listed
  // once per view). Redraws follow status changes at most every REDRAW_MS, or 3 times the last
  // redraw's duration when that is longer, so that a busy night does not keep the browser busy.
  const REDRAW_MS = 250;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };

  // -- session -------------------------------------------------------------------------------------
  const session = { token: null, role: null, name: null, canWrite: false, user: "operator" };

  async function api(path, opts) {
    const o = opts || {};
    const headers = { Authorization: "Bearer " + session.token };
    if (o.body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, {
      method: o.method || "GET", headers: headers, cache: "no-store",
      body: o.body !== undefined ? JSON.stringify(o.body) : undefined, signal: o.signal,
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText) + " (" + r.status + ")");
      err.status = r.status;
      throw err;
    }
    return data;
  }

  async function login(token, user) {
    session.token = token;
    const who = await api("/session");
    session.role = who.role; session.name = who.name; session.canWrite = who.can_write; session.user = user || "operator";
    sessionStorage.setItem("urban-console-token", token);
    sessionStorage.setItem("urban-console-user", session.user);
  }

  function logout() {
    sessionStorage.removeItem("urban-console-token");
    if (live.abort) live.abort.abort();
    window.location.reload();
  }

  // -- map -------------------------------------------------------------------------------------------
  let map = null;
  let renderer = null;
  const overlays = {}; // layer name -> L.Layer
  const layerFeatures = {}; // layer name -> features drawn
  const rcLayer = { group: null, renderer: null };

  const dev = {
    ids: [], index: new Map(), lon: null, lat: null, status: null, family: [], zone: [], service: [],
    fault: [], maintenance: null, cluster: null, drawn: null,
    rootCause: null, // Uint8Array: 1 when an active root-cause alarm took the device down
  };

  function initMap(cfg) {
    map = L.map("map", { preferCanvas: true, zoomControl: true, minZoom: 3, maxZoom: 20 });
    renderer = L.canvas({ padding: 0.3 });
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { maxZoom: 20, attribution: cfg.tile_attribution || "" }).addTo(map);
    }
    dev.drawn = L.layerGroup().addTo(map);
    overlays.devices = dev.drawn;
    rcLayer.group = L.layerGroup().addTo(map);
    map.createPane("rootcause").style.zIndex = "640"; // the root causes' rings above the devices and clusters (markers: 600)
    rcLayer.renderer = L.canvas({ pane: "rootcause", padding: 0.3 });
    map.on("moveend", drawDevices);
  }

  const LINE = {
    link: { color: "#6a3d9a", weight: 2 }, feeder: { color: "#ff7f00", weight: 2, dashArray: "4 4" },
    uplink: { color: "#1f78b4", weight: 3 }, street: { color: "#b9b9b9", weight: 2 },
  };

  function styleOf(f) {
    const p = f.properties;
    if (p.kind === "zone") return { color: "#9aa5b1", weight: 1, fillColor: "#eef1f4", fillOpacity: 0.35 };
    if (p.layer === "l3") return { radius: 9, color: "#33a02c", weight: 2, fillOpacity: 0.15 };
    return Object.assign({ color: "#555", weight: 2 }, LINE[p.kind] || (p.layer === "physical" && p.kind !== "feeder" ? LINE.link : {}));
  }

  function pointOf(f, latlng) {
    const p = f.properties;
    if (p.layer === "l3") {
      return L.circleMarker(latlng, { renderer: renderer, radius: 10 + 2 * (p.services || []).length, color: "#33a02c", weight: 2, fillOpacity: 0.1 });
    }
    const l2 = p.layer === "l2";
    return L.circleMarker(latlng, { renderer: renderer, radius: l2 ? 6 : 5, color: l2 ? "#1f78b4" : "#6a3d9a", weight: 2, fillColor: "#fff", fillOpacity: 1 });
  }

  function addLayer(name, fc, visible) {
    const layer = L.geoJSON(fc, {
      renderer: renderer, style: styleOf, pointToLayer: pointOf,
      filter: (f) => f.geometry !== null,
      onEachFeature: (f, lyr) => {
        const p = f.properties;
        if (name === "base") { lyr.bindTooltip(p.name || p.id); return; }
        lyr.bindTooltip(p.kind + " " + p.id + (p.services && p.services.length ? " · " + p.services.join(", ") : ""));
        lyr.on("click", () => showElement(p.id, p));
      },
    });
    layerFeatures[name] = fc.features.filter((f) => f.geometry !== null).length;
    overlays[name] = layer;
    if (visible) layer.addTo(map);
    if (name === "base") layer.bringToBack();
    return layer;
  }

  function toggleLayer(name, on) {
    const layer = overlays[name];
    if (!layer) return;
    if (on && !map.hasLayer(layer)) layer.addTo(map);
    if (!on && map.hasLayer(layer)) map.removeLayer(layer);
    if (name === "devices") drawDevices();
  }

  // -- devices: status arrays and clusters -------------------------------------------------------------
  function loadDevices(cols) { // GET /model/device-columns: one list per field, no object per device
    const n = cols.count;
    dev.ids = cols.id; dev.index = new Map();
    dev.lon = Float64Array.from(cols.lon); dev.lat = Float64Array.from(cols.lat); dev.status = new Uint8Array(n);
    dev.maintenance = new Uint8Array(n); dev.rootCause = new Uint8Array(n);
    dev.family = cols.family; dev.zone = cols.zone; dev.service = cols.service; dev.fault = cols.fault;
    for (let i = 0; i < n; i++) {
      dev.index.set(cols.id[i], i);
      const code = CODE[cols.status[i]];
      dev.status[i] = code !== undefined ? code : CODE.unknown;
    }
    buildClusters();
  }

  function cityBounds() {
    let w = Infinity, s = Infinity, e = -Infinity, nn = -Infinity;
    for (let i = 0; i < dev.ids.length; i++) {
      if (dev.lon[i] < w) w = dev.lon[i]; if (dev.lon[i] > e) e = dev.lon[i];
      if (dev.lat[i] < s) s = dev.lat[i]; if (dev.lat[i] > nn) nn = dev.lat[i];
    }
    return L.latLngBounds([s, w], [nn, e]);
  }

  function shownStatus(i) {
    return dev.maintenance[i] ? CODE.maintenance : dev.status[i];
  }

  function buildClusters() {
    const n = dev.ids.length;
    const points = new Array(n);
    for (let i = 0; i < n; i++) {
      points[i] = { type: "Feature", properties: { i: i }, geometry: { type: "Point", coordinates: [dev.lon[i], dev.lat[i]] } };
    }
    // a city fits zoom 10 and more: levels below 8 are not built
    dev.cluster = new Supercluster({ radius: 60, minZoom: 8, maxZoom: 16, minPoints: 3 });
    dev.cluster.load(points);
    view.key = null;
  }

  let redrawTimer = null;
  let lastDrawMs = 0;
  function markDirty() {
    if (redrawTimer !== null) return;
    redrawTimer = setTimeout(() => { redrawTimer = null; drawDevices(); }, Math.max(REDRAW_MS, 3 * lastDrawMs));
  }

  // what the current view shows: its clusters and single devices, and each cluster's devices
  const view = { key: null, items: [], leaves: [] };

  function viewOf(b, zoom) {
    const key = zoom + ":" + b.toBBoxString();
    if (view.key === key) return view;
    view.key = key;
    view.items = dev.cluster.getClusters([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], zoom);
    view.leaves = view.items.map((it) => (it.properties.cluster
      ? Int32Array.from(dev.cluster.getLeaves(it.properties.cluster_id, Infinity), (f) => f.properties.i) : null));
    return view;
  }

  function worst(c) {
    if (c[CODE.fault]) return "fault";
    if (c[CODE.stale]) return "stale";
    if (c[CODE.maintenance]) return "maintenance";
    if (c[CODE.unknown]) return "unknown";
    return "ok";
  }

  let drawnCount = 0;
  function drawDevices() {
    if (!map || !dev.cluster) return;
    const t0 = performance.now();
    updateLegend();
    dev.drawn.clearLayers();
    drawnCount = 0;
    if (!map.hasLayer(dev.drawn)) { $("map").dataset.drawnDevices = "0"; return; }
    const v = viewOf(map.getBounds(), Math.round(map.getZoom()));
    for (let k = 0; k < v.items.length; k++) {
      const it = v.items[k];
      const [lon, lat] = it.geometry.coordinates;
      const p = it.properties;
      if (p.cluster) {
        const c = [0, 0, 0, 0, 0, 0];
        for (const i of v.leaves[k]) { c[shownStatus(i)] += 1; c[5] += dev.rootCause[i]; }
        const w = worst(c);
        const size = p.point_count < 100 ? 30 : p.point_count < 1000 ? 38 : 46;
        const icon = L.divIcon({
          className: "cluster cluster-" + w + (c[5] ? " cluster-rc" : ""), iconSize: [size, size],
          html: "<span>" + p.point_count_abbreviated + "</span>",
        });
        const m = L.marker([lat, lon], { icon: icon, keyboard: false });
        m.bindTooltip(STATUS.map((s, k) => s + " " + c[k]).filter((t, k) => c[k] > 0).join(" · "));
        m.on("click", () => map.setView([lat, lon], Math.min(dev.cluster.getClusterExpansionZoom(p.cluster_id), 20)));
        dev.drawn.addLayer(m);
        drawnCount += p.point_count;
      } else {
        const i = p.i;
        const s = STATUS[shownStatus(i)];
        const m = L.circleMarker([lat, lon], {
          renderer: renderer, radius: 6, weight: dev.rootCause[i] ? 3 : 1, color: dev.rootCause[i] ? "#000" : "#fff",
          fillColor: COLOUR[s], fillOpacity: 0.95,
        });
        m.bindTooltip(dev.ids[i] + " · " + s + (dev.fault[i] ? " · " + dev.fault[i] : ""));
        m.on("click", () => showDevice(dev.ids[i]));
        dev.drawn.addLayer(m);
        drawnCount += 1;
      }
    }
    $("map").dataset.drawnDevices = String(drawnCount);
    lastDrawMs = performance.now() - t0;
  }

  function counts() {
    const c = { ok: 0, stale: 0, fault: 0, maintenance: 0, unknown: 0 };
    for (let i = 0; i < dev.ids.length; i++) c[STATUS[shownStatus(i)]] += 1;
    return c;
  }

  function updateLegend() {
    const c = counts();
    const legend = $("legend");
    legend.textContent = "";
    for (const s of STATUS) {
      const item = el("span", "legend-item legend-" + s);
      item.appendChild(el("i", "dot dot-" + s));
      item.appendChild(document.createTextNode(s + " " + c[s]));
      item.dataset.status = s; item.dataset.count = String(c[s]);
      legend.appendChild(item);
    }
  }

  function applyStatus(changes) {
    let any = false;
    for (const id of Object.keys(changes)) {
      const i = dev.index.get(id);
      if (i === undefined) continue;
      const ch = changes[id];
      dev.status[i] = CODE[ch.status] !== undefined ? CODE[ch.status] : CODE.unknown;
      dev.fault[i] = ch.fault;
      any = true;
    }
    if (any) markDirty();
  }

  // -- root causes and maintenance ---------------------------------------------------------------------
  function hull(pts) { // Andrew's monotone chain: the area a root cause took down
    if (pts.length < 3) return pts;
    pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    const lower = []; const upper = [];
    for (const p of pts) { while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop(); lower.push(p); }
    for (let k = pts.length - 1; k >= 0; k--) { const p = pts[k]; while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop(); upper.push(p); }
    upper.pop(); lower.pop();
    return lower.concat(upper);
  }

  let rootCauses = [];
  async function refreshRootCauses() {
    const data = await api("/alarms?kind=root_cause&state=active&limit=200");
    rootCauses = data.items;
    dev.rootCause.fill(0);
    rcLayer.group.clearLayers();
    for (const a of rootCauses) {
      const pts = [];
      for (const d of a.devices) {
        const i = dev.index.get(d);
        if (i === undefined) continue;
        dev.rootCause[i] = 1;
        pts.push([dev.lon[i], dev.lat[i]]);
      }
      const ring = hull(pts);
      if (ring.length >= 3) {
        rcLayer.group.addLayer(L.polygon(ring.map((p) => [p[1], p[0]]), {
          renderer: renderer, color: "#7a0000", weight: 1, fillColor: "#000", fillOpacity: 0.18, interactive: false,
        }));
      }
      if (a.position) {
        const m = L.circleMarker([a.position[1], a.position[0]], {
          renderer: rcLayer.renderer, pane: "rootcause", radius: 16, color: "#d7301f", weight: 5, fillColor: "#d7301f", fillOpacity: 0.25,
        });
        m.bindTooltip("root cause: " + a.element + " · " + a.device_count + " devices");
        m.on("click", () => showElement(a.element, { kind: a.kind }));
        rcLayer.group.addLayer(m);
      }
    }
    $("map").dataset.rootCauses = rootCauses.map((a) => a.element).join(" ");
    markDirty();
  }

  async function refreshMaintenance() {
    const data = await api("/maintenance");
    const now = Date.now() / 1000;
    dev.maintenance.fill(0);
    for (const w of data.items) {
      if (!(w.start <= now && now < w.end)) continue;
      try {
        const imp = await api("/model/impact/" + encodeURIComponent(w.element));
        for (const s of Object.keys(imp.services)) {
          for (const d of imp.services[s].devices) { const i = dev.index.get(d); if (i !== undefined) dev.maintenance[i] = 1; }
        }
      } catch (e) { /* a window on a device or an element the model no longer has: nothing to shade */ }
      const i = dev.index.get(w.element);
      if (i !== undefined) dev.maintenance[i] = 1;
    }
    markDirty();
  }

  // -- panels ---------------------------------------------------------------------------------------
  function fmtTime(ts) { return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z" : "—"; }
  function fmtValue(v) { return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v); }

  function table(rows, cls) {
    const t = el("table", cls || "kv");
    for (const [k, v] of rows) {
      const tr = el("tr");
      tr.appendChild(el("th", null, k));
      const td = el("td");
      if (v instanceof Node) td.appendChild(v); else td.textContent = v === null || v === undefined ? "—" : String(v);
      tr.appendChild(td);
      t.appendChild(tr);
    }
    return t;
  }

  let panelDevice = null;
  async function showDevice(id) {
    panelDevice = id;
    const panel = $("panel");
    panel.textContent = "";
    panel.appendChild(el("h2", null, "Device " + id));
    let d;
    try { d = await api("/devices/" + encodeURIComponent(id)); } catch (e) { panel.appendChild(el("p", "error", e.message)); return; }
    if (panelDevice !== id) return;
    const st = d.state || {};
    const m = d.model || {};
    const i = dev.index.get(id);
    const shown = i !== undefined ? STATUS[shownStatus(i)] : st.status;
    const status = el("span", "badge badge-" + shown, shown + (st.fault ? " · " + st.fault : ""));
    status.id = "panel-status";
    panel.appendChild(table([
      ["status", status], ["family / kind", (m.family || st.family || "") + " / " + (m.kind || "")],
      ["zone", m.zone || st.zone], ["reporting interval", st.interval ? st.interval + " s" : null],
      ["last seen", fmtTime(st.last_seen)],
    ]));
    panel.appendChild(el("h3", null, "Last readings"));
    const vals = Object.entries(st.values || {});
    panel.appendChild(vals.length ? table(vals.map(([k, v]) => {
      const unit = d.units[k.split("@")[0]];
      return [k, fmtValue(v) + (unit && unit !== "1" && typeof v === "number" ? " " + unit : "")];
    }), "kv readings") : el("p", "hint", "no reading yet"));
    panel.appendChild(el("h3", null, "Place in each layer"));
    panel.appendChild(table([
      ["physical: site / cabinet", (m.site || "—") + " / " + (m.cabinet || "—")], ["physical: power (feeder)", m.power],
      ["layer 2: port", m.port], ["layer 2: switch", m.port ? m.port.split(":")[0] : null],
      ["radio gateway", m.gateway], ["layer 3: service", m.service], ["street", m.street],
    ]));
    if (d.radio) panel.appendChild(radioTable(d.radio, "panel-radio"));
    const why = el("div", "why"); why.id = "panel-why";
    panel.appendChild(el("h3", null, "Why this level"));
    panel.appendChild(why);
    const cmds = el("div", "cmds");
    panel.appendChild(el("h3", null, "Commands"));
    panel.appendChild(cmds);
    fillWhy(id, why, cmds);
    if (m.family === "lighting" || st.family === "lighting") panel.appendChild(overrideForm(id));
  }

  async function fillWhy(id, why, cmds) {
    try {
      const w = await api("/why/" + encodeURIComponent(id) + "?limit=10");
      why.textContent = "";
      why.appendChild(el("p", null, "level asked now: " + (w.level === null || w.level === undefined ? "none" : fmtValue(w.level) + " %")));
      const ol = el("ol", "decisions");
      for (const dcs of w.decisions) ol.appendChild(el("li", null, fmtTime(dcs.ts) + " · " + dcs.rule + " → " + fmtValue(dcs.output) + " · " + dcs.text));
      why.appendChild(w.decisions.length ? ol : el("p", "hint", "no decision about this device yet"));
    } catch (e) { why.textContent = e.status === 503 ? "no rule engine" : e.message; }
    try {
      const h = await api("/commands/" + encodeURIComponent(id) + "/history");
      cmds.textContent = "";
      const ol = el("ol", "commands");
      for (const c of h.items) {
        ol.appendChild(el("li", null, fmtTime(c.sent_at) + " · " + (c.channel ? "circuit " + c.channel + " · " : "") + "level " +
          fmtValue(c.level) + " % · " + c.state + (c.attempts > 1 ? " after " + c.attempts + " attempts" : "") + (c.error ? " · " + c.error : "")));
      }
      cmds.appendChild(h.items.length ? ol : el("p", "hint", "no command sent to this device"));
    } catch (e) { cmds.textContent = e.status === 503 ? "no rule engine" : e.message; }
  }

  function overrideForm(id) {
    const f = el("form", "override");
    f.appendChild(el("h3", null, "Override (operators)"));
    const level = el("input"); level.type = "number"; level.min = "0"; level.max = "100"; level.value = "100"; level.id = "override-level";
    const minutes = el("input"); minutes.type = "number"; minutes.min = "1"; minutes.max = "1440"; minutes.value = "60"; minutes.id = "override-minutes";
    const go = el("button", null, "Hold level"); go.type = "submit"; go.id = "override-submit";
    const clear = el("button", null, "Clear override"); clear.type = "button"; clear.id = "override-clear";
    const out = el("p", "result");
    f.append(el("label", null, "level %"), level, el("label", null, "minutes"), minutes, go, clear, out);
    for (const c of [level, minutes, go, clear]) { c.disabled = !session.canWrite; if (!session.canWrite) c.title = "an operator token is needed"; }
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const r = await api("/overrides", { method: "POST", body: { device: id, level: Number(level.value), duration_s: Number(minutes.value) * 60, user: session.user } });
        out.textContent = "held until " + fmtTime(r.until) + "; level asked now " + r.level + " %";
      } catch (e) { out.textContent = e.message; }
    });
    clear.addEventListener("click", async () => {
      try { await api("/overrides/" + encodeURIComponent(id), { method: "DELETE" }); out.textContent = "override cleared"; } catch (e) { out.textContent = e.message; }
    });
    return f;
  }

  async function showElement(id, props) {
    panelDevice = null;
    const panel = $("panel");
    panel.textContent = "";
    panel.appendChild(el("h2", null, (props && props.kind ? props.kind + " " : "") + id));
    try {
      const imp = await api("/model/impact/" + encodeURIComponent(id));
      panel.appendChild(el("p", null, "If it fails: " + imp.total + " devices down, " + imp.downstream.length + " elements downstream."));
      const rows = Object.entries(imp.services).map(([s, v]) => [s, v.count + " devices"]);
      const t = table(rows, "kv impact"); t.id = "impact";
      panel.appendChild(t);
    } catch (e) { panel.appendChild(el("p", "error", e.message)); }
    try {  // a radio gateway watched through its LoRaWAN gateway device: observed status and link quality
      const info = await api("/model/elements/" + encodeURIComponent(id) + "?limit=0");
      if (info.observed) panel.appendChild(radioTable(info.observed, "radio-observed"));
    } catch (e) { panel.appendChild(el("p", "error", e.message)); }
  }

  const RADIO_BADGE = { up: "ok", silent: "stale", down: "fault", ok: "ok", degraded: "maintenance", unknown: "unknown" };
  function radioTable(r, id) {
    const box = el("div", "radio"); box.id = id;
    box.appendChild(el("h3", null, "Radio gateway observed"));
    const badge = (v) => el("span", "badge badge-" + (RADIO_BADGE[v] || "unknown"), v);
    const rows = [["status", badge(r.status + (r.observed ? " (observed)" : ""))], ["link", badge(r.link)]];
    if (typeof r.why === "string") rows.push(["why", r.why]);
    box.appendChild(table(rows));
    for (const d of r.devices || [r]) {
      box.appendChild(table([
        ["gateway device", d.device], ["median RSSI", d.rssi_median === null ? null : fmtValue(d.rssi_median) + " dBm"],
        ["median SNR", d.snr_median === null ? null : fmtValue(d.snr_median) + " dB"],
        ["rx ok ratio", d.ok_ratio === null ? null : fmtValue(d.ok_ratio)], ["uplinks", d.uplinks],
        ["last heard", fmtTime(d.last_heard)], ["below thresholds", d.why && d.why.length ? d.why.join("; ") : null],
      ], "kv radio-link"));
    }
    return box;
  }

  // -- alarm console --------------------------------------------------------------------------------
  let alarmTimer = null;
  function refreshAlarmsSoon() {
    if (alarmTimer !== null) return;
    alarmTimer = setTimeout(() => { alarmTimer = null; refreshAlarms().catch(showLiveError); }, 300);
  }

  async function refreshAlarms() {
    const q = new URLSearchParams({ state: $("f-state").value, limit: "200" });
    for (const [k, id] of [["severity", "f-severity"], ["service", "f-service"], ["zone", "f-zone"]]) {
      if ($(id).value) q.set(k, $(id).value);
    }
    const data = await api("/alarms?" + q.toString());
    $("alarm-count").textContent = "(" + data.total + " shown of " + data.active + " active)";
    const list = $("alarm-list");
    list.textContent = "";
    for (const a of data.items) list.appendChild(alarmItem(a));
  }

  function action(label, cls, fn) {
    const b = el("button", cls, label);
    b.type = "button";
    b.disabled = !session.canWrite;
    if (!session.canWrite) b.title = "an operator token is needed";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await fn(); } catch (e) { alert(e.message); } finally { b.disabled = !session.canWrite; refreshAlarmsSoon(); }
    });
    return b;
  }

  function alarmItem(a) {
    const li = el("li", "alarm sev-" + a.severity + " state-" + a.state);
    li.dataset.alarmId = a.id; li.dataset.element = a.element; li.dataset.state = a.state;
    const head = el("div", "alarm-head");
    head.append(el("span", "badge sev", a.severity), el("span", "kind", a.kind), el("span", "state", a.state + (a.shelved_until && a.shelved_until > Date.now() / 1000 ? " · shelved" : "")));
    li.appendChild(head);
    li.appendChild(el("div", "text", a.text));
    li.appendChild(el("div", "meta", a.element + " · " + a.device_count + " devices · " + (a.services || []).join(", ") + " · raised " + fmtTime(a.raised_at) + (a.acked_by ? " · ack " + a.acked_by : "")));
    const bar = el("div", "actions");
    const locate = el("button", "locate", "Show on map"); locate.type = "button";
    locate.addEventListener("click", () => locateAlarm(a));
    bar.appendChild(locate);
    if (a.state !== "cleared") {
      bar.appendChild(action("Acknowledge", "ack", () => api("/alarms/" + encodeURIComponent(a.id) + "/ack", { method: "POST", body: { user: session.user } })));
      bar.appendChild(action("Shelve 1 h", "shelve", () => {
        const reason = window.prompt("Why shelve this alarm for an hour?", "known, repair planned");
        if (!reason) return Promise.resolve();
        return api("/alarms/" + encodeURIComponent(a.id) + "/shelve", { method: "POST", body: { user: session.user, until: Date.now() / 1000 + 3600, reason: reason } });
      }));
    }
    bar.appendChild(action("Comment", "comment", () => {
      const text = window.prompt("Comment", "");
      if (!text) return Promise.resolve();
      return api("/alarms/" + encodeURIComponent(a.id) + "/comment", { method: "POST", body: { user: session.user, text: text } });
    }));
    li.appendChild(bar);
    return li;
  }

  function locateAlarm(a) {
    const pts = [];
    for (const d of a.devices || []) { const i = dev.index.get(d); if (i !== undefined) pts.push([dev.lat[i], dev.lon[i]]); }
    if (a.position) pts.push([a.position[1], a.position[0]]);
    if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.3), { maxZoom: 18 });
    const i = dev.index.get(a.element);
    if (i !== undefined) showDevice(a.element); else showElement(a.element, { kind: a.kind });
  }

  // -- live -------------------------------------------------------------------------------------------
  const live = { cursor: null, abort: null, events: 0, lastEvent: 0 };

  function showLiveError(e) { $("live").textContent = "live: " + e.message; $("live").className = "live live-down"; }

  function onEvent(name, data) {
    live.events += 1;
    live.lastEvent = Date.now();
    if (data && typeof data.cursor === "number") live.cursor = data.cursor;
    if (name === "hello" || name === "end") return;
    if (name === "resync") { reloadDevices().catch(showLiveError); refreshAlarmsSoon(); return; }
    if (name !== "changes") return;
    applyStatus(data.status);
    if (data.alarms.length) {
      refreshAlarmsSoon();
      if (data.alarms.some((a) => a.kind === "root_cause")) refreshRootCauses().catch(showLiveError);
    }
    if (panelDevice !== null && (data.status[panelDevice] || data.decisions.some((d) => d.device === panelDevice))) {
      const why = $("panel-why");
      if (data.status[panelDevice]) showDevice(panelDevice);
      else if (why) fillWhy(panelDevice, why, document.querySelector("#panel .cmds"));
    }
    $("live").dataset.events = String(live.events);
  }

  async function stream() {
    for (;;) {
      live.abort = new AbortController();
      try {
        const q = live.cursor === null ? "" : "?after=" + live.cursor;
        const r = await fetch(API + "/events" + q, { headers: { Authorization: "Bearer " + session.token, Accept: "text/event-stream" }, cache: "no-store", signal: live.abort.signal });
        if (!r.ok) throw new Error("event stream answered " + r.status);
        $("live").textContent = "live"; $("live").className = "live live-up";
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
            let name = "message"; const lines = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) name = line.slice(7);
              else if (line.startsWith("data: ")) lines.push(line.slice(6));
            }
            if (lines.length) onEvent(name, JSON.parse(lines.join("\n")));
          }
        }
      } catch (e) {
        if (live.abort.signal.aborted) return;
        showLiveError(e);
      }
      await new Promise((res) => setTimeout(res, 1500));
    }
  }

  // -- start ---------------------------------------------------------------------------------------
  async function reloadDevices() {
    loadDevices(await api("/model/device-columns"));
    drawDevices();
  }

  function fillSelect(id, values) {
    const s = $(id);
    for (const v of values) { const o = el("option", null, v); o.value = v; s.appendChild(o); }
  }

  async function start() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("who").textContent = session.name + " (" + session.role + (session.canWrite ? "" : ", read only") + ")";
    document.body.dataset.role = session.role;
    const cfg = await (await fetch("config.json", { cache: "no-store" })).json();
    initMap(cfg);
    const started = performance.now();
    const [base, devices] = await Promise.all([api("/model/layers/base"), api("/model/device-columns")]);
    const fetched = performance.now();
    const zones = base.features.filter((f) => f.properties.kind === "zone").map((f) => f.id).sort();
    fillSelect("f-zone", zones);
    fillSelect("f-service", Array.from(new Set(devices.service.filter(Boolean))).sort());
    addLayer("base", base, true);
    const t0 = performance.now();
    loadDevices(devices);
    const clustered = performance.now();
    if (dev.ids.length) map.fitBounds(cityBounds().pad(0.05)); else map.setView([48.8566, 2.3522], 13);
    drawDevices();
    await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
    const now = performance.now();
    window.urbanConsole.timings = { fetch_ms: fetched - started, clusters_ms: clustered - t0, draw_ms: now - clustered };
    window.urbanConsole.firstRenderMs = now - started;
    $("map").dataset.devices = String(dev.ids.length);
    stream();
    const [physical, l2, l3] = await Promise.all([api("/model/layers/physical"), api("/model/layers/l2"), api("/model/layers/l3")]);
    addLayer("physical", physical, $("layers").querySelector("[data-layer=physical]").checked);
    addLayer("l2", l2, $("layers").querySelector("[data-layer=l2]").checked);
    addLayer("l3", l3, $("layers").querySelector("[data-layer=l3]").checked);
    await Promise.all([refreshRootCauses(), refreshMaintenance(), refreshAlarms()]);
    setInterval(() => refreshMaintenance().catch(showLiveError), 15000); // windows are not in the event stream
    document.body.dataset.ready = "true";
  }

  // read by the browser tests and the render benchmark (nothing here changes the console)
  window.urbanConsole = {
    firstRenderMs: null,
    timings: null,
    devices: () => dev.ids.length,
    status: (id) => { const i = dev.index.get(id); return i === undefined ? null : STATUS[shownStatus(i)]; },
    counts: counts,
    drawnDevices: () => drawnCount,
    layerShown: (name) => !!(overlays[name] && map.hasLayer(overlays[name])),
    layerFeatures: (name) => layerFeatures[name] || 0,
    liveEvents: () => live.events,
    showDevice: showDevice,
    showElement: showElement,
  };

  document.addEventListener("DOMContentLoaded", () => {
    $("user").value = sessionStorage.getItem("urban-console-user") || "operator";
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("login-error").textContent = "";
      try {
        await login($("token").value.trim(), $("user").value.trim());
        $("token").value = "";
        await start();
      } catch (e) { $("login-error").textContent = "login refused: " + e.message; }
    });
    $("logout").addEventListener("click", logout);
    for (const box of $("layers").querySelectorAll("input[data-layer]")) {
      box.addEventListener("change", () => toggleLayer(box.dataset.layer, box.checked));
    }
    $("alarm-filters").addEventListener("change", () => refreshAlarms().catch(showLiveError));
    const saved = sessionStorage.getItem("urban-console-token");
    if (saved) {
      login(saved, sessionStorage.getItem("urban-console-user")).then(start).catch(() => sessionStorage.removeItem("urban-console-token"));
    }
  });
})();
