"""The FastAPI application."""

from __future__ import annotations

import json
import threading

from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from citywatch import __version__
from gateway.api import health, metrics
from gateway.api.deps import Services, check_query_parameters
from gateway.api.responses import UNAUTHORIZED
from gateway.auth.deps import get_principal
from gateway.console.app import mount_console
from gateway.devices import command_views
from gateway.devices import views as devices_views
from gateway.events import views as events_views
from gateway.evidence import views as evidence_views
from gateway.telemetry import views as telemetry_views


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="citywatch gateway",
        version=__version__,
        description="Devices, events and their delivery to the dispatch centre.",
        # Secure by default: every API route needs a valid bearer token, whatever its own role check.
        dependencies=[Depends(get_principal), Depends(check_query_parameters)],
        responses=UNAUTHORIZED,
    )
    app.state.services = services
    app.state.stopping = threading.Event()  # set on shutdown: ends open SSE streams
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    app.include_router(health.router)
    app.include_router(metrics.router)  # plain text, not in the schema; a token like /health
    app.add_route(health.LIVENESS_PATH, health.liveness, include_in_schema=False)  # public, no token
    app.include_router(devices_views.router)
    app.include_router(command_views.router)
    app.include_router(events_views.router)
    app.include_router(evidence_views.router)
    app.include_router(telemetry_views.router)
    mount_console(app)  # browsers: login at /, pages under /console, outside the OpenAPI schema
    return app


async def _method_not_allowed(request: Request, _exc: Exception) -> Response:
    """405 whose ``Allow`` names every method of the path: Starlette's names only those of the first
    route that matched the path (``GET /devices``, not also ``POST /devices``)."""
    allowed = sorted(
        {
            method
            for route in iter_route_contexts(request.app.routes)  # included routers' routes too
            if route.methods and route.matches(request.scope)[0] is not Match.NONE
            for method in route.methods
        }
    )
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )


async def _validation_error(_request: Request, exc: Exception) -> Response:
    """FastAPI's own 422, but ASCII-escaped: echoing a lone surrogate from the input must not become a 500."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")
