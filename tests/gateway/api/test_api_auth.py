"""Access control on the whole API: every route (also ones added later) needs a token; roles decide the rest.

The app runs in-process on a migrated SQLite database (MQTT never started): what is checked here is
the auth layer in front of the handlers, identical in a running gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from gateway.api.app import create_app
from gateway.api.deps import SessionDep
from gateway.api.health import LIVENESS_PATH
from gateway.auth.deps import AnyCaller
from gateway.auth.roles import TOKEN_ROLES, Role
from gateway.auth.service import authenticate, revoke_token
from gateway.console.web import LOGIN_PATH as CONSOLE_LOGIN
from gateway.console.web import PREFIX as CONSOLE_PREFIX
from gateway.runner import GatewayApp
from tests.gateway.helpers import api_only_gateway
from tests.gateway.tokens import bearer, issue_token

# Public on purpose: the API description and a liveness probe that tells nothing.
PUBLIC_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", LIVENESS_PATH}
EVERYONE = frozenset(TOKEN_ROLES)
INSTALLERS = frozenset({Role.ADMIN, Role.INSTALLER})
DISPATCHERS = frozenset({Role.ADMIN, Role.DISPATCHER})

# The policy of the routes this brief owns; routes added elsewhere are covered by the generic tests.
ROLE_MATRIX: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/health"): EVERYONE,
    ("GET", "/devices"): EVERYONE,
    ("GET", "/devices/{device_id}"): EVERYONE,
    ("GET", "/devices/{device_id}/telemetry"): EVERYONE,
    ("POST", "/devices"): INSTALLERS,
    ("PATCH", "/devices/{device_id}"): INSTALLERS,
    ("GET", "/events"): EVERYONE,
    ("GET", "/events/{event_id}"): EVERYONE,
    ("GET", "/events/{event_id}/snapshot"): EVERYONE,
    ("POST", "/events/{event_id}/acknowledge"): DISPATCHERS,
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayApp]:
    with api_only_gateway(tmp_path, devices=("culvert-1",)) as gateway:
        yield gateway


@pytest.fixture
def app(gateway: GatewayApp) -> FastAPI:
    return create_app(gateway.services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every API operation; fails on a kind of route it cannot judge."""
    operations: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):  # included routers flattened, prefixes applied
        if isinstance(route.original_route, APIRoute) and route.path and route.methods:
            operations += [(method, route.path) for method in sorted(route.methods)]
        elif isinstance(route.original_route, Route) and route.path in PUBLIC_PATHS:
            continue
        elif (isinstance(route.original_route, Route) and route.path == CONSOLE_LOGIN) or (
            isinstance(route.original_route, Mount) and route.path == CONSOLE_PREFIX
        ):
            continue  # the console: browsers with a session cookie, not tokens (tests/gateway/console)
        else:
            pytest.fail(f"route {route.path!r} ({route.original_route!r}) is neither an API route nor public")
    return operations


def test_every_route_answers_401_without_a_valid_token(
    gateway: GatewayApp, app: FastAPI, client: TestClient
) -> None:
    revoked = issue_token(gateway, Role.ADMIN, name="left-the-team")
    with gateway.session_factory() as session, session.begin():
        principal = authenticate(session, token=revoked)
        assert principal is not None
        revoke_token(session, token_id=principal.token_id)
    presented: dict[str, dict[str, str]] = {
        "no header": {},
        "not a bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "unknown token": bearer("cw_" + "x" * 43),
        "not ours": bearer("ghp_" + "x" * 36),
        "revoked token": bearer(revoked),
    }
    operations = _operations(app)
    assert len(operations) >= len(ROLE_MATRIX)
    for method, path in operations:
        for case, headers in presented.items():
            response = client.request(method, _concrete(path), headers=headers)
            assert response.status_code == 401, f"{method} {path} with {case}: {response.status_code}"
            assert response.headers["www-authenticate"].startswith("Bearer"), (method, path, case)


def test_public_pages_need_no_token(client: TestClient) -> None:
    assert client.get(LIVENESS_PATH).json() == {"status": "alive"}
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("role", sorted(TOKEN_ROLES))
def test_role_matrix(gateway: GatewayApp, app: FastAPI, client: TestClient, role: Role) -> None:
    headers = bearer(issue_token(gateway, role))
    present = set(_operations(app))
    assert {("GET", "/devices"), ("POST", "/devices"), ("GET", "/health")} <= present
    for (method, path), allowed in ROLE_MATRIX.items():
        if (method, path) not in present:
            continue  # replaced by another part of the gateway; its own tests cover it
        response = client.request(method, _concrete(path), headers=headers)
        if role in allowed:
            assert response.status_code not in (401, 403), f"{role} {method} {path}: {response.text}"
        else:
            assert response.status_code == 403, f"{role} {method} {path}: {response.status_code}"
            assert f"role '{role}' may not do this" in response.json()["detail"]


def test_viewers_change_nothing_anywhere(gateway: GatewayApp, app: FastAPI, client: TestClient) -> None:
    """Every route that is not a read refuses a viewer, including routes added after this test."""
    headers = bearer(issue_token(gateway, Role.VIEWER))
    writes = [(m, p) for m, p in _operations(app) if m not in ("GET", "HEAD")]
    assert writes
    for method, path in writes:
        response = client.request(method, _concrete(path), headers=headers)
        assert response.status_code == 403, f"viewer {method} {path}: {response.status_code}"


def test_installer_provisions_and_moves_a_device(gateway: GatewayApp, client: TestClient) -> None:
    installer = bearer(issue_token(gateway, Role.INSTALLER))
    created = client.post(
        "/devices", headers=installer, json={"id": "lift-3", "site": "tower-a", "device_type": "elevator"}
    )
    assert created.status_code == 201, created.text
    assert gateway.directory.lookup("lift-3").site == "tower-a"  # type: ignore[union-attr]  # now cached
    moved = client.patch(
        "/devices/lift-3", headers=installer, json={"site": "tower-b", "grid": "g-2", "town": "east"}
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["site"], moved.json()["grid"], moved.json()["town"]) == ("tower-b", "g-2", "east")
    assert gateway.directory.lookup("lift-3").site == "tower-b"  # type: ignore[union-attr]  # not stale
    kept = client.patch("/devices/lift-3", headers=installer, json={"description": "lift 3, north core"})
    assert kept.json()["grid"] == "g-2" and kept.json()["description"] == "lift 3, north core"
    assert client.patch("/devices/lift-3", headers=installer, json={"site": None}).status_code == 422
    assert client.patch("/devices/lift-3", headers=installer, json={"colour": "red"}).status_code == 422
    missing = client.patch("/devices/nope", headers=installer, json={"grid": "g-1"})
    assert missing.status_code == 404 and "not provisioned" in missing.json()["detail"]


def test_authentication_leaves_no_transaction_open(
    gateway: GatewayApp, app: FastAPI, client: TestClient
) -> None:
    """A long request (an event stream) must not pin a connection or a snapshot just for the token check."""

    @app.get("/probe")
    def probe(_caller: AnyCaller, session: SessionDep) -> dict[str, bool]:
        return {"in_transaction": session.in_transaction()}

    response = client.get("/probe", headers=bearer(issue_token(gateway, Role.VIEWER)))
    assert response.json() == {"in_transaction": False}
