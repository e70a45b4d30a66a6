"""What the MQTT session subscribes to, and what it does with a refused filter (no broker needed)."""

from __future__ import annotations

import logging

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from supervisor.config import MqttConfig
from supervisor.ingest.mqtt import Inbox, MqttIngest


def test_the_drop_counter_is_one_plain_subscription_beside_the_shared_ones() -> None:
    ing = MqttIngest(MqttConfig(share_group="g-p0"), ["city/z1/#"], Inbox())
    assert ing.subscriptions == ["$share/g-p0/city/z1/#", "$SYS/broker/publish/messages/dropped"]
    off = MqttIngest(MqttConfig(broker_drop_counter=None), ["city/#"], Inbox())
    assert off.subscriptions == ["city/#"]


def test_a_refused_filter_is_logged_with_its_topic_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    ing = MqttIngest(MqttConfig(), ["city/#"], Inbox())
    ing._pending_subs[7] = ["city/#", "$SYS/broker/publish/messages/dropped"]
    granted = ReasonCode(PacketTypes.SUBACK, identifier=1)
    refused = ReasonCode(PacketTypes.SUBACK, identifier=0x87)  # not authorized
    with caplog.at_level(logging.ERROR, logger="supervisor.ingest.mqtt"):
        ing._on_subscribe(ing._client, None, 7, [granted, refused])
    assert ing.stats.refused_subscriptions == 1
    assert "'$SYS/broker/publish/messages/dropped'" in caplog.text and "city/#" not in caplog.text
    assert 7 not in ing._pending_subs
