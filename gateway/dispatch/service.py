"""Outbox operations: enqueue in the caller's transaction, endpoint set-up, delivery bookkeeping."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.cap.models import CAP_MEDIA_TYPE
from gateway.db import utcnow
from gateway.dispatch.models import OutboxMessage, OutboxStatus, WebhookEndpoint
from gateway.events.models import Event, read_event
from gateway.evidence.links import event_links
from gateway.evidence.models import EvidenceLink
from gateway.redaction import redact_url

if TYPE_CHECKING:
    from gateway.events.policy import EventPolicy
    from gateway.routing.models import RoutingTable

JSON_MEDIA_TYPE = "application/json"


def ensure_endpoint(
    *,
    session: Session,
    name: str,
    url: str,
    secrets: Iterable[str],
    department: str | None = None,
    format: str = "json",
) -> WebhookEndpoint:
    """Create or update an endpoint from configuration; a changed URL re-enables it."""
    secret = " ".join(secrets)
    endpoint = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.name == name)).first()
    if endpoint is None:
        endpoint = WebhookEndpoint(
            name=name, url=url, secret=secret, enabled=True, department=department, format=format
        )
        session.add(endpoint)
    else:
        if endpoint.url != url or (not endpoint.enabled and endpoint.disabled_reason == _NOT_CONFIGURED):
            endpoint.enabled, endpoint.disabled_reason = True, None
        endpoint.url, endpoint.secret = url, secret
        endpoint.department, endpoint.format = department, format
    session.flush()
    return endpoint


_NOT_CONFIGURED = "not in the routing table (or CITYWATCH_DISPATCH_URL is empty)"


def configure_endpoints(*, session: Session, table: RoutingTable) -> None:
    """One endpoint per department with a webhook; endpoints no longer configured stop (rows wait)."""
    configured = set()
    for department in table.departments:
        if department.webhook is None:
            continue
        ensure_endpoint(
            session=session,
            name=department.id,
            url=str(department.webhook.url),
            secrets=department.webhook.secrets,
            department=department.id,
            format=department.webhook.format.value,
        )
        configured.add(department.id)
    for endpoint in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))):
        if endpoint.name not in configured:
            endpoint.enabled, endpoint.disabled_reason = False, _NOT_CONFIGURED


def webhook_body(
    *,
    session: Session,
    event: Event,
    message_type: str,
    at: datetime,
    policy: EventPolicy,
    links: list[EvidenceLink] | None = None,
) -> str:
    """Standard Webhooks payload shape: type, timestamp, data. ``data`` is the event, with ``evidence``:
    its snapshot and the evidence items complete by now, each with an absolute link (the public URL)."""
    data = read_event(event, now=at, policy=policy.escalation).model_dump(mode="json")
    if links is None:
        links = event_links(session, event, base_url=policy.cap.web_base_url)
    data["evidence"] = [link.model_dump(mode="json") for link in links]
    return json.dumps(
        {"type": message_type, "timestamp": at.isoformat(), "data": data}, separators=(",", ":")
    )


def enqueue(
    *,
    session: Session,
    event: Event,
    message_type: str,
    cap_xml: str,
    policy: EventPolicy,
    at: datetime,
    links: list[EvidenceLink] | None = None,
) -> list[OutboxMessage]:
    """One row per enabled endpoint of the event's department, in the caller's transaction; ``links``
    are the event's evidence links when the caller has them already (read otherwise)."""
    now = utcnow()  # delivery bookkeeping runs on the real clock, even when the lifecycle's is injected
    rows = []
    json_body: str | None = None
    # Nothing pending in the session changes the endpoints: no flush here, the caller's commit does it.
    with session.no_autoflush:
        endpoints = session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.enabled.is_(True), WebhookEndpoint.department == event.department
            )
        ).all()
    for endpoint in endpoints:
        if endpoint.format == "cap":
            body, content_type = cap_xml, CAP_MEDIA_TYPE
        else:
            if json_body is None:
                json_body = webhook_body(
                    session=session, event=event, message_type=message_type, at=at, policy=policy, links=links
                )
            body, content_type = json_body, JSON_MEDIA_TYPE
        row = OutboxMessage(
            endpoint_id=endpoint.id,
            event_id=event.id,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            message_type=message_type,
            payload=body,
            content_type=content_type,
            status=OutboxStatus.PENDING,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        rows.append(row)
    return rows


def counts_by_status(*, session: Session, statuses: Iterable[str] | None = None) -> dict[str, int]:
    """Outbox rows per status; ``statuses``: only these (delivered rows grow for ever)."""
    query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    if statuses is not None:
        query = query.where(OutboxMessage.status.in_(list(statuses)))
    return {status: count for status, count in session.execute(query)}


def endpoint_states(*, session: Session) -> list[dict[str, object]]:
    """Each endpoint (its URL without credentials), whether it takes deliveries, and what waits for it
    (for ``/health``). ``configured`` is False for an endpoint no longer in the routing table."""
    waiting = {
        endpoint_id: (count, oldest)
        for endpoint_id, count, oldest in session.execute(
            select(OutboxMessage.endpoint_id, func.count(), func.min(OutboxMessage.created_at))
            .where(OutboxMessage.status == OutboxStatus.PENDING)
            .group_by(OutboxMessage.endpoint_id)
        )
    }
    states: list[dict[str, object]] = []
    for endpoint in session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)):
        pending, oldest = waiting.get(endpoint.id, (0, None))
        states.append(
            {
                "name": endpoint.name,
                "url": redact_url(endpoint.url),
                "enabled": endpoint.enabled,
                "configured": endpoint.disabled_reason != _NOT_CONFIGURED,
                "disabled_reason": endpoint.disabled_reason,
                "pending": pending,
                "oldest_pending_at": oldest.isoformat() if oldest is not None else None,
            }
        )
    return states
