"""ChirpStack v4: the MQTT integration's device events and the gateway bridge's statistics (JSON).

Topics ``application/<app>/device/<devEUI>/event/{up,status,join}`` and, for the gateways,
``eu868/gateway/<gatewayId>/event/stats`` (option ``gateway_topic``) and the gateway bridge's
connection state ``eu868/gateway/<gatewayId>/state/conn`` (option ``gateway_state_topic``). See README.md in this
folder and :mod:`drivers.lorawan` for the profiles and the gateway readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._contract import Decoded, DecodeError, Driver, Event, Reading, Value
from ..kit import (
    BAD_TYPE,
    BAD_VALUE,
    OUT_OF_RANGE,
    UNKNOWN_TOPIC,
    TopicPattern,
    parse_object,
    parse_timestamp,
    pattern_option,
    to_bool,
    to_float,
    to_int,
)
from ..lorawan import (
    GATEWAY_FAMILY,
    GATEWAY_MEASURES,
    OPTIONS,
    LoraConfig,
    dev_eui,
    gateway_id,
    gateway_readings,
    sub_list,
    sub_object,
)

__all__ = ["ChirpStackDriver"]

_EVENT = TopicPattern("application/{app}/device/{device}/event/{event}")
_STATS_DEFAULT = "eu868/gateway/{gateway}/event/stats"
_STATE_DEFAULT = "eu868/gateway/{gateway}/state/conn"
#: ``ConnState.state``; the JSON marshaler (protobuf's JSON mapping) omits the enum's zero value, OFFLINE
_CONN = {"ONLINE": True, "OFFLINE": False}
_STATS = {"rxPacketsReceived": "rx_received", "rxPacketsReceivedOk": "rx_ok",
          "txPacketsReceived": "tx_received", "txPacketsEmitted": "tx_emitted"}


class ChirpStackDriver(Driver):
    name = "chirpstack"
    families: ClassVar[tuple[str, ...]] = (GATEWAY_FAMILY,)
    topics: ClassVar[tuple[str, ...]] = (
        "application/+/device/+/event/up",
        "application/+/device/+/event/status",
        "application/+/device/+/event/join",
        TopicPattern(_STATS_DEFAULT).filter,
        TopicPattern(_STATE_DEFAULT).filter,
    )
    # the other integration events (ack, txack, log, location, integration) are not telemetry
    ignored: ClassVar[tuple[str, ...]] = ("application/+/device/+/event/+",)
    measures: ClassVar[Mapping[tuple[str, str], str]] = GATEWAY_MEASURES
    OPTIONS: ClassVar[frozenset[str] | None] = OPTIONS | {"gateway_topic", "gateway_state_topic"}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._cfg = LoraConfig(self.name, self.options, GATEWAY_MEASURES)
        self._stats = pattern_option(self.name, self.options, "gateway_topic", _STATS_DEFAULT, ("gateway",))
        self._state = pattern_option(self.name, self.options, "gateway_state_topic", _STATE_DEFAULT, ("gateway",))
        set_ = object.__setattr__  # per instance: what the configured profiles and topics add
        set_(self, "topics", (*type(self).topics[:3], self._stats.filter, self._state.filter))
        set_(self, "families", self._cfg.families)
        set_(self, "measures", self._cfg.measures)

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = _EVENT.match(topic)
        if where is None:
            stats = self._stats.match(topic)
            if stats is not None:
                return self._gateway_stats(stats["gateway"], parse_object(payload))
            state = self._state.match(topic)
            if state is None:
                raise DecodeError(UNKNOWN_TOPIC, f"{topic!r} is not a ChirpStack event, gateway statistics or "
                                  "gateway state topic")
            return self._gateway_state(state["gateway"], parse_object(payload))
        obj = parse_object(payload)
        event = where["event"]
        if event == "up":
            return self._up(where["device"], obj)
        if event == "status":
            return self._status(where["device"], obj)
        if event == "join":
            return self._join(where["device"], obj)
        raise DecodeError(UNKNOWN_TOPIC, f"event {event!r} is not up, status or join")

    def _device(self, topic_eui: str, obj: Mapping[str, Any]) -> tuple[str, Any, float | None]:
        info = sub_object(obj, "deviceInfo")
        eui = dev_eui(info.get("devEui", topic_eui), "deviceInfo.devEui")
        if eui != topic_eui.lower():
            raise DecodeError(BAD_VALUE, f"deviceInfo.devEui {eui} is not the topic's {topic_eui}")
        return eui, info.get("deviceProfileName"), parse_timestamp(obj.get("time"), "time")

    def _up(self, topic_eui: str, obj: Mapping[str, Any]) -> Decoded:
        eui, profile_name, ts = self._device(topic_eui, obj)
        profile = self._cfg.profile(eui, profile_name)
        values = profile.extract(sub_object(obj, "object"))
        heard = []
        for i, rx in enumerate(sub_list(obj, "rxInfo")):
            if not isinstance(rx, dict):
                raise DecodeError(BAD_TYPE, f"rxInfo[{i}]: expected an object")
            heard.append((gateway_id(rx.get("gatewayId"), f"rxInfo[{i}].gatewayId"),
                          to_float(rx.get("rssi"), "rssi"), to_float(rx.get("snr"), "snr")))
        readings = [Reading(eui, profile.family, values, ts), *gateway_readings(self._cfg, heard, ts)]
        return Decoded(readings)

    def _status(self, topic_eui: str, obj: Mapping[str, Any]) -> Decoded:
        """Battery and link margin: a ``battery`` reading when the family has one, and a ``status`` event."""
        eui, profile_name, ts = self._device(topic_eui, obj)
        profile = self._cfg.profile(eui, profile_name)
        data: dict[str, Value] = {}
        margin = to_int(obj.get("margin"), "margin")
        if margin is not None:
            data["margin_db"] = margin
        external = to_bool(obj.get("externalPowerSource"), "externalPowerSource")
        data["external_power"] = bool(external)
        battery = None
        if not external and not to_bool(obj.get("batteryLevelUnavailable"), "batteryLevelUnavailable"):
            battery = to_float(obj.get("batteryLevel"), "batteryLevel")
        readings = []
        if battery is not None:
            data["battery"] = battery
            if (profile.family, "battery") in self._cfg.measures:
                readings.append(Reading(eui, profile.family, {"battery": battery}, ts))
        return Decoded(readings, [Event(eui, profile.family, "status", ts, data=data)])

    def _join(self, topic_eui: str, obj: Mapping[str, Any]) -> Decoded:
        eui, profile_name, ts = self._device(topic_eui, obj)
        profile = self._cfg.profile(eui, profile_name)
        data: dict[str, Value] = {}
        addr = obj.get("devAddr")
        if isinstance(addr, str) and addr:
            data["dev_addr"] = addr.lower()
        return Decoded([], [Event(eui, profile.family, "join", ts, data=data)])

    def _gateway_state(self, topic_gateway: str, obj: Mapping[str, Any]) -> Decoded:
        """The gateway bridge's ``conn`` state (retained; OFFLINE is its MQTT last will): ``online``."""
        gw = gateway_id(obj.get("gatewayId", topic_gateway), "gatewayId")
        if gw != gateway_id(topic_gateway, "topic"):
            raise DecodeError(BAD_VALUE, f"gatewayId {gw} is not the topic's {topic_gateway}")
        if not self._cfg.reports(gw):
            return Decoded()
        state = obj.get("state", "OFFLINE")  # absent: the enum's zero value
        online = _CONN.get(state) if isinstance(state, str) else None
        if online is None:
            raise DecodeError(BAD_VALUE, f"state: {state!r} is not ONLINE or OFFLINE")
        return Decoded([Reading(gw, GATEWAY_FAMILY, {"online": online})])

    def _gateway_stats(self, topic_gateway: str, obj: Mapping[str, Any]) -> Decoded:
        gw = gateway_id(obj.get("gatewayId", topic_gateway), "gatewayId")
        if gw != gateway_id(topic_gateway, "topic"):
            raise DecodeError(BAD_VALUE, f"gatewayId {gw} is not the topic's {topic_gateway}")
        if not self._cfg.reports(gw):
            return Decoded()
        values: dict[str, Value] = {}
        for key, measure in _STATS.items():
            count = to_int(obj.get(key), key)
            if count is not None:
                if count < 0:
                    raise DecodeError(OUT_OF_RANGE, f"{key}: {count} is negative")
                values[measure] = count
        # a gateway that heard nothing sends no counter at all (JSON omits zeros): still alive
        for measure in _STATS.values():
            values.setdefault(measure, 0)
        return Decoded([Reading(gw, GATEWAY_FAMILY, values, parse_timestamp(obj.get("time"), "time"))])
