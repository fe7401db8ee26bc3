"""API tokens for tests: issue one per role straight into the gateway's database."""

from __future__ import annotations

from weakref import WeakKeyDictionary

import httpx

from gateway.auth.roles import Role
from gateway.auth.service import create_token
from gateway.runner import GatewayApp


def issue_token(gateway: GatewayApp, role: Role | str, *, name: str | None = None) -> str:
    with gateway.session_factory() as session, session.begin():
        return create_token(session, name=name or f"test-{role}", role=role).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_client(gateway: GatewayApp, role: Role | str = Role.ADMIN) -> httpx.Client:
    """An httpx client on the gateway's API carrying a fresh token of ``role``."""
    return httpx.Client(base_url=gateway.url, headers=bearer(issue_token(gateway, role)), timeout=10.0)


_admin_headers: WeakKeyDictionary[GatewayApp, dict[str, str]] = WeakKeyDictionary()


def admin_headers(gateway: GatewayApp) -> dict[str, str]:
    """``Authorization`` for an admin of ``gateway``; one token per gateway, however often it is asked."""
    headers = _admin_headers.get(gateway)
    if headers is None:
        headers = _admin_headers[gateway] = bearer(issue_token(gateway, Role.ADMIN, name="test-admin"))
    return headers
