"""What routes depend on, as ``Annotated`` aliases."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import ISO_8601_PATTERN
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
    # What /metrics shows (gateway/api/metrics.py); None: built from the above at each scrape.
    metrics: CollectorRegistry | None = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def check_query_parameters(request: Request) -> None:
    """422 for a query parameter the route does not take, or given twice where it takes one value: a
    misspelt filter (``?devce=...``) would be ignored, a repeated one (``?site=a&site=b``) would count
    once, and either would answer as if asked something else."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    takes_many = dict(_query_parameters(route.dependant))
    errors: list[dict[str, Any]] = []
    for name in dict.fromkeys(request.query_params):  # each name once, in order
        values = request.query_params.getlist(name)
        if name not in takes_many:
            takes = ", ".join(sorted(takes_many)) or "none"
            message = f"unknown query parameter; this route takes: {takes}"
            errors.append(
                {"type": "extra_forbidden", "loc": ("query", name), "msg": message, "input": values[0]}
            )
        elif len(values) > 1 and not takes_many[name]:
            message = f"given {len(values)} times; it takes one value"
            errors.append(
                {"type": "too_many_values", "loc": ("query", name), "msg": message, "input": values}
            )
    if errors:
        raise RequestValidationError(errors)


def _query_parameters(dependant: Dependant) -> Iterator[tuple[str, bool]]:
    """(name, whether it takes a list) of every query parameter of a route and its dependencies."""
    for parameter in dependant.query_params:
        yield parameter.alias, _is_list(parameter.field_info.annotation)
    for dependency in dependant.dependencies:
        yield from _query_parameters(dependency)


def _is_list(annotation: object) -> bool:
    if get_origin(annotation) in (Union, UnionType):  # Optional[list[str]]
        return any(_is_list(member) for member in get_args(annotation))
    return get_origin(annotation) in (list, set, tuple, frozenset)


def get_session(request: Request, services: ServicesDep) -> Iterator[Session]:
    """Read-only requests get a session that never takes the SQLite write lock."""
    reading = request.method in ("GET", "HEAD")
    with (services.read_session_factory if reading else services.session_factory)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _storable(value: datetime) -> datetime:
    """A bound outside what every database and store can hold means "from the start" or "until the end":
    nothing is stored out there, so the bound is moved in rather than refused."""
    return max(EARLIEST, min(value, LATEST))


def _spelled(value: object) -> object:
    """pydantic alone would also take epoch numbers ("0.5") and other spellings the schema does not allow."""
    if isinstance(value, str) and not re.match(ISO_8601_PATTERN, value):
        raise ValueError("a time is ISO 8601 with seconds and a UTC offset, e.g. 2026-06-01T12:00:00Z")
    return value


# A time in the query string, as the protocol spells it; any such time is taken (see _storable).
QueryTime = Annotated[
    AwareDatetime,
    BeforeValidator(_spelled),
    AfterValidator(_storable),
    Field(title="Time", json_schema_extra={"pattern": ISO_8601_PATTERN}),
]
