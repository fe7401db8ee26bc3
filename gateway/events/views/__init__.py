"""Every route of the events domain; the API app includes ``router`` and nothing else of events."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.events.views import cap, events, snapshots, stream

router = APIRouter()
router.include_router(stream.router)  # first: /events/{event_id} would take "stream" for an event id
router.include_router(events.router)
router.include_router(cap.router)
router.include_router(snapshots.router)
