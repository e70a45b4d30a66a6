"""What the engine emits and what it needs from the rest of the supervisor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import orjson

from drivers import Command, Value

Severity = Literal["info", "warning", "major", "critical"]
AlarmState = Literal["raised", "cleared"]


# --------------------------------------------------------------------------- protocols


class DeviceInfo(Protocol):
    """The fields of a network-model device the rules read."""

    @property
    def id(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...
    @property
    def street(self) -> str | None: ...
    @property
    def cabinet(self) -> str | None: ...
    @property
    def interval(self) -> float | None: ...


class Topology(Protocol):
    """The part of :class:`supervisor.model.CityModel` the rules use."""

    @property
    def devices(self) -> Mapping[str, DeviceInfo]: ...
    @property
    def center(self) -> tuple[float, float]: ...
    @property
    def timezone(self) -> str: ...
    def devices_within(
        self, lon: float, lat: float, radius_m: float, family: str | None = None, kind: str | None = None
    ) -> list[str]: ...
    def lights_along(self, street_id: str, buffer_m: float = 25.0) -> list[str]: ...


class StateView(Protocol):
    """The device registry, read-only."""

    def last_seen(self, device: str) -> float | None: ...
    def last_value(self, device: str, measure: str) -> Value | None: ...
    def status(self, device: str) -> str: ...


class CommandSink(Protocol):
    """Where commands go: the pipeline encodes them with the device's driver and publishes them."""

    def send(self, cmd: Command) -> None: ...


# --------------------------------------------------------------------------- outputs


class Point(NamedTuple):
    """One InfluxDB point: measurement, tags, fields, UTC epoch seconds."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | int | bool | str]
    ts: float


@dataclass(frozen=True, slots=True)
class Decision:
    """One explained output of a rule: what was decided for a device and why.

    ``output`` is always a float (a level in %, a count, 1.0 for a yes) so that the InfluxDB field
    keeps one type.
    """

    ts: float
    rule: str
    kind: str
    device: str
    output: float
    text: str
    inputs: Mapping[str, Value] = field(default_factory=dict)
    zone: str | None = None
    channel: str | None = None

    def as_point(self) -> Point:
        tags = {"rule": self.rule, "device": self.device, "zone": self.zone or ""}
        fields: dict[str, float | int | bool | str] = {
            "output": float(self.output),
            "inputs": orjson.dumps(dict(self.inputs)).decode(),
            "text": self.text,
        }
        return Point("decisions", tags, fields, self.ts)

    def as_dict(self) -> dict[str, object]:
        return {
            "ts": self.ts,
            "rule": self.rule,
            "kind": self.kind,
            "device": self.device,
            "channel": self.channel,
            "zone": self.zone,
            "output": self.output,
            "inputs": dict(self.inputs),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class RuleAlarm:
    """An alarm raised (or cleared) by a rule, for the alarm lifecycle of the supervisor."""

    ts: float
    rule: str
    kind: str
    device: str
    state: AlarmState
    severity: Severity
    text: str
    zone: str | None = None
    data: Mapping[str, Value] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable identity of the condition (same key for its raise and its clear)."""
        return f"{self.rule}:{self.device}"
