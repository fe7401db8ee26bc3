"""CAP 1.2 (OASIS Common Alerting Protocol) rendering of events, and an Atom feed of alerts."""

from gateway.cap.models import (
    CAP_MEDIA_TYPE,
    CapChange,
    CapEventView,
    CapMessage,
    CapOptions,
    CapReference,
    Circle,
    cap_change,
    view_of,
)
from gateway.cap.render import message_identifier, render_alert, render_feed

__all__ = [
    "CAP_MEDIA_TYPE",
    "CapChange",
    "CapEventView",
    "CapMessage",
    "CapOptions",
    "CapReference",
    "Circle",
    "cap_change",
    "message_identifier",
    "render_alert",
    "render_feed",
    "view_of",
]
