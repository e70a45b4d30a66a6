"""urban-supervisor: the supervisor of a city's shared multiservice IoT network."""

__version__ = "0.1.0"
