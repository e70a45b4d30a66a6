"""Embedded services for ``urban-supervisor demo``: nothing to install besides Python."""

from supervisor.embedded.broker import EmbeddedBroker, EmbeddedBrokerError

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError"]
