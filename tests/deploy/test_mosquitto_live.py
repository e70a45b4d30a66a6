"""The deployment's broker configuration, run by the real Mosquitto 2 on a loopback port.

Only the paths and the listener address are rewritten (container paths → a temporary directory);
every other directive, the queue limits included, is the committed deploy/mosquitto/mosquitto.conf,
and the ACL is the committed file itself.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.deploy.compose import ACL_FILE, MOSQUITTO_CONF, acl_users
from tests.support.services import free_port, wait_port

pytestmark = pytest.mark.integration

PASSWORDS = {user: f"pw-{user}-0123456789" for user in acl_users()}
WAIT = 10.0  # an upper bound for a delivery on loopback, not a measured time


@dataclass
class Broker:
    port: int
    log: Path


@pytest.fixture
def deploy_broker() -> Iterator[Broker]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto and mosquitto_passwd are needed (run scripts/services.sh)")
    # not pytest's tmp_path (mode 0700 up the tree): mosquitto started as root drops to its own
    # user, which must reach the password file, the log and the persistence directory
    with tempfile.TemporaryDirectory(prefix="urban-deploy-mosquitto-") as tmp:
        os.chmod(tmp, 0o777)  # noqa: S103 -- a throw-away directory for a loopback test broker
        yield from _run_broker(Path(tmp))


def _run_broker(tmp_path: Path) -> Iterator[Broker]:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o777)  # noqa: S103 -- as above
    passwd = data / "passwd"
    passwd.touch()
    for user, pw in PASSWORDS.items():  # as the compose service does at start
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, pw], check=True, capture_output=True)
    passwd.chmod(0o644)
    port = free_port()
    log = tmp_path / "mosquitto.log"
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    text, n1 = re.subn(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", text)
    text, n2 = re.subn(r"(?m)^password_file .*$", f"password_file {passwd}", text)
    text, n3 = re.subn(r"(?m)^acl_file .*$", f"acl_file {ACL_FILE}", text)
    text, n4 = re.subn(r"(?m)^persistence_location .*$", f"persistence_location {data}/", text)
    text, n5 = re.subn(r"(?m)^log_dest .*$", f"log_dest file {log}", text)
    assert (n1, n2, n3, n4, n5) == (1, 1, 1, 1, 1), "the deployment config changed shape"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        try:
            deadline = time.monotonic() + WAIT
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    wait_port("127.0.0.1", port, timeout=0.2)
                    break
                except TimeoutError:
                    continue
            else:
                raise TimeoutError
        except TimeoutError:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
            pytest.fail(f"mosquitto refused deploy/mosquitto/mosquitto.conf:\n{out}")
        yield Broker(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    def __init__(self, broker: Broker, user: str | None, password: str | None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[int] = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc.value)
        self.c.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()

    def connected(self) -> int:
        return self.connack.get(timeout=WAIT)

    def subscribe(self, *topics: str) -> None:
        # the callback is in place before the first SUBSCRIBE: paho's network thread may read the
        # SUBACK before subscribe() returns, and a callback set after it would never see it
        done: queue.Queue[int] = queue.Queue()
        self.c.on_subscribe = lambda _c, _u, m, _rc, _p: done.put(m)
        for t in topics:
            _, mid = self.c.subscribe(t, qos=1)
        # the broker answers SUBACKs in order: the last one means all were processed
        while done.get(timeout=WAIT) != mid:
            pass

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_anonymous_and_wrong_passwords_are_refused(deploy_broker: Broker) -> None:
    anonymous = Client(deploy_broker, None, None)
    wrong = Client(deploy_broker, "supervisor", "not-the-password")
    try:
        assert anonymous.connected() != 0
        assert wrong.connected() != 0
    finally:
        anonymous.close()
        wrong.close()


def test_each_user_reaches_its_own_topics(deploy_broker: Broker) -> None:
    sup = Client(deploy_broker, "supervisor", PASSWORDS["supervisor"])
    gw = Client(deploy_broker, "gateway", PASSWORDS["gateway"])
    sim = Client(deploy_broker, "simulator", PASSWORDS["simulator"])
    try:
        assert (sup.connected(), gw.connected(), sim.connected()) == (0, 0, 0)
        sup.subscribe("city/#")
        gw.subscribe("city/#")  # wider than its ACL: the broker filters what it may read
        telemetry = ("city/z1/traffic/tr-1/telemetry", b'{"flow": 420.0}')
        sim.publish(*telemetry)
        assert sup.messages.get(timeout=WAIT) == telemetry
        # the supervisor commands a light; the gateway gets the command, and never the telemetry
        # published before it (the broker handled that first, so it would have arrived first)
        command = ("city/z1/lighting/lamp-1/cmd", b'{"level": 60.0}')
        sup.publish(*command)
        assert gw.messages.get(timeout=WAIT) == command
        assert gw.messages.empty()
        # a gateway cannot publish commands: the supervisor (subscribed to city/#) gets the
        # telemetry published after the denied command, and nothing else
        gw.publish("city/z1/lighting/lamp-1/cmd", b'{"level": 0.0}')
        after = ("city/z1/lighting/lamp-1/telemetry", b'{"on": true}')
        gw.publish(*after)
        assert sup.messages.get(timeout=WAIT) == command  # its own command, on city/#
        assert sup.messages.get(timeout=WAIT) == after
        assert sup.messages.empty()
    finally:
        for c in (sup, gw, sim):
            c.close()
