"""Every table of the gateway database, imported once so ``Base.metadata`` is complete."""

from gateway.auth.models import ApiToken
from gateway.db import Base
from gateway.devices.models import Device, DeviceAudit
from gateway.dispatch.models import OutboxMessage, WebhookEndpoint
from gateway.events.models import Event, EventAudit, EventCapMessage, EventRevision
from gateway.evidence.models import EvidenceItem, EvidencePart

__all__ = [
    "ApiToken",
    "Base",
    "Device",
    "DeviceAudit",
    "Event",
    "EventAudit",
    "EventCapMessage",
    "EventRevision",
    "EvidenceItem",
    "EvidencePart",
    "OutboxMessage",
    "WebhookEndpoint",
]
