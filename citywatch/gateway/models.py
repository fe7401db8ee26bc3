"""Every table of the gateway database, imported once so ``Base.metadata`` is complete."""

from citywatch.gateway.auth.models import ApiToken
from citywatch.gateway.db import Base
from citywatch.gateway.devices.models import Device
from citywatch.gateway.dispatch.models import OutboxMessage, WebhookEndpoint
from citywatch.gateway.events.models import Event, EventAudit, EventCapMessage, EventRevision

__all__ = [
    "ApiToken",
    "Base",
    "Device",
    "Event",
    "EventAudit",
    "EventCapMessage",
    "EventRevision",
    "OutboxMessage",
    "WebhookEndpoint",
]
