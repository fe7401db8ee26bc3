"""Which evidence an event has, as links: for the API, the webhook payload and the CAP <resource>s.

An event's items are those of its device whose ``event_id`` is one of the device event ids folded into
it (``event_revisions``): a condition raised again under a new id keeps the evidence of the earlier one.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import GATEWAY_EVENT_TYPES
from gateway.events.models import Event, EventRevision
from gateway.evidence.models import EvidenceItem, EvidenceLink, EvidencePart, EvidenceStatus, PendingEvidence

SNAPSHOT_CONTENT_TYPE = "image/jpeg"


def evidence_url(base_url: str, event_id: int, evidence_id: str) -> str:
    return f"{base_url.rstrip('/')}/events/{event_id}/evidence/{evidence_id}"


def snapshot_url(base_url: str, event_id: int) -> str:
    return f"{base_url.rstrip('/')}/events/{event_id}/snapshot"


def _of_event(event: Event) -> ColumnElement[bool]:
    """SQL: items of the event's device filed under one of the event's device event ids. The one it
    follows counts too: while a new event is first pushed, its revision is not recorded yet."""
    folded = select(EventRevision.device_event_id).where(EventRevision.event_id == event.id)
    return (EvidenceItem.device_id == event.device_id) & (
        EvidenceItem.device_event_id.in_(folded) | (EvidenceItem.device_event_id == event.device_event_id)
    )


def items_of(
    session: Session, event: Event, *, status: EvidenceStatus = EvidenceStatus.COMPLETE
) -> list[EvidenceItem]:
    return list(
        session.scalars(
            select(EvidenceItem)
            .where(_of_event(event), EvidenceItem.status == status)
            .order_by(EvidenceItem.taken_at, EvidenceItem.id)
        )
    )


def find(session: Session, event: Event, evidence_id: str) -> EvidenceItem | None:
    """The complete item ``evidence_id`` of the event, if it has one."""
    return session.scalars(
        select(EvidenceItem).where(
            _of_event(event),
            EvidenceItem.evidence_id == evidence_id,
            EvidenceItem.status == EvidenceStatus.COMPLETE,
        )
    ).first()


def link(item: EvidenceItem, *, base_url: str, event_id: int) -> EvidenceLink:
    return EvidenceLink(
        evidence_id=item.evidence_id,
        kind=item.kind,  # type: ignore[arg-type]  # the protocol's kinds, checked when it came in
        content_type=item.content_type,
        url=evidence_url(base_url, event_id, item.evidence_id),
        size=item.size,
        sha256=item.sha256,
        sha1=item.sha1,
        caption=item.caption,
        taken_at=item.taken_at,
        received_at=item.received_at,
    )


def event_links(session: Session, event: Event, *, base_url: str) -> list[EvidenceLink]:
    """The event's snapshot (when it names one: its link, whether or not the JPEG has come yet), then
    every complete evidence item, by the time it shows."""
    links = []
    if event.snapshot_id:
        links.append(
            EvidenceLink(
                evidence_id=event.snapshot_id,
                kind="snapshot",
                content_type=SNAPSHOT_CONTENT_TYPE,
                url=snapshot_url(base_url, event.id),
                size=None,
                sha256=None,
                sha1=None,
                caption=None,
                taken_at=None,
                received_at=None,
            )
        )
    if event.type in GATEWAY_EVENT_TYPES:
        return links  # raised by the gateway itself: no device files evidence under it (a read saved)
    links += [link(item, base_url=base_url, event_id=event.id) for item in items_of(session, event)]
    return links


def pending_of(session: Session, event: Event) -> list[PendingEvidence]:
    rows = session.execute(
        select(EvidenceItem, func.count(EvidencePart.id))
        .outerjoin(EvidencePart, EvidencePart.item_id == EvidenceItem.id)
        .where(_of_event(event), EvidenceItem.status == EvidenceStatus.PARTIAL)
        .group_by(EvidenceItem.id)
        .order_by(EvidenceItem.id)
    )
    return [
        PendingEvidence(
            evidence_id=item.evidence_id,
            kind=item.kind,
            content_type=item.content_type,
            parts=item.parts,
            parts_received=received,
        )
        for item, received in rows
    ]
