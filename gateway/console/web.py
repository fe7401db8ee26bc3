"""What the console's pages share: its context, the session check, rendering, the login page."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

from citywatch import __version__
from gateway.api.deps import Services
from gateway.console.i18n import Translator, negotiate
from gateway.console.session import ConsoleSession, SessionSigner, load_or_create_key

PREFIX = "/console"
UTC_ZONE = ZoneInfo("UTC")
LOGIN_PATH = "/"
# Everything the pages load comes from the gateway itself: no CDN, no tile server, no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# Which item of the navigation a page belongs to.
_NAV = {
    "desk.html": "desk",
    "event.html": "desk",
    "devices.html": "devices",
    "device.html": "devices",
    "governance.html": "governance",
}


class ConsoleContext:
    """What the console's routes share. The services are the API app's, read when a request comes (the
    app may be built before its gateway is), and so is the session key, made on first use."""

    def __init__(self, parent: FastAPI, templates: Jinja2Templates) -> None:
        self._parent = parent
        self.templates = templates
        self._signer: SessionSigner | None = None
        self._lock = threading.Lock()

    @property
    def services(self) -> Services:
        services: Services = self._parent.state.services
        return services

    @property
    def zone(self) -> ZoneInfo:
        """The district's time zone (the gateway's TIMEZONE setting): pages show times in it."""
        return self.services.settings.zone

    @property
    def signer(self) -> SessionSigner:
        with self._lock:
            if self._signer is None:
                self._signer = SessionSigner(load_or_create_key(self.services.settings.DATA_DIR))
            return self._signer


class NotLoggedIn(Exception):
    """No valid session: pages send the browser to the login, fragments and streams answer 401."""


def environment(zone: Callable[[], ZoneInfo] = lambda: UTC_ZONE) -> Environment:
    """The templates' environment; ``zone`` gives the time zone times are shown in (read per use: the
    console may be built before its gateway's settings are known)."""
    env = Environment(
        loader=PackageLoader("gateway.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = lambda value: value.isoformat() if isinstance(value, datetime) else ""
    env.filters["short_time"] = lambda value: short_time(value, zone())
    env.globals["zone_name"] = lambda: zone().key
    env.filters["duration"] = duration
    env.filters["number"] = number
    return env


def short_time(value: datetime | None, zone: ZoneInfo = UTC_ZONE) -> str:
    """To the minute in the district's zone, with its offset: ``2026-06-02 07:30 UTC+8``. Every screen of
    the control room shows the same clock, whatever the zone of the browser showing it."""
    if not isinstance(value, datetime):
        return "—"
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {utc_offset(local)}"


def utc_offset(local: datetime) -> str:
    """``UTC``, ``UTC+8``, ``UTC-3:30``: short, and unlike abbreviations (CST) never ambiguous."""
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'+' if minutes > 0 else '-'}{hours}" + (f":{rest:02d}" if rest else "")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e9):
        return str(int(value))
    return f"{value:.{digits}f}"


def translator(request: Request) -> Translator:
    return Translator(negotiate(request.headers.get("accept-language")))


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a console page of this gateway, never another site."""
    if value and value.startswith(PREFIX + "/") and "\\" not in value and "//" not in value:
        return value
    return PREFIX + "/desk"


def render_with(
    context: ConsoleContext,
    request: Request,
    template: str,
    user: ConsoleSession | None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    return context.templates.TemplateResponse(
        request,
        template,
        {
            "t": translator(request),
            "user": user,
            "prefix": PREFIX,
            "static": f"{PREFIX}/static",
            "version": __version__,
            "nav": _NAV.get(template, ""),
            **values,
        },
        status_code=status_code,
        headers=headers,
    )


def render(
    request: Request,
    template: str,
    user: ConsoleSession | None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A console page (``request`` of the console app)."""
    context: ConsoleContext = request.app.state.console
    return render_with(context, request, template, user, status_code=status_code, headers=headers, **values)


def render_login(
    context: ConsoleContext,
    request: Request,
    *,
    error: str | None = None,
    status_code: int = 200,
    next_url: str = "",
) -> Response:
    """The login page (a logged-in browser goes on to the desk), with a fresh login-form token."""
    if error is None:
        with context.services.read_session_factory() as session:
            if context.signer.read(request, session) is not None:
                return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    token = context.signer.login_token()
    response = render_with(
        context,
        request,
        "login.html",
        None,
        status_code=status_code,
        error=error,
        next=next_url or request.query_params.get("next", ""),
        login_csrf=token,
    )
    context.signer.set_login_cookie(response, request, token)
    return response


def current_session(request: Request) -> ConsoleSession:
    """The logged-in session, or ``NotLoggedIn``."""
    context: ConsoleContext = request.app.state.console
    with context.services.read_session_factory() as session:
        found = context.signer.read(request, session)
    if found is None:
        raise NotLoggedIn
    return found
