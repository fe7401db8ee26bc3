"""``GET /events/{event_id}/evidence`` (what the event has, with links) and
``GET /events/{event_id}/evidence/{evidence_id}`` (the bytes).

Any role may read them, as the snapshot. The bytes come with their content type, ``ETag`` = the item's
SHA-256 (``If-None-Match`` answers 304) and byte ranges (``Range``: 206, as Starlette's FileResponse
serves them), so a browser can seek in a clip.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from citywatch.protocol.messages import EVIDENCE_ID_PATTERN
from gateway.api.deps import ServicesDep, SessionDep
from gateway.api.responses import Responses, not_found
from gateway.auth.deps import AnyCaller
from gateway.events import service as events_service
from gateway.events.models import Event
from gateway.events.views.events import EventId
from gateway.evidence import links
from gateway.evidence.files import EvidenceFiles
from gateway.evidence.models import EvidenceList

router = APIRouter(prefix="/events", tags=["evidence"])
EvidenceId = Annotated[str, Path(pattern=EVIDENCE_ID_PATTERN, description="The device's evidence id")]
MEDIA_TYPES = ("video/mp4", "image/jpeg")
_BYTES: Responses = {
    200: {"content": {media: {} for media in MEDIA_TYPES}, "description": "The whole item"},
    206: {
        "content": {media: {} for media in (*MEDIA_TYPES, "multipart/byteranges")},
        "description": "The byte range(s) the Range header asked for",
    },
    304: {"description": "If-None-Match named the item's ETag (its SHA-256): unchanged"},
    416: {"content": {"text/plain": {}}, "description": "The Range header asked for bytes beyond the item"},
}


def _event(session: Session, event_id: int) -> Event:
    try:
        return events_service.get(session=session, event_id=event_id)
    except events_service.EventNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get(
    "/{event_id}/evidence",
    response_model=EvidenceList,
    summary="The event's evidence: its snapshot and every complete item, with links; items still arriving",
    responses=not_found("No such event"),
)
def list_evidence(
    event_id: EventId, _caller: AnyCaller, session: SessionDep, services: ServicesDep
) -> EvidenceList:
    event = _event(session, event_id)
    return EvidenceList(
        event_id=event.id,
        items=links.event_links(session, event, base_url=services.settings.public_url),
        pending=links.pending_of(session, event),
    )


@router.get(
    "/{event_id}/evidence/{evidence_id}",
    response_class=FileResponse,
    summary="One evidence item's bytes (ETag: its SHA-256; Range supported)",
    responses=_BYTES | not_found("No such event, or the event has no complete item of this id"),
)
def get_evidence(
    event_id: EventId,
    evidence_id: EvidenceId,
    _caller: AnyCaller,
    session: SessionDep,
    services: ServicesDep,
    request: Request,
) -> Response:
    event = _event(session, event_id)
    item = links.find(session, event, evidence_id)
    if item is None or item.file_name is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"event {event_id} has no complete evidence item {evidence_id}"
        )
    path = EvidenceFiles(services.settings.evidence_dir).path(item.file_name)
    if not path.is_file():  # the row says complete: the file went missing under the gateway
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the file of evidence {evidence_id} is missing")
    etag = f'"{item.sha256}"'
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"etag": etag})
    return FileResponse(
        path,
        media_type=item.content_type,
        headers={"etag": etag, "cache-control": "private, max-age=86400"},
        filename=f"event-{event_id}-{item.evidence_id}.{path.suffix.lstrip('.')}",
        content_disposition_type="inline",
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
