"""AsyncAPI "Streetlights MQTT API" (smartylighting): measured light in, turn on/off and dim out.

Subscribes to ``smartylighting/streetlights/1/0/event/{streetlightId}/lighting/measured``
(``{"lumens": n, "sentAt": ISO}``); publishes ``.../action/{streetlightId}/turn/on|off``
(``{"command": "on"|"off"}``) and ``.../action/{streetlightId}/dim`` (``{"percentage": 0..100}``).
``sentAt`` is omitted from commands: the contract does not require it and a driver has no clock.
See README.md.
"""

from __future__ import annotations

import orjson

from .._contract import Command, Decoded, DecodeError, Driver, EncodeError, Publish, Reading
from .._schema import unit_of
from ..kit import (
    BAD_TYPE,
    MISSING_FIELD,
    TopicPattern,
    check_range,
    is_identifier,
    parse_object,
    parse_timestamp,
    to_float,
)
from ..lighting import FAMILY, level_command, percent_to_whole, switch_command

__all__ = ["AsyncapiStreetlightsDriver"]

BASE = "smartylighting/streetlights/1/0"
_MEASURED = TopicPattern(BASE + "/event/{device}/lighting/measured")


class AsyncapiStreetlightsDriver(Driver):
    name = "asyncapi-streetlights"
    families = (FAMILY,)
    topics = (_MEASURED.filter,)
    measures = {(FAMILY, "lumens"): unit_of(FAMILY, "lumens")}
    commands = ("set_level", "switch")

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = _MEASURED.require(topic)
        obj = parse_object(payload)
        raw = obj.get("lumens")
        if isinstance(raw, bool):
            raise DecodeError(BAD_TYPE, "lumens: expected a number, got a boolean")
        lumens = to_float(raw, "lumens")
        if lumens is None:
            raise DecodeError(MISSING_FIELD, "lumens is required")
        check_range(FAMILY, "lumens", lumens)
        ts = parse_timestamp(obj.get("sentAt"), "sentAt")
        return Decoded([Reading(where["device"], FAMILY, {"lumens": lumens}, ts)])

    def encode(self, command: Command) -> list[Publish]:
        device = command.device
        if not is_identifier(device):
            raise EncodeError(f"{self.name}: streetlight id {device!r} is not a topic level identifier")
        if command.channel is not None:
            raise EncodeError(f"{self.name}: the contract addresses whole streetlights, not channels")
        if command.action == "set_level":
            body = {"percentage": percent_to_whole(level_command(self.name, command.value))}
            return [Publish(f"{BASE}/action/{device}/dim", orjson.dumps(body), qos=1, retain=False)]
        if command.action == "switch":
            verb = "on" if switch_command(self.name, command.value) else "off"
            body_s = {"command": verb}
            return [Publish(f"{BASE}/action/{device}/turn/{verb}", orjson.dumps(body_s), qos=1, retain=False)]
        raise EncodeError(f"{self.name}: cannot encode {command.action!r}")
