"""CAP 1.2 (OASIS Common Alerting Protocol) rendering of events, and an Atom feed of alerts."""

from gateway.cap.models import (
    CAP_MEDIA_TYPE,
    CapChange,
    CapEventView,
    CapHistory,
    CapMessage,
    CapOptions,
    CapReference,
    CapResource,
    Circle,
    cap_change,
    cap_time,
    view_of,
)
from gateway.cap.render import (
    alert_url,
    atom_time,
    incident_identifier,
    message_identifier,
    render_alert,
    render_feed,
)

__all__ = [
    "CAP_MEDIA_TYPE",
    "CapChange",
    "CapEventView",
    "CapHistory",
    "CapMessage",
    "CapOptions",
    "CapReference",
    "CapResource",
    "Circle",
    "alert_url",
    "atom_time",
    "cap_change",
    "cap_time",
    "incident_identifier",
    "message_identifier",
    "render_alert",
    "render_feed",
    "view_of",
]
