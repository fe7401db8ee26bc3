"""/health: is the gateway able to do its job, and what has it refused.

``/health`` needs a token (any role): it names endpoints, devices and refusal reasons.
``/health/live`` is public and says only that the process answers, for load balancers and probes.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy import select, text
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.api.deps import ServicesDep, SessionDep
from gateway.auth.deps import AnyCaller
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.dispatch import service as dispatch_service
from gateway.events import service as events_service

router = APIRouter(tags=["health"])
LIVENESS_PATH = "/health/live"


async def liveness(_request: Request) -> JSONResponse:
    """Public: the API answers. Nothing about devices, database or endpoints."""
    return JSONResponse({"status": "alive"})


@router.get("/health", summary="Database, MQTT, ingest, telemetry store and dispatch status with counts")
def health(
    _caller: AnyCaller, session: SessionDep, services: ServicesDep, response: Response
) -> dict[str, Any]:
    try:
        session.execute(text("SELECT 1"))
        db_ok, db_error = True, None
    except Exception as exc:  # report, don't raise: health must answer when the database is down
        db_ok, db_error = False, repr(exc)[:300]
    counts: dict[str, Any] = {}
    presence: Counter[str] = Counter()
    if db_ok:
        silent_after = timedelta(seconds=services.settings.DEVICE_OFFLINE_AFTER_S)
        for device in session.scalars(select(Device)):
            presence[devices_service.presence(device, silent_after=silent_after)] += 1
        counts = {
            "devices": presence.total(),
            "events": events_service.count(session=session),
            "outbox": dispatch_service.counts_by_status(session=session),
            "telemetry": _telemetry_count(services),
        }
    ingest = services.ingest_status()
    if not db_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {
        "status": "ok" if db_ok and ingest.get("connected") and ingest.get("writer_alive") else "degraded",
        "db": {"ok": db_ok, "error": db_error},
        "mqtt": ingest,
        "ingest": {
            key: ingest[key]
            for key in ("received", "batches", "telemetry_written", "retries", "queue_depth", "refused_total")
            if key in ingest
        },
        "telemetry_store": _store_status(services),
        "devices": dict(presence),
        "dispatch": services.dispatch_status(),
        "counts": counts,
        "refused": ingest.get("refused", {}),
    }


def _telemetry_count(services: ServicesDep) -> int | None:
    """Points stored, from the embedded store only: on InfluxDB it is a full-bucket query (and fails
    while the server is away); ``ingest.telemetry_written`` counts what this process wrote."""
    if services.settings.TELEMETRY_STORE != "sqlite":
        return None
    return services.store.count()


def _store_status(services: ServicesDep) -> dict[str, Any]:
    store = services.store

    def reading(name: str) -> int:  # only the InfluxDB store has an on-disk spill
        method = getattr(store, name, None)
        return int(method()) if callable(method) else 0

    return {
        "kind": services.settings.TELEMETRY_STORE,
        "spilling": bool(getattr(store, "spilling", False)),
        "spilled_points": reading("spilled_points"),
        "spilled_bytes": reading("spilled_bytes"),
        "dropped_points_spill_full": reading("dropped_points"),
    }
