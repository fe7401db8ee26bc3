"""Bearer tokens: hashed at rest, revocable; 401 without / with a bad token, 403 for the wrong role.

Runs against a real SQLite file and, where it answers, the PostgreSQL server (in a private schema).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.api.deps import get_session
from gateway.auth.deps import (
    AdminCaller,
    AnyCaller,
    CallbackCaller,
    DispatcherCaller,
    InstallerCaller,
    require_role,
)
from gateway.auth.models import ApiToken
from gateway.auth.roles import TOKEN_ROLES, Role
from gateway.auth.service import (
    TokenNotFound,
    authenticate,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from gateway.db import make_engine, make_sessionmaker
from gateway.events.lifecycle.models import Actor

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_engine(schema: str) -> Engine:
    engine = make_engine(
        POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}", "connect_timeout": 3}
    )
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'auth.db'}")
        ApiToken.__table__.create(engine)  # type: ignore[attr-defined]
        yield make_sessionmaker(engine)
        engine.dispose()
        return
    schema = f"auth_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # the server is optional on a laptop
        admin.dispose()
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {error.__class__.__name__}")
    engine = _postgres_engine(schema)
    try:
        ApiToken.__table__.create(engine)  # type: ignore[attr-defined]
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _issue(sessions: sessionmaker[Session], name: str, role: Role) -> str:
    with sessions() as session:
        issued = create_token(session, name=name, role=role)
        session.commit()
    return issued.token


def test_token_is_stored_only_as_its_hash(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        issued = create_token(session, name="li.na", role=Role.DISPATCHER)
        session.commit()
    assert issued.token.startswith("cw_") and len(issued.token) >= 40
    with sessions() as session:
        row = session.get(ApiToken, issued.token_id)
        assert row is not None
        assert row.token_hash == hash_token(issued.token) != issued.token
        assert issued.token not in (row.token_hash, row.name, row.token_prefix)
        assert issued.token.startswith(row.token_prefix)
        principal = authenticate(session, token=issued.token)
    assert principal is not None and principal.name == "li.na" and principal.role is Role.DISPATCHER
    assert principal.actor() == Actor(name="li.na", role=Role.DISPATCHER)


def test_tokens_are_unique_and_unguessable_variants_fail(sessions: sessionmaker[Session]) -> None:
    tokens = {_issue(sessions, f"t{i}", Role.VIEWER) for i in range(5)}
    assert len(tokens) == 5
    token = next(iter(tokens))
    with sessions() as session:
        for wrong in (token[:-1], token + "x", token.upper(), "", "cw_", "Bearer " + token, "x" * 1000):
            assert authenticate(session, token=wrong) is None


def test_revoked_token_no_longer_authenticates_and_keeps_its_row(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        issued = create_token(session, name="old-screen", role=Role.VIEWER)
        keep = create_token(session, name="new-screen", role=Role.VIEWER)
        session.commit()
    with sessions() as session:
        first = revoke_token(session, token_id=issued.token_id).revoked_at
        again = revoke_token(session, token_id=issued.token_id).revoked_at
        session.commit()
    assert first is not None and again == first
    with sessions() as session:
        assert authenticate(session, token=issued.token) is None
        assert authenticate(session, token=keep.token) is not None
        assert [row.name for row in list_tokens(session)] == ["new-screen"]
        assert [row.name for row in list_tokens(session, include_revoked=True)] == [
            "old-screen",
            "new-screen",
        ]
        with pytest.raises(TokenNotFound, match="no token with id 999"):
            revoke_token(session, token_id=999)


@pytest.mark.parametrize(
    ("name", "role", "message"),
    [
        ("gw", Role.SYSTEM, "belongs to the gateway itself"),
        ("x", "superuser", "unknown role 'superuser'"),
        ("   ", Role.ADMIN, "needs a name"),
        ("n" * 129, Role.ADMIN, "needs a name"),
    ],
)
def test_create_token_refuses_mistakes(
    sessions: sessionmaker[Session], name: str, role: str, message: str
) -> None:
    with sessions() as session, pytest.raises(ValueError, match=message):
        create_token(session, name=name, role=role)
    with sessions() as session:
        assert list_tokens(session, include_revoked=True) == []


def _app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()

    def session_override() -> Iterator[Session]:
        with sessions() as session:
            yield session

    app.dependency_overrides[get_session] = session_override

    @app.get("/screen")
    def screen(caller: AnyCaller) -> dict[str, str]:
        return {"name": caller.name, "role": caller.role.value}

    @app.post("/dispatch")
    def dispatch(caller: DispatcherCaller) -> dict[str, str]:
        return {"name": caller.name}

    @app.post("/callback")
    def callback(caller: CallbackCaller) -> dict[str, str]:
        return {"name": caller.name}

    @app.post("/devices")
    def devices(caller: InstallerCaller) -> dict[str, str]:
        return {"name": caller.name}

    @app.post("/tokens")
    def tokens(caller: AdminCaller) -> dict[str, str]:
        return {"name": caller.name}

    return app


ROUTE_ROLES = {
    ("GET", "/screen"): TOKEN_ROLES,
    ("POST", "/dispatch"): {Role.ADMIN, Role.DISPATCHER},
    ("POST", "/callback"): {Role.ADMIN, Role.DISPATCHER, Role.DISPATCH_CENTRE},
    ("POST", "/devices"): {Role.ADMIN, Role.INSTALLER},
    ("POST", "/tokens"): {Role.ADMIN},
}


def test_every_route_answers_by_role(sessions: sessionmaker[Session]) -> None:
    tokens = {role: _issue(sessions, f"{role.value}-1", role) for role in TOKEN_ROLES}
    with TestClient(_app(sessions)) as client:
        for (method, path), allowed in ROUTE_ROLES.items():
            for role, token in tokens.items():
                response = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
                if role in allowed:
                    assert response.status_code == 200, (path, role, response.text)
                    assert response.json()["name"] == f"{role.value}-1"
                else:
                    assert response.status_code == 403, (path, role, response.text)
                    assert f"role '{role.value}' may not do this" in response.json()["detail"]


def test_missing_malformed_and_revoked_tokens_get_401(sessions: sessionmaker[Session]) -> None:
    token = _issue(sessions, "admin", Role.ADMIN)
    with TestClient(_app(sessions)) as client:
        missing = client.get("/screen")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "missing bearer token" in missing.json()["detail"]
        for header in (f"Basic {token}", token, "Bearer", f"Bearer {token}x", "Bearer cw_nope"):
            response = client.get("/screen", headers={"Authorization": header})
            assert response.status_code == 401, header
        assert client.get("/screen", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with sessions() as session:
            revoke_token(session, token_id=1)
            session.commit()
        revoked = client.post("/tokens", headers={"Authorization": f"Bearer {token}"})
        assert revoked.status_code == 401 and revoked.json()["detail"] == "invalid or revoked token"
        assert 'error="invalid_token"' in revoked.headers["www-authenticate"]


def test_openapi_declares_the_bearer_scheme(sessions: sessionmaker[Session]) -> None:
    schema = _app(sessions).openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/tokens"]["post"]["security"] == [{"HTTPBearer": []}]


def test_require_role_refuses_the_system_role_and_nothing() -> None:
    with pytest.raises(ValueError, match="token roles"):
        require_role(Role.SYSTEM)
    with pytest.raises(ValueError, match="token roles"):
        require_role()
