"""The MQTT contract shared by devices and the gateway (see docs/protocol.md).

The names below load on first use: ``citywatch protocol ...`` registers its CLI from this package, and
building the ``citywatch`` parser must not import pydantic and every message model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from citywatch.protocol.messages import (
        PROTOCOL_VERSION,
        AckMessage,
        CommandMessage,
        ConfigMessage,
        EventMessage,
        EventPhase,
        EventType,
        EvidenceKind,
        EvidenceMessage,
        ReceiptMessage,
        RefusalMessage,
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
    "EvidenceKind",
    "EvidenceMessage",
    "ReceiptMessage",
    "RefusalMessage",
    "Severity",
    "SnapshotMessage",
    "StateMessage",
    "TelemetryMessage",
    "Topic",
    "TopicError",
]
_TOPIC_NAMES = frozenset({"Channel", "Topic", "TopicError"})


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = "citywatch.protocol.topics" if name in _TOPIC_NAMES else "citywatch.protocol.messages"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
