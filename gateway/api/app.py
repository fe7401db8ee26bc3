"""The FastAPI application."""

from __future__ import annotations

import json
import threading

from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

from citywatch import __version__
from gateway.api import health
from gateway.api.deps import Services
from gateway.auth.deps import get_principal
from gateway.devices import command_views
from gateway.devices import views as devices_views
from gateway.events import views as events_views
from gateway.telemetry import views as telemetry_views


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="citywatch gateway",
        version=__version__,
        description="Devices, events and their delivery to the dispatch centre.",
        # Secure by default: every API route needs a valid bearer token, whatever its own role check.
        dependencies=[Depends(get_principal)],
    )
    app.state.services = services
    app.state.stopping = threading.Event()  # set on shutdown: ends open SSE streams
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(health.router)
    app.add_route(health.LIVENESS_PATH, health.liveness, include_in_schema=False)  # public, no token
    app.include_router(devices_views.router)
    app.include_router(command_views.router)
    app.include_router(events_views.router)
    app.include_router(telemetry_views.router)
    return app


async def _validation_error(_request: Request, exc: Exception) -> Response:
    """FastAPI's own 422, but ASCII-escaped: echoing a lone surrogate from the input must not become a 500."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")
