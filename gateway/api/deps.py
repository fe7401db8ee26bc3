"""What routes depend on, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker

from gateway.devices.service import DeviceDirectory
from gateway.ingest.refusals import ClockOff, Refusal
from gateway.settings import Settings
from gateway.telemetry.base import TelemetryStore


@dataclass
class Services:
    """Shared by the API, the ingest and the dispatch worker of one gateway process."""

    settings: Settings
    session_factory: sessionmaker[Session]
    read_session_factory: sessionmaker[Session]
    store: TelemetryStore
    directory: DeviceDirectory
    ingest_status: Callable[[], dict[str, Any]] = field(default=lambda: {"connected": False})
    dispatch_status: Callable[[], dict[str, Any]] = field(default=lambda: {})
    # (topic, payload, retain) -> False when not connected to the broker (nothing sent): cmd and config.
    publish_to_device: Callable[[str, bytes, bool], bool] = field(
        default=lambda _topic, _payload, _retain: False
    )
    # The ingest's refusals: a device's last ones (newest first), and the devices whose clocks are off.
    recent_refusals: Callable[[str], list[Refusal]] = field(default=lambda _device_id: [])
    clocks_off: Callable[[], list[ClockOff]] = field(default=list)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(request: Request, services: ServicesDep) -> Iterator[Session]:
    """Read-only requests get a session that never takes the SQLite write lock."""
    reading = request.method in ("GET", "HEAD")
    with (services.read_session_factory if reading else services.session_factory)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def check_time(name: str, value: datetime | None) -> datetime | None:
    """A query-string time must carry an offset and be within a range every database can store."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} needs a UTC offset, e.g. ...T08:00Z"
        )
    if not EARLIEST <= value <= LATEST:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} must be between 1970 and 9999")
    return value
