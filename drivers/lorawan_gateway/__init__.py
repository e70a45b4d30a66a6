"""LoRaWAN radio gateway (native scheme): link quality and traffic counters of one gateway.

Topic ``city/<zone>/lorawan/<device>/telemetry``; see README.md in this folder. The network-server
formats of the same family are the ``chirpstack`` and ``the_things_stack`` drivers.
"""

from __future__ import annotations

from ..kit import DeclarativeDriver, Field

__all__ = ["LorawanGatewayDriver"]


class LorawanGatewayDriver(DeclarativeDriver):
    name = "lorawan_gateway"
    family = "lorawan"
    pattern = "city/{zone}/lorawan/{device}/telemetry"
    fields = (Field("rssi"), Field("snr"), Field("rx_received"), Field("rx_ok"), Field("tx_received"),
              Field("tx_emitted"))
