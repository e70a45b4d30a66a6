"""PUBACK benchmark: the CPU it costs the supervisor's process to publish commands at QoS 1.

3,000 commands (stages of 300, as the pipeline sends them; 1,000 in flight, as the supervisor's
sessions allow) through a real Mosquitto, with the fast path's own PUBACK handling
(:meth:`supervisor.ingest._paho_fast.FastClient._puback`) and with paho's handler (selected by
setting an ``on_publish`` callback, as paho then must call it). Prints the process CPU time of
each, interleaved, several rounds. Usage::

    .venv/bin/python scripts/bench_puback.py [--port 1883] [--commands 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from supervisor.ingest._paho_fast import FastClient

STAGE = 300


def cpu_ms(port: int, n: int, *, paho_handler: bool) -> float:
    """Process CPU (ms) from the first publish until every command's PUBACK is handled."""
    pub = FastClient(CallbackAPIVersion.VERSION2, client_id=f"bench-puback-{paho_handler}", protocol=mqtt.MQTTv5)
    pub.deliver = lambda _messages: None  # the batched read path, as MqttIngest sets it
    if paho_handler:
        pub.on_publish = lambda *_: None
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not pub.is_connected():
            if time.monotonic() > deadline:
                raise SystemExit(f"no MQTT broker answers at 127.0.0.1:{port}")
            time.sleep(0.01)
        t0 = time.process_time()
        infos: list[mqtt.MQTTMessageInfo] = []
        for k in range(0, n, STAGE):
            batch = [(f"bench/puback/{i % 50}/cmd", b'{"level": %d}' % (i % 100), 1, False)
                     for i in range(k, min(n, k + STAGE))]
            infos += pub.publish_many(batch)
        deadline = time.monotonic() + 60
        while pub._out_messages or not all(i.is_published() for i in infos):
            if time.monotonic() > deadline:
                raise SystemExit("PUBACKs missing after 60 s")
            time.sleep(0.002)
        return (time.process_time() - t0) * 1000.0
    finally:
        pub.disconnect()
        pub.loop_stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--commands", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for r in range(args.rounds):
        ours = cpu_ms(args.port, args.commands, paho_handler=False)
        paho = cpu_ms(args.port, args.commands, paho_handler=True)
        print(f"round {r + 1}: {args.commands:,} commands: fast-path PUBACKs {ours:.0f} ms CPU, "
              f"paho's handler {paho:.0f} ms CPU ({paho / max(ours, 1e-9):.2f}x)")


if __name__ == "__main__":
    main()
