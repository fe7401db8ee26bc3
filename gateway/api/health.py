"""/health: is the gateway able to do its job, and what has it refused.

``/health`` needs a token (any role): it names endpoints, devices and refusal reasons, never a
credential (URLs and errors go through ``gateway.redaction``). ``status`` is ``degraded`` when any of
its named ``checks`` fails: database reads or writes, MQTT, the broker session, the ingest backlog,
undelivered notifications, the telemetry store. HTTP 503 when the database cannot be used.
``/health/live`` is public and says only that the process answers, for load balancers and probes.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.api.deps import ServicesDep, SessionDep
from gateway.auth.deps import AnyCaller
from gateway.db import utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.dispatch import service as dispatch_service
from gateway.events import service as events_service
from gateway.redaction import redact_text
from gateway.settings import Settings
from gateway.telemetry.base import StoreStatus

router = APIRouter(tags=["health"])
LIVENESS_PATH = "/health/live"


async def liveness(_request: Request) -> JSONResponse:
    """Public: the API answers. Nothing about devices, database or endpoints."""
    return JSONResponse({"status": "alive"})


@router.get(
    "/health",
    summary="Whether the gateway can do its job (named checks), with database, MQTT, ingest, telemetry "
    "store and dispatch status and counts",
    responses={503: {"description": "The database cannot be used: the same report, status degraded"}},
)
def health(
    _caller: AnyCaller, session: SessionDep, services: ServicesDep, response: Response
) -> dict[str, Any]:
    try:
        session.execute(text("SELECT 1"))
        read_error = None
    except Exception as exc:  # report, don't raise: health must answer when the database is down
        read_error = redact_text(repr(exc))[:300]
    counts: dict[str, Any] = {}
    presence: dict[str, int] = {}
    if read_error is None:
        silent_after = timedelta(seconds=services.settings.DEVICE_OFFLINE_AFTER_S)
        counted = devices_service.presence_counts(session=session, silent_after=silent_after, now=utcnow())
        presence = {state: count for state, count in counted.items() if count}
        counts = {
            "devices": sum(presence.values()),
            "events": events_service.count(session=session),
            "outbox": dispatch_service.counts_by_status(session=session),
            "telemetry": _telemetry_count(services),
        }
    ingest = services.ingest_status()
    dispatch = services.dispatch_status()
    store = services.store.status()
    writes = ingest.get("writes", {"ok": True})
    database = database_check(read_error=read_error, writes=writes)
    checks = [
        database,
        mqtt_check(ingest),
        broker_session_check(ingest),
        ingest_check(ingest, settings=services.settings),
        dispatch_check(dispatch, settings=services.settings, now=utcnow()),
        telemetry_store_check(store),
    ]
    if not database.ok:  # the gateway can store nothing: take it out of a load balancer
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {
        "status": "ok" if all(check.ok for check in checks) else "degraded",
        "checks": [check.model_dump() for check in checks],
        "db": {"ok": database.ok, "error": None if database.ok else database.detail, "writes": writes},
        "mqtt": ingest,
        "ingest": {
            key: ingest[key]
            for key in ("received", "batches", "telemetry_written", "retries", "queue_depth", "refused_total")
            if key in ingest
        },
        "telemetry_store": asdict(store),
        "devices": dict(presence),
        "dispatch": dispatch,
        "counts": counts,
        "refused": ingest.get("refused", {}),
        "device_clocks": device_clocks(services, session, db_ok=read_error is None),
        "device_types": device_types(session) if read_error is None else None,
    }


class HealthCheck(BaseModel):
    """One thing the gateway needs to do its job, and whether it has it; ``status`` is ``ok`` only
    when every check passes. A new check is one more function returning this, listed in ``health``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(title="Check", description="What is checked.", examples=["database"])
    ok: bool = Field(title="Passing")
    detail: str = Field(title="Finding", description="Why it fails, or what was found when it passes.")


def database_check(*, read_error: str | None, writes: dict[str, Any]) -> HealthCheck:
    """Reads (``SELECT 1``) and the ingest's writes: a full disk or a read-only file fails only writes."""
    if read_error is not None:
        return HealthCheck(name="database", ok=False, detail=f"cannot read: {read_error}")
    if not writes.get("ok", True):
        return HealthCheck(
            name="database",
            ok=False,
            detail=f"writes fail since {writes.get('failing_since')} ({writes.get('failures')} attempts; "
            f"what was received waits, unacknowledged): {writes.get('last_error')}",
        )
    return HealthCheck(name="database", ok=True, detail="reads and writes work")


def mqtt_check(ingest: dict[str, Any]) -> HealthCheck:
    url = ingest.get("url", "the broker")
    if ingest.get("connected"):
        return HealthCheck(name="mqtt", ok=True, detail=f"connected to {url}")
    cause = ingest.get("last_disconnect") or "not connected yet"
    return HealthCheck(name="mqtt", ok=False, detail=f"not connected to {url}: {cause}")


