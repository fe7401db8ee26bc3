"""The MQTT contract shared by devices and the gateway (see docs/protocol.md)."""

from citywatch.protocol.messages import (
    PROTOCOL_VERSION,
    AckMessage,
    CommandMessage,
    ConfigMessage,
    EventMessage,
    EventPhase,
    EventType,
    ReceiptMessage,
    Severity,
    SnapshotMessage,
    StateMessage,
    TelemetryMessage,
)
from citywatch.protocol.topics import Channel, Topic, TopicError

__all__ = [
    "PROTOCOL_VERSION",
    "AckMessage",
    "Channel",
    "CommandMessage",
    "ConfigMessage",
    "EventMessage",
    "EventPhase",
    "EventType",
    "ReceiptMessage",
    "Severity",
    "SnapshotMessage",
    "StateMessage",
    "TelemetryMessage",
    "Topic",
    "TopicError",
]
