#!/usr/bin/env bash
# Make the services the tests need available on loopback:
#   - InfluxDB 1.x (Debian's `influxdb`), installed when `influxd` is missing, started when
#     nothing answers on $URBAN_TEST_INFLUX_URL (default http://127.0.0.1:8086);
#   - Mosquitto at 127.0.0.1:1883 (the machine's own, started or installed when missing);
#   - Debian's chromium (the console's browser tests), installed when missing.
# Idempotent: running it twice starts nothing twice.
set -euo pipefail

INFLUX_URL="${URBAN_TEST_INFLUX_URL:-http://127.0.0.1:8086}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VAR="$ROOT/var/services"
mkdir -p "$VAR"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null 2>&1 || true
  as_root apt-get install -y -qq "$@" >/dev/null
}

ping_influx() { curl -fsS -o /dev/null --max-time 2 "$INFLUX_URL/ping" 2>/dev/null; }

if ! command -v influxd >/dev/null 2>&1; then
  echo "services: installing Debian's influxdb (influxd missing)"
  apt_install influxdb
fi
if ! command -v mosquitto >/dev/null 2>&1; then
  echo "services: installing mosquitto"
  apt_install mosquitto mosquitto-clients
fi
if ! command -v curl >/dev/null 2>&1; then apt_install curl; fi
if ! command -v snmptrap >/dev/null 2>&1; then
  echo "services: installing Net-SNMP's tools (snmptrap: the SNMP trap tests)"
  apt_install snmp
fi
# the operator console's browser tests drive Debian's chromium through Playwright (tests/console/)
if ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing Debian's chromium and chromium-driver (the console's browser tests)"
  apt_install chromium chromium-driver
fi

# an InfluxDB that answers /ping can still be unusable (e.g. its data directory was removed): probe a write path
influx_query() { curl -fsS --max-time 5 -XPOST "$INFLUX_URL/query" --data-urlencode "q=$1"; }
influx_usable() {
  local out
  out="$(influx_query "CREATE DATABASE urban_services_probe")" && ! grep -q '"error"' <<<"$out" &&
    out="$(influx_query "DROP DATABASE urban_services_probe")" && ! grep -q '"error"' <<<"$out"
}

if ping_influx; then
  if ! influx_usable; then
    echo "services: InfluxDB at $INFLUX_URL answers /ping but cannot create a database; stop it or set URBAN_TEST_INFLUX_URL" >&2
    exit 1
  fi
  echo "services: InfluxDB answers at $INFLUX_URL"
else
  port="${INFLUX_URL##*:}"; port="${port%%/*}"
  conf="$VAR/influxdb.conf"
  cat >"$conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((port + 2))"
[meta]
  dir = "$VAR/influxdb/meta"
[data]
  dir = "$VAR/influxdb/data"
  wal-dir = "$VAR/influxdb/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = true
CONF
  echo "services: starting influxd on 127.0.0.1:$port (data in $VAR/influxdb, log $VAR/influxd.log)"
  nohup influxd -config "$conf" >"$VAR/influxd.log" 2>&1 &
  echo $! >"$VAR/influxd.pid"
  for _ in $(seq 1 60); do ping_influx && break; sleep 0.5; done
  ping_influx || { echo "services: influxd did not start; see $VAR/influxd.log" >&2; tail -20 "$VAR/influxd.log" >&2; exit 1; }
fi

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "services: Mosquitto answers at 127.0.0.1:1883"
else
  echo "services: starting mosquitto on 127.0.0.1:1883"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' >"$VAR/mosquitto.conf"
    mosquitto -d -c "$VAR/mosquitto.conf"
  fi
  for _ in $(seq 1 20); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.25; done
fi
