"""``GET /events/{event_id}/snapshot``: the evidence JPEG of an event.

The ingest stores each ``snapshot`` message as ``Settings.snapshot_dir/<snapshot_id>.jpg`` (idempotent:
a QoS 1 duplicate finds the file there); the event row carries the ``snapshot_id`` its device sent.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from gateway.api.deps import ServicesDep, SessionDep
from gateway.api.responses import content, not_found
from gateway.auth.deps import AnyCaller
from gateway.events import service
from gateway.events.views.events import EventId
from gateway.settings import Settings

router = APIRouter(prefix="/events", tags=["events"])
_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # as the protocol's SnapshotMessage.snapshot_id


def snapshot_path(settings: Settings, snapshot_id: str) -> Path:
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(f"snapshot id {snapshot_id!r} is not a valid id")
    return settings.snapshot_dir / f"{snapshot_id}.jpg"


@router.get(
    "/{event_id}/snapshot",
    response_class=FileResponse,
    summary="The event's evidence snapshot (JPEG)",
    responses=content("image/jpeg", "The JPEG the device sent with the event")
    | not_found("No such event, the event has no snapshot, or it has not arrived yet"),
)
def get_event_snapshot(
    event_id: EventId, _caller: AnyCaller, session: SessionDep, services: ServicesDep
) -> FileResponse:
    try:
        event = service.get(session=session, event_id=event_id)
    except service.EventNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not event.snapshot_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id} has no snapshot")
    try:
        path = snapshot_path(services.settings, event.snapshot_id)
    except ValueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not path.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"snapshot {event.snapshot_id} of event {event_id} has not arrived yet"
        )
    return FileResponse(path, media_type="image/jpeg", filename=f"event-{event_id}.jpg")
