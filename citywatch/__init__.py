"""citywatch: edge agents and a gateway for city-safety events."""

__version__ = "0.1.0"
