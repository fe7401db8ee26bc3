"""/devices/{device_id}/telemetry: history of one field for charts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from citywatch.protocol.messages import NAME_PATTERN
from gateway.api.deps import EARLIEST, QueryTime, ServicesDep, SessionDep
from gateway.api.responses import unavailable
from gateway.auth.deps import AnyCaller
from gateway.db import utcnow
from gateway.devices import service as devices_service
from gateway.devices.views import NO_SUCH_DEVICE, DeviceId
from gateway.telemetry.base import Aggregation, TelemetryUnavailableError

router = APIRouter(tags=["telemetry"])
RETRY_AFTER_S = 10  # when the store's server did not say: long enough for a restart, short for a chart


class HistoryPoint(BaseModel):
    ts: datetime
    value: float


@router.get(
    "/devices/{device_id}/telemetry",
    response_model=list[HistoryPoint],
    summary="Samples of one field in [start, stop), aggregated per window when window_s is given",
    description="No samples when start is not before stop (an empty range).",
    responses=NO_SUCH_DEVICE
    | unavailable("The telemetry store (InfluxDB) cannot answer now; the detail says why"),
)
def telemetry_history(
    device_id: DeviceId,
    _caller: AnyCaller,
    session: SessionDep,
    services: ServicesDep,
    measurement: Annotated[str, Query(pattern=NAME_PATTERN, examples=["water_level"])],
    field: Annotated[str, Query(pattern=NAME_PATTERN, examples=["level_cm"])],
    start: Annotated[QueryTime | None, Query(description="Default: 24 h before stop")] = None,
    stop: Annotated[QueryTime | None, Query(description="Default: now")] = None,
    window_s: Annotated[
        float | None, Query(ge=0.001, le=366 * 86_400, description="Aggregation window")
    ] = None,
    aggregation: Aggregation = "mean",
) -> list[HistoryPoint]:
    if devices_service.get(session=session, device_id=device_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} is not provisioned")
    stop = stop or utcnow()
    start = start or max(EARLIEST, stop - timedelta(days=1))
    if start >= stop:
        return []
    try:
        rows = services.store.history(
            device_id=device_id,
            measurement=measurement,
            field=field,
            start=start,
            stop=stop,
            window=timedelta(seconds=window_s) if window_s else None,
            aggregation=aggregation,
        )
    except TelemetryUnavailableError as exc:
        retry_after_s = exc.retry_after_s if exc.retry_after_s is not None else RETRY_AFTER_S
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the telemetry store cannot answer now: {exc.reason}",
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        ) from None
    return [HistoryPoint(ts=row.ts, value=row.value) for row in rows]
