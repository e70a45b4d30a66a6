"""Command sending: only to known devices, only on topics that name the device, rate limited."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NoReturn, Protocol

from drivers import Command, Driver, DriverError
from supervisor.config import CommandsConfig
from supervisor.service.errors import CommandRefusedError, SupervisorError
from supervisor.state.registry import StateRegistry

if TYPE_CHECKING:
    from supervisor.ingest.identity import IdentityMap
    from supervisor.model import CityModel

_log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What publishes a command (:class:`supervisor.ingest.lane.CommandPublisher`, or one MQTT session)."""

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...


class TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


def names_device(topic: str, source: str) -> bool:
    """Whether the topic's levels contain the device's identifier (``a:b`` may stand for ``a/b``)."""
    levels = topic.split("/")
    want = source.replace(":", "/").split("/")
    n = len(want)
    return source in levels or any(levels[i:i + n] == want for i in range(len(levels) - n + 1))


class CommandSender:
    """Encodes a command with the device's driver and publishes it.

    Commands go only to devices of the city model (unless configured otherwise), only on topics
    that name the device, never retained, and at most ``commands.rate_per_device`` per second per
    device (token bucket with ``commands.burst``), in the supervisor's clock.
    """

    def __init__(self, cfg: CommandsConfig, drivers: Mapping[str, Driver], device_driver: Mapping[str, str],
                 *, model: CityModel | None, state: StateRegistry, identity: IdentityMap | None, mqtt: Publisher,
                 clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self.drivers = drivers
        self.device_driver = device_driver
        self.model = model
        self.state = state
        self.identity = identity
        self.mqtt = mqtt
        self.clock = clock
        self.refused = 0
        self.buckets: dict[str, TokenBucket] = {}

    def send(self, cmd: Command) -> list[str]:
        """Publish ``cmd``; returns the topics published. :class:`CommandRefusedError` says why not."""
        name = self.device_driver.get(cmd.device)
        in_model = self.model is None or cmd.device in self.model.devices
        if name is None or (self.cfg.only_known_devices and not in_model):
            self._refuse(cmd, "unknown device: commands go only to devices of the city model")
        driver = self.drivers.get(name)
        if driver is None:
            self._refuse(cmd, f"driver {name!r} is not enabled")
        zone = cmd.zone
        if zone is None:
            st = self.state.get(cmd.device)
            zone = st.zone if st is not None and st.zone else None
        source = self.identity.source_of(name, cmd.device) if self.identity else cmd.device
        publishes = driver.encode(Command(source, cmd.action, cmd.value, zone, cmd.channel))
        for pub in publishes:
            if not names_device(pub.topic, source) or "+" in pub.topic or "#" in pub.topic:
                self._refuse(cmd, f"driver {name!r} produced topic {pub.topic!r}, which does not name the device")
        self._take_token(cmd)
        topics = []
        for pub in publishes:
            self.mqtt.publish(pub.topic, pub.payload, pub.qos, retain=False)
            topics.append(pub.topic)
        return topics

    def _take_token(self, cmd: Command) -> None:
        now = self.clock()  # the supervisor's clock: a virtual night is rate limited in its own time
        burst, rate = float(self.cfg.burst), self.cfg.rate_per_device
        b = self.buckets.get(cmd.device)
        if b is None:
            b = self.buckets[cmd.device] = TokenBucket(burst, now)
        b.tokens = min(burst, b.tokens + (now - b.stamp) * rate)
        b.stamp = now
        if b.tokens < 1.0:
            self._refuse(cmd, f"rate limit: more than {rate}/s (burst {self.cfg.burst})")
        b.tokens -= 1.0

    def _refuse(self, cmd: Command, why: str) -> NoReturn:
        self.refused += 1
        raise CommandRefusedError(f"command {cmd.action} to {cmd.device!r} refused: {why}")


class RuleCommandSink:
    """The rule engine's CommandSink: a refused or unencodable command is logged, not raised."""

    def __init__(self, send: Callable[[Command], list[str]]) -> None:
        self._send = send

    def send(self, cmd: Command) -> None:
        try:
            self._send(cmd)
        except (SupervisorError, DriverError) as exc:
            _log.warning("command to %s not sent: %s", cmd.device, exc)