def broker_session_check(ingest: dict[str, Any]) -> HealthCheck:
    if broker_session_ok(ingest):
        return HealthCheck(name="broker_session", ok=True, detail="the broker kept the gateway's session")
    session = ingest.get("session", {})
    return HealthCheck(
        name="broker_session",
        ok=False,
        detail=f"the broker came back without the gateway's session at {session.get('lost_at')}: messages "
        "published before the reconnect reached nobody (devices that wait for receipts send them again)",
    )


def ingest_check(ingest: dict[str, Any], *, settings: Settings) -> HealthCheck:
    """The writer runs and keeps up: a bounded backlog, no batch held for long."""
    depth, storing_for_s = ingest.get("queue_depth", 0), ingest.get("storing_for_s", 0.0)
    problems = []
    if not ingest.get("writer_alive", True):
        problems.append("the writer thread has stopped (see the log); nothing is stored")
    if depth >= settings.HEALTH_INGEST_QUEUE_MAX:
        problems.append(f"{depth} messages wait for the writer (CITYWATCH_HEALTH_INGEST_QUEUE_MAX)")
    if storing_for_s >= settings.HEALTH_INGEST_STALLED_S:
        problems.append(
            f"one batch has not been stored for {storing_for_s:.0f} s (CITYWATCH_HEALTH_INGEST_STALLED_S)"
        )
    if problems:
        return HealthCheck(name="ingest", ok=False, detail="; ".join(problems))
    return HealthCheck(name="ingest", ok=True, detail=f"{depth} messages waiting for the writer")


def dispatch_check(dispatch: dict[str, Any], *, settings: Settings, now: datetime) -> HealthCheck:
    """No notification waits longer than the bound for an endpoint that should take it (one the
    routing table no longer names does not count)."""
    bound = timedelta(seconds=settings.HEALTH_DISPATCH_PENDING_MAX_S)
    late = []
    for endpoint in dispatch.get("endpoints", []):
        oldest = endpoint.get("oldest_pending_at")
        if not endpoint.get("configured", True) or oldest is None:
            continue
        waited = now - datetime.fromisoformat(oldest)
        if waited > bound:
            why = "" if endpoint.get("enabled") else f", disabled: {endpoint.get('disabled_reason')}"
            late.append(
                f"{endpoint['name']}: {endpoint.get('pending')} waiting, the oldest for "
                f"{waited.total_seconds():.0f} s{why}"
            )
    if late:
        last_error = dispatch.get("last_error")
        return HealthCheck(
            name="dispatch",
            ok=False,
            detail="; ".join(late) + (f" (last error: {last_error})" if last_error else ""),
        )
    return HealthCheck(
        name="dispatch", ok=True, detail=f"no notification waits longer than {bound.total_seconds():.0f} s"
    )


def telemetry_store_check(store: StoreStatus) -> HealthCheck:
    if store.ok:
        return HealthCheck(name="telemetry_store", ok=True, detail=f"{store.kind} takes and serves telemetry")
    return HealthCheck(name="telemetry_store", ok=False, detail=store.error or f"{store.kind} is not usable")


def broker_session_ok(ingest: dict[str, Any]) -> bool:
    """False for a while after the broker came back without the gateway's session (``mqtt.session``):
    devices published to nobody meanwhile, and only those that wait for receipts send it again."""
    return not ingest.get("session", {}).get("degraded", False)


def _telemetry_count(services: ServicesDep) -> int | None:
    """Points stored, from the embedded store only: on InfluxDB it is a full-bucket query (and fails
    while the server is away); ``ingest.telemetry_written`` counts what this process wrote."""
    if services.settings.TELEMETRY_STORE != "sqlite":
        return None
    return services.store.count()


def device_clocks(services: ServicesDep, session: SessionDep, *, db_ok: bool) -> dict[str, Any]:
    """Registered devices whose last message was refused for its time (reason ``clock``): each stays
    listed until a message with a timestamp close to the gateway's arrives from it. A device problem,
    not the gateway's: it does not make the status degraded."""
    off = services.clocks_off()
    if off and db_ok:
        registered = set(session.scalars(select(Device.id).where(Device.id.in_([o.device_id for o in off]))))
        off = [o for o in off if o.device_id in registered]
    return {
        "max_ahead_s": services.settings.CLOCK_SKEW_S,
        "off": [
            {"device_id": o.device_id, "offset_s": round(o.offset_s, 1), "detail": o.detail, "at": o.at}
            for o in off
        ],
    }


def device_types(session: SessionDep) -> dict[str, Any]:
    """Registered devices whose last birth named another device type than the registry: the registry or
    the unit is wrong (an installer's mistake). A device problem: it does not make the status degraded."""
    mismatched = session.scalars(
        select(Device)
        .where(Device.reported_device_type.is_not(None), Device.reported_device_type != Device.device_type)
        .order_by(Device.id)
    )
    return {
        "mismatch": [
            {"device_id": d.id, "registered": d.device_type, "reported": d.reported_device_type}
            for d in mismatched
        ]
    }
