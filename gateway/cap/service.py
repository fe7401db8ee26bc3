"""The next CAP message of a stored event: its place in the chain, its area from the device registry.

Every message is kept (``event_cap_messages``): the feed serves them, and later messages reference them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cap.models import (
    CapHistory,
    CapMessage,
    CapOptions,
    CapReference,
    CapResource,
    Circle,
    cap_time,
    view_of,
)
from gateway.cap.render import render_alert
from gateway.devices.models import Device
from gateway.events.models import Event, EventCapMessage
from gateway.evidence.links import event_links
from gateway.evidence.models import EvidenceLink

# Session.info key: (transaction, {event id: its CAP chain}) of the events inserted in that transaction.
_FRESH_CHAINS_KEY = "citywatch.cap_fresh_chains"


def _fresh_chains(session: Session) -> dict[int, list[EventCapMessage]]:
    transaction = session.get_transaction()
    held = session.info.get(_FRESH_CHAINS_KEY)
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info[_FRESH_CHAINS_KEY] = held
    chains: dict[int, list[EventCapMessage]] = held[1]
    return chains


def started_chain(*, session: Session, event: Event) -> None:
    """The event was just inserted (and flushed) in this transaction: its chain is empty, and no one else
    can add to it before commit, so its messages need neither the row lock nor a read of the chain."""
    _fresh_chains(session)[event.id] = []


def next_message(
    *,
    session: Session,
    event: Event,
    options: CapOptions,
    at: datetime,
    note: str | None = None,
    links: list[EvidenceLink] | None = None,
) -> CapMessage:
    """Render the event's next message as its state says (Alert, Update or Cancel) and store it;
    ``links`` are the event's evidence links when the caller has them already (read otherwise). The
    event must be flushed (it needs its id and uid): ``flows.publish``, the one caller, sees to it."""
    fresh = _fresh_chains(session).get(event.id)
    if fresh is not None:
        rows = list(fresh)
    else:
        # Several gateways (or API and ingest threads) may add to one event's chain at once: the event's
        # row lock makes the next sequence number theirs alone until commit (no-op on SQLite, one writer).
        # FOR NO KEY UPDATE, the lock an UPDATE takes: it lets others insert rows referencing the event.
        session.execute(select(Event.id).where(Event.id == event.id).with_for_update(key_share=True))
        rows = list(
            session.scalars(
                select(EventCapMessage)
                .where(EventCapMessage.event_id == event.id)
                .order_by(EventCapMessage.sequence)
            )
        )
    if links is None:
        links = event_links(session, event, base_url=options.web_base_url)
    history = CapHistory(
        tuple(
            (row.msg_type, CapReference(sender=row.sender, identifier=row.identifier, sent=row.sent))
            for row in rows
        )
    )
    change, references = history.next_message(state=event.state)
    device = session.get(Device, event.device_id)
    view = view_of(
        event,
        state=event.state,
        department=event.department,
        grid=device.grid if device else None,
        town=device.town if device else None,
        area_description=(device.description or None) if device else None,
        circle=_circle(device, options),
        resources=[_resource(link) for link in links],
    )
    sequence = rows[-1].sequence + 1 if rows else 0
    message = render_alert(
        view, change=change, sent=at, sequence=sequence, previous=references, note=note, options=options
    )
    row = EventCapMessage(
        event_id=event.id,
        sequence=sequence,
        identifier=message.identifier,
        sender=message.sender,
        sent=message.sent,
        msg_type=message.msg_type,
        headline=message.headline[:200],
        xml=message.xml.decode(),
    )
    session.add(row)
    if fresh is not None:
        fresh.append(row)
    return message


def _circle(device: Device | None, options: CapOptions) -> Circle | None:
    if device is None or device.latitude is None or device.longitude is None:
        return None
    return Circle(latitude=device.latitude, longitude=device.longitude, radius_km=options.circle_radius_km)


_KIND_WORDS = {
    "snapshot": "Snapshot",
    "clip": "Video clip",
    "still": "Annotated still",
    "photo": "Photo",
    "plate_crop": "Number plate crop",
}


def _resource(link: EvidenceLink) -> CapResource:
    """One piece of evidence as a CAP <resource>: the device's caption and time in the description,
    and size and SHA-1 digest once the gateway has the whole file (the snapshot's are not kept)."""
    description = _KIND_WORDS.get(link.kind, link.kind)
    if link.caption:
        description += f": {link.caption}"
    if link.taken_at is not None:
        description += f" (taken {cap_time(link.taken_at)})"
    return CapResource(
        description=description, mime_type=link.content_type, uri=link.url, size=link.size, digest=link.sha1
    )
