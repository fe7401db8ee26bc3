"""``GET /events/stream``: Server-Sent Events of every event change, for live screens.

Each audit line is one SSE message (``id`` = the audit id, so a reconnecting ``EventSource`` resumes
after ``Last-Event-ID``). The stream reads the append-only audit table, so changes made by the ingest,
the escalation loop and the API all appear, in commit order, without an in-process bus.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import ColumnElement, func, select
from sse_starlette.sse import EventSourceResponse

from gateway.api.deps import ServicesDep
from gateway.auth.deps import AnyCaller
from gateway.events.models import Event, EventAudit

router = APIRouter(prefix="/events", tags=["events"])
POLL_S = 0.25
BATCH = 200
LATE_WINDOW = 200  # ids below the cursor still looked at: changes committed after later ones


def _changes_after(services: Any, after: int) -> list[dict[str, Any]]:
    return _changes(services, EventAudit.id > after)


def _late_changes(services: Any, ids: Iterable[int]) -> list[dict[str, Any]]:
    """Those of ``ids`` committed by now: ids are taken when a transaction writes, rows are seen when it
    commits, so with several writers (gateways, threads) a lower id can appear after a higher one was
    streamed. The stream asks only for the ids it skipped (on SQLite, one writer: none)."""
    return _changes(services, EventAudit.id.in_(sorted(ids)))


def _changes(services: Any, condition: ColumnElement[bool]) -> list[dict[str, Any]]:
    with services.read_session_factory() as session:
        rows = session.execute(
            select(EventAudit, Event.state, Event.type, Event.device_id, Event.department)
            .join(Event, Event.id == EventAudit.event_id)
            .where(condition)
            .order_by(EventAudit.id)
            .limit(BATCH)
        )
        return [
            {
                "audit_id": audit.id,
                "event_id": audit.event_id,
                "action": audit.action,
                "actor": audit.actor,
                "from": audit.from_status,
                "to": audit.to_status,
                "note": audit.note,
                "at": audit.at.isoformat(),
                "state": state,
                "type": type_,
                "device_id": device_id,
                "department": department,
            }
            for audit, state, type_, device_id, department in rows
        ]


def _latest_id(services: Any) -> int:
    with services.read_session_factory() as session:
        return session.scalar(select(func.max(EventAudit.id))) or 0


@router.get(
    "/stream",
    summary="Live event changes (Server-Sent Events)",
    response_class=EventSourceResponse,
    # Endless by design: schema-driven clients (and fuzzers) would wait on it forever. Documented in the README.
    include_in_schema=False,
)
async def stream_events(
    request: Request,
    services: ServicesDep,
    _caller: AnyCaller,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="Send changes after this audit id (default: only new ones)"),
    ] = None,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventSourceResponse:
    if after is None and last_event_id is not None and last_event_id.isdigit():
        after = int(last_event_id)
    start = after if after is not None else await to_thread.run_sync(_latest_id, services)
    stopping: threading.Event | None = getattr(request.app.state, "stopping", None)

    async def changes() -> AsyncIterator[dict[str, str]]:
        cursor = start
        skipped: set[int] = set()  # ids within LATE_WINDOW below the cursor not seen yet: may still commit
        while not (stopping is not None and stopping.is_set()):
            batch = await to_thread.run_sync(_changes_after, services, cursor)
            if skipped:
                late = await to_thread.run_sync(_late_changes, services, skipped)
                skipped.difference_update(change["audit_id"] for change in late)
                batch = late + batch
            for change in batch:
                audit_id = change["audit_id"]
                if audit_id > cursor:
                    skipped.update(range(max(cursor + 1, audit_id - LATE_WINDOW), audit_id))
                    # The SSE id stays the highest streamed: a late change must not rewind Last-Event-ID.
                    cursor = audit_id
                yield {"id": str(cursor), "event": change["action"], "data": json.dumps(change)}
            skipped = {audit_id for audit_id in skipped if audit_id > cursor - LATE_WINDOW}
            if not batch:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_S)

    return EventSourceResponse(changes(), ping=15)
