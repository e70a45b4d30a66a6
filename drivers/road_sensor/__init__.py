"""Road sensor (native scheme): traffic flow, speed and occupancy of one detector.

Topic ``city/<zone>/traffic/<device>/telemetry``; see README.md in this folder.
"""

from __future__ import annotations

from ..kit import DeclarativeDriver, Field

__all__ = ["RoadSensorDriver"]


class RoadSensorDriver(DeclarativeDriver):
    name = "road_sensor"
    family = "traffic"
    pattern = "city/{zone}/traffic/{device}/telemetry"
    fields = (Field("flow"), Field("speed"), Field("occupancy"), Field("heavy_flow"))
