"""CAP 1.2 for readers: ``GET /cap/feed`` (Atom of the latest alerts), ``GET /cap/alerts/{identifier}``
(one stored message, the feed's links) and ``GET /events/{id}/cap`` (an event's latest message).

Links and ids are built from CITYWATCH_PUBLIC_URL, never from the request: behind a proxy the gateway
does not know the address receivers use, and an Atom id must not change with it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from sqlalchemy import select

from gateway.api.deps import ServicesDep, SessionDep
from gateway.api.responses import content, not_found
from gateway.auth.deps import AnyCaller
from gateway.cap import CAP_MEDIA_TYPE, CapMessage, render_feed
from gateway.db import utcnow
from gateway.events.models import EventCapMessage

router = APIRouter(tags=["cap"])
ATOM_MEDIA_TYPE = "application/atom+xml"
# CAP 1.2's rule for identifiers (no whitespace, ',', '&' or '<'), with whitespace and control characters
# spelled out: "\s" differs between the server's regex engine and the JavaScript one of the schema.
IDENTIFIER_PATTERN = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff,&<]+$"


def _message(row: EventCapMessage) -> CapMessage:
    return CapMessage(
        identifier=row.identifier,
        sender=row.sender,
        sent=row.sent,
        msg_type=row.msg_type,
        headline=row.headline,
        xml=row.xml.encode(),
    )


@router.get(
    "/cap/feed",
    summary="Atom feed of the latest CAP 1.2 alerts, each linked to its document",
    response_class=Response,
    responses=content(ATOM_MEDIA_TYPE),
)
def cap_feed(
    _caller: AnyCaller,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    rows = session.scalars(select(EventCapMessage).order_by(EventCapMessage.id.desc()).limit(limit))
    body = render_feed(
        [_message(row) for row in rows], base_url=services.settings.public_url, updated=utcnow()
    )
    return Response(body, media_type=ATOM_MEDIA_TYPE)


@router.get(
    "/cap/alerts/{identifier}",
    summary="One CAP 1.2 message, by its <identifier>",
    response_class=Response,
    responses=content(CAP_MEDIA_TYPE) | not_found("No such message"),
)
def cap_alert(
    identifier: Annotated[str, Path(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)],
    _caller: AnyCaller,
    session: SessionDep,
) -> Response:
    row = session.scalars(select(EventCapMessage).where(EventCapMessage.identifier == identifier)).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no CAP message has this identifier")
    return Response(row.xml, media_type=CAP_MEDIA_TYPE)


@router.get(
    "/events/{event_id}/cap",
    summary="The event's latest CAP 1.2 message",
    response_class=Response,
    responses=content(CAP_MEDIA_TYPE) | not_found("No such event, or no CAP message for it"),
)
def event_cap(
    event_id: Annotated[int, Path(ge=1, le=2**31 - 1)], _caller: AnyCaller, session: SessionDep
) -> Response:
    row = session.scalars(
        select(EventCapMessage)
        .where(EventCapMessage.event_id == event_id)
        .order_by(EventCapMessage.sequence.desc())
        .limit(1)
    ).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id} does not exist")
    return Response(row.xml, media_type=CAP_MEDIA_TYPE)
