"""The Things Stack v3: uplinks and joins of its MQTT server.

Topics ``v3/<app>@<tenant>/devices/<device id>/up`` and ``.../join``. The device is identified by its
DevEUI (``end_device_ids.dev_eui``), not by the device id of the topic. See README.md in this folder
and :mod:`drivers.lorawan` for the profiles and the gateway readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._contract import Decoded, DecodeError, Driver, Event, Reading, Value
from ..kit import BAD_TYPE, BAD_VALUE, UNKNOWN_TOPIC, TopicPattern, parse_object, parse_timestamp, to_float
from ..lorawan import (
    GATEWAY_FAMILY,
    OPTIONS,
    RADIO_MEASURES,
    LoraConfig,
    dev_eui,
    gateway_id,
    gateway_readings,
    sub_list,
    sub_object,
)

__all__ = ["TheThingsStackDriver"]

# "<app>@<tenant>" is not an identifier segment ("@"), so that level is a plain wildcard
_MESSAGE = TopicPattern("v3/+/devices/{device}/{kind}")


def _version_key(uplink: Mapping[str, Any]) -> str | None:
    """The Device Repository's ``<brand_id>/<model_id>`` of an uplink, if the device has one."""
    ids = sub_object(uplink, "version_ids")
    brand, model = ids.get("brand_id"), ids.get("model_id")
    return f"{brand}/{model}" if isinstance(brand, str) and isinstance(model, str) else None


class TheThingsStackDriver(Driver):
    name = "the_things_stack"
    families: ClassVar[tuple[str, ...]] = (GATEWAY_FAMILY,)
    topics: ClassVar[tuple[str, ...]] = ("v3/+/devices/+/up", "v3/+/devices/+/join")
    # downlink events, service data, solved locations: not telemetry
    ignored: ClassVar[tuple[str, ...]] = ("v3/+/devices/+/+", "v3/+/devices/+/down/+")
    measures: ClassVar[Mapping[tuple[str, str], str]] = RADIO_MEASURES
    OPTIONS: ClassVar[frozenset[str] | None] = OPTIONS

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._cfg = LoraConfig(self.name, self.options, RADIO_MEASURES)
        object.__setattr__(self, "families", self._cfg.families)
        object.__setattr__(self, "measures", self._cfg.measures)

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = _MESSAGE.require(topic)
        if where["kind"] not in ("up", "join"):
            raise DecodeError(UNKNOWN_TOPIC, f"{topic!r}: only up and join messages are decoded")
        obj = parse_object(payload)
        ids = sub_object(obj, "end_device_ids")
        if ids.get("device_id", where["device"]) != where["device"]:
            raise DecodeError(BAD_VALUE, f"end_device_ids.device_id is not the topic's {where['device']}")
        eui = dev_eui(ids.get("dev_eui"), "end_device_ids.dev_eui")
        if where["kind"] == "join":
            return self._join(eui, obj)
        return self._up(eui, obj)

    def _up(self, eui: str, obj: Mapping[str, Any]) -> Decoded:
        uplink = sub_object(obj, "uplink_message")
        if not uplink:
            raise DecodeError(BAD_TYPE, "uplink_message: expected an object")
        profile = self._cfg.profile(eui, _version_key(uplink))
        ts = parse_timestamp(uplink.get("received_at", obj.get("received_at")), "received_at")
        values = profile.extract(sub_object(uplink, "decoded_payload"))
        heard = []
        for i, rx in enumerate(sub_list(uplink, "rx_metadata")):
            if not isinstance(rx, dict):
                raise DecodeError(BAD_TYPE, f"rx_metadata[{i}]: expected an object")
            gw = sub_object(rx, "gateway_ids").get("gateway_id")
            heard.append((gateway_id(gw, f"rx_metadata[{i}].gateway_ids.gateway_id"),
                          to_float(rx.get("rssi"), "rssi"), to_float(rx.get("snr"), "snr")))
        return Decoded([Reading(eui, profile.family, values, ts), *gateway_readings(self._cfg, heard, ts)])

    def _join(self, eui: str, obj: Mapping[str, Any]) -> Decoded:
        join = sub_object(obj, "join_accept")
        profile = self._cfg.profile(eui, None)
        ts = parse_timestamp(join.get("received_at", obj.get("received_at")), "received_at")
        data: dict[str, Value] = {}
        addr = sub_object(obj, "end_device_ids").get("dev_addr")
        if isinstance(addr, str) and addr:
            data["dev_addr"] = addr.lower()
        return Decoded([], [Event(eui, profile.family, "join", ts, data=data)])
