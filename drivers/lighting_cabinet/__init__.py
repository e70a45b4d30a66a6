"""Lighting cabinet and lamp (native scheme): telemetry and dimming/switch commands.

Topic ``city/<zone>/lighting/<device>/telemetry``. A payload with ``circuits`` is a cabinet: one
reading of cabinet totals plus one reading per circuit (``channel`` = circuit id). A payload without
``circuits`` is a single lamp. Commands go to ``city/<zone>/lighting/<device>/cmd``. See README.md.
"""

from __future__ import annotations

from typing import Any

import orjson

from .._contract import Command, Decoded, DecodeError, Driver, EncodeError, Publish, Reading
from ..kit import (
    BAD_IDENTIFIER,
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    Field,
    FieldSet,
    TopicPattern,
    is_identifier,
    parse_object,
    parse_timestamp,
    to_identifier,
)
from ..lighting import FAMILY, level_command, switch_command

__all__ = ["LightingCabinetDriver"]

_CABINET = FieldSet(
    FAMILY,
    (Field("power"), Field("energy"), Field("voltage"), Field("current"), Field("lamp_failures"),
     Field("lamps"), Field("door_open")),
)
_CIRCUIT = FieldSet(FAMILY, (Field("on"), Field("level"), Field("power")))
_LAMP = FieldSet(FAMILY, (Field("on"), Field("level"), Field("power"), Field("setpoint")))
_TELEMETRY = TopicPattern("city/{zone}/lighting/{device}/telemetry")
_MAX_CIRCUITS = 256


class LightingCabinetDriver(Driver):
    name = "lighting_cabinet"
    families = (FAMILY,)
    topics = (_TELEMETRY.filter,)
    ignored = ("city/+/lighting/+/cmd",)  # our own commands, seen through the city/# subscription
    measures = {**_CABINET.measures, **_CIRCUIT.measures, **_LAMP.measures}
    commands = ("set_level", "switch")

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = _TELEMETRY.require(topic)
        obj = parse_object(payload)
        device, zone = where["device"], where["zone"]
        ts = parse_timestamp(obj.get("ts"))
        circuits = obj.get("circuits")
        if circuits is None:
            values = _LAMP.extract(obj)
            if not values:
                raise DecodeError(MISSING_FIELD, "lamp payload has none of on, level, power, setpoint")
            return Decoded([Reading(device, FAMILY, values, ts, zone)])
        if not isinstance(circuits, list):
            raise DecodeError(BAD_TYPE, "circuits: expected an array of objects")
        if len(circuits) > _MAX_CIRCUITS:
            raise DecodeError(BAD_VALUE, f"circuits: {len(circuits)} circuits, at most {_MAX_CIRCUITS}")
        readings: list[Reading] = []
        totals = _CABINET.extract(obj)
        if totals:
            readings.append(Reading(device, FAMILY, totals, ts, zone))
        seen: set[str] = set()
        for i, circuit in enumerate(circuits):
            if not isinstance(circuit, dict):
                raise DecodeError(BAD_TYPE, f"circuits[{i}]: expected an object")
            channel = to_identifier(circuit.get("id"), f"circuits[{i}].id")
            if channel is None:
                raise DecodeError(MISSING_FIELD, f"circuits[{i}].id is required")
            if channel in seen:
                raise DecodeError(BAD_IDENTIFIER, f"circuits[{i}].id {channel!r} is repeated")
            seen.add(channel)
            values = _CIRCUIT.extract(circuit)
            if values:
                readings.append(Reading(device, FAMILY, values, ts, zone, channel))
        if not readings:
            raise DecodeError(MISSING_FIELD, "cabinet payload has no totals and no circuit values")
        return Decoded(readings)

    def encode(self, command: Command) -> list[Publish]:
        if not command.zone:
            raise EncodeError(f"{self.name}: command for {command.device!r} has no zone")
        for what, ident in (("zone", command.zone), ("device", command.device), ("channel", command.channel)):
            if ident is not None and not is_identifier(ident):
                raise EncodeError(f"{self.name}: {what} {ident!r} is not an identifier")
        body: dict[str, Any]
        if command.action == "set_level":
            body = {"level": level_command(self.name, command.value)}
        elif command.action == "switch":
            body = {"on": switch_command(self.name, command.value)}
        else:
            raise EncodeError(f"{self.name}: cannot encode {command.action!r}")
        if command.channel is not None:
            body["circuit"] = command.channel
        topic = f"city/{command.zone}/lighting/{command.device}/cmd"
        return [Publish(topic, orjson.dumps(body), qos=1, retain=False)]
