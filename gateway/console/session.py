"""Console sessions: a signed cookie naming the API token its holder logged in with, and CSRF tokens.

The cookie holds the token's id (never the token), a random CSRF token and the login time, signed
with ``itsdangerous`` under a key kept in the data directory (created on first use, mode 0600), so
sessions survive a gateway restart. Every request looks the token up again: revoking it ends every
session opened with it at once. The cookie is HttpOnly (scripts cannot read it) and SameSite=Lax (a
link from another site opens the page; no other site can post with it); actions also carry the
session's CSRF token (synchronizer pattern), compared in constant time.

The login form has its own double-submit token: a random value in a short-lived SameSite=Strict
cookie and in the form, so another site cannot log a browser into its own token.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.models import ApiToken, Principal
from gateway.auth.roles import Role

SESSION_COOKIE = "cw_console"
LOGIN_COOKIE = "cw_console_login"
SESSION_MAX_AGE_S = 12 * 3600  # one dispatch shift; then log in again
LOGIN_FORM_MAX_AGE_S = 3600
KEY_FILE = "console-session.key"
_SALT = "citywatch.console.session"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """Who is logged in (looked up again on every request) and the CSRF token of their forms."""

    principal: Principal
    csrf: str

    @property
    def may_act(self) -> bool:
        """Whether the role may move events at all; which actions, the lifecycle decides per event."""
        return self.principal.role in (Role.ADMIN, Role.DISPATCHER, Role.DISPATCH_CENTRE, Role.SUPERVISOR)


def load_or_create_key(data_dir: Path) -> bytes:
    """The signing key, kept beside the database; written once, readable by the gateway's user only."""
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    return key


class SessionSigner:
    """Makes and reads the session cookie; ``secure`` cookies when the console is reached over HTTPS."""

    def __init__(self, key: bytes, *, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self._login_serializer = URLSafeTimedSerializer(key, salt=_SALT + ".login")
        self.max_age_s = max_age_s

    def open(self, response: Response, request: Request, *, token_id: int) -> str:
        """Start a session for ``token_id``; returns its CSRF token."""
        csrf = secrets.token_urlsafe(24)
        value = self._serializer.dumps({"t": token_id, "c": csrf})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.max_age_s,
            path="/",
            httponly=True,
            samesite="lax",
            secure=_secure(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return csrf

    def close(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")

    def read(self, request: Request, session: Session) -> ConsoleSession | None:
        """The session the request's cookie names, or None (no cookie, forged, expired, token revoked)."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is one
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("t"), int)
            or not isinstance(data.get("c"), str)
        ):
            return None
        row = session.get(ApiToken, data["t"])
        # Like the bearer check, end the look-up's transaction: the event stream must not hold it open.
        session.rollback()
        if row is None or row.revoked_at is not None:
            return None
        principal = Principal(token_id=row.id, name=row.name, role=Role(row.role))
        return ConsoleSession(principal=principal, csrf=data["c"])

    # -- the login form's double-submit token ------------------------------------------------------
    @staticmethod
    def login_token() -> str:
        """A fresh token for the login form; ``set_login_cookie`` puts the same in the cookie."""
        return secrets.token_urlsafe(24)

    def set_login_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE,
            self._login_serializer.dumps(token),
            max_age=LOGIN_FORM_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )

    def login_form_ok(self, request: Request, submitted: str) -> bool:
        raw = request.cookies.get(LOGIN_COOKIE)
        if not raw or not submitted:
            return False
        try:
            expected = self._login_serializer.loads(raw, max_age=LOGIN_FORM_MAX_AGE_S)
        except BadSignature:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, submitted)


def csrf_ok(session: ConsoleSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")


def _secure(request: Request) -> bool:
    """Secure cookies when the browser came over HTTPS (directly or, by its header, through a proxy)."""
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"
