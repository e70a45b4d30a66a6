"""The driver contract: what a driver receives and returns.

A driver is pure translation. ``decode`` turns one MQTT message into readings and events;
``encode`` turns one command into MQTT publishes. A driver does no I/O, keeps no global state and
never sees the broker: the framework owns MQTT, reconnection, batching, logging and counters.

A *reading* groups the values one device reported at one instant (one line of line protocol);
an *observation* is one value of a reading with its canonical unit (what ``urban-supervisor decode``
prints). Values are always in the canonical units of :mod:`drivers._schema`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Value = float | int | bool | str


class DriverError(Exception):
    """Base class of the errors a driver raises."""


class DecodeError(DriverError):
    """A payload the driver refuses.

    ``reason`` is a short, stable code used as a counter label (``invalid_json``,
    ``missing_field``, ``bad_type``, ``out_of_range``, ``unknown_topic``, ``wrong_kind``,
    ``bad_timestamp``...). ``detail`` is the human explanation, logged with the topic.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(DriverError):
    """A command the driver cannot express for this device."""


class ConfigError(DriverError):
    """A driver option that is invalid; raised at construction, before any I/O."""


@dataclass(slots=True)
class Reading:
    """The values one device reported at one instant, in canonical units.

    ``ts`` is a UTC epoch in seconds, or ``None`` when the payload carries no time (the framework
    then stamps the receive time). ``channel`` distinguishes sub-units of one device, such as the
    circuits of a lighting cabinet; it becomes a tag.
    """

    device: str
    family: str
    values: dict[str, Value]
    ts: float | None = None
    zone: str | None = None
    channel: str | None = None


@dataclass(slots=True)
class Event:
    """Something that happened rather than a sampled value: an alarm, a motion, a token."""

    device: str
    family: str
    kind: str
    ts: float | None = None
    zone: str | None = None
    data: dict[str, Value] = field(default_factory=dict)


@dataclass(slots=True)
class Decoded:
    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Observation:
    """One normalised value, as printed by ``urban-supervisor decode``."""

    device: str
    family: str
    measure: str
    value: Value
    unit: str
    ts: float | None
    zone: str | None = None
    channel: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "device": self.device,
            "family": self.family,
            "measure": self.measure,
            "value": self.value,
            "unit": self.unit,
            "ts": self.ts,
        }
        if self.zone is not None:
            d["zone"] = self.zone
        if self.channel is not None:
            d["channel"] = self.channel
        return d


CommandAction = Literal["set_level", "switch"]


@dataclass(slots=True, frozen=True)
class Command:
    """What the supervisor wants a device to do, in canonical units.

    ``set_level``: ``value`` is a dimming level in % 0..100 (0 means off).
    ``switch``: ``value`` is a bool.
    ``zone`` and ``channel`` address the device where its topic scheme needs them.
    """

    device: str
    action: CommandAction
    value: float | bool
    zone: str | None = None
    channel: str | None = None


@dataclass(slots=True, frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False  # commands are never retained (a retained command replays at reconnect)


class Driver(abc.ABC):
    """Base class of every driver.

    Class attributes declare what the driver does, so that the framework and the catalogue test
    can check it without calling it:

    - ``name``: registry name (``urban-supervisor decode --driver NAME``);
    - ``families``: the families it emits;
    - ``topics``: MQTT subscription filters it claims (``+``/``#`` wildcards);
    - ``measures``: ``{(family, measure): unit}`` it may emit, all in canonical units;
    - ``commands``: the command actions it can encode (empty for read-only devices);
    - ``ignored``: filters of topics the driver knows and deliberately skips, such as its own
      command topics or binary snapshots: the framework acknowledges them without counting an
      error (they arrive because the supervisor subscribes to the roots of ``topics``).

    ``__init__`` receives the driver's options from the configuration; it validates them and
    raises :class:`ConfigError`, and does no I/O.
    """

    name: ClassVar[str]
    families: ClassVar[tuple[str, ...]]
    topics: ClassVar[tuple[str, ...]]
    measures: ClassVar[Mapping[tuple[str, str], str]]
    commands: ClassVar[tuple[str, ...]] = ()
    ignored: ClassVar[tuple[str, ...]] = ()
    OPTIONS: ClassVar[frozenset[str] | None] = None  # the option names it accepts; None: not checked here

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: Mapping[str, Any] = dict(options or {})
        if self.OPTIONS is not None:
            unknown = sorted(set(self.options) - self.OPTIONS)
            if unknown:
                raise ConfigError(f"driver {self.name!r}: unknown option(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(self.OPTIONS)) or 'none'}")

    @abc.abstractmethod
    def decode(self, topic: str, payload: bytes) -> Decoded:
        """Translate one message. Raise :class:`DecodeError` for a payload it refuses."""

    def encode(self, command: Command) -> list[Publish]:
        """Translate one command into publishes. Read-only drivers keep this default."""
        raise EncodeError(f"driver {self.name!r} cannot encode {command.action!r}")

    def observations(self, decoded: Decoded) -> list[Observation]:
        """Flatten readings into observations with their declared units."""
        out: list[Observation] = []
        for r in decoded.readings:
            for measure, value in r.values.items():
                unit = self.measures.get((r.family, measure), "")
                out.append(
                    Observation(r.device, r.family, measure, value, unit, r.ts, r.zone, r.channel)
                )
        return out
