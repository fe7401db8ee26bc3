"""The next CAP message of a stored event: its place in the chain, its area from the device registry.

Every message is kept (``event_cap_messages``): the feed serves them, and later messages reference them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cap.models import CapHistory, CapMessage, CapOptions, CapReference, Circle, view_of
from gateway.cap.render import render_alert
from gateway.devices.models import Device
from gateway.events.models import Event, EventCapMessage


def next_message(
    *, session: Session, event: Event, options: CapOptions, at: datetime, note: str | None = None
) -> CapMessage:
    """Render the event's next message as its state says (Alert, Update or Cancel) and store it."""
    session.flush()  # the event needs its id and uid
    rows = list(
        session.scalars(
            select(EventCapMessage)
            .where(EventCapMessage.event_id == event.id)
            .order_by(EventCapMessage.sequence)
        )
    )
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
    )
    sequence = rows[-1].sequence + 1 if rows else 0
    message = render_alert(
        view, change=change, sent=at, sequence=sequence, previous=references, note=note, options=options
    )
    session.add(
        EventCapMessage(
            event_id=event.id,
            sequence=sequence,
            identifier=message.identifier,
            sender=message.sender,
            sent=message.sent,
            msg_type=message.msg_type,
            headline=message.headline[:200],
            xml=message.xml.decode(),
        )
    )
    return message


def _circle(device: Device | None, options: CapOptions) -> Circle | None:
    if device is None or device.latitude is None or device.longitude is None:
        return None
    return Circle(latitude=device.latitude, longitude=device.longitude, radius_km=options.circle_radius_km)
