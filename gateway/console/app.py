"""The console as a sub-application of the gateway's API app: pages under ``/console``, the login at ``/``.

The API app answers every one of its routes only with a bearer token (and documents them in OpenAPI);
the console is for browsers, which log in once and carry a session cookie. So it is a separate
application mounted beside the API: its routes are in no OpenAPI document, the API's token check
does not apply to them, and its own session check does.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywatch import __version__
from gateway.console import views
from gateway.console.web import (
    LOGIN_PATH,
    PREFIX,
    SECURITY_HEADERS,
    ConsoleContext,
    NotLoggedIn,
    environment,
    render,
    render_login,
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every console answer (a plain ASGI middleware: the event stream passes
    through untouched), and ``Cache-Control: no-store`` to all but the static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")  # pages show who may do what, now
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_console_app(parent: FastAPI) -> FastAPI:
    """The console for the API app ``parent``, whose services (``parent.state.services``) it uses."""
    console = FastAPI(
        title="citywatch console", openapi_url=None, docs_url=None, redoc_url=None, version=__version__
    )
    templates = Jinja2Templates(env=environment(lambda: context.zone))
    context = ConsoleContext(parent, templates)
    console.state.console = context
    console.state.stopping = parent.state.stopping  # the gateway's: ends open event streams on shutdown
    console.add_middleware(SecurityHeaders)
    console.mount("/static", StaticFiles(packages=[("gateway.console", "static")]), name="static")
    console.include_router(views.router)
    console.add_exception_handler(NotLoggedIn, _not_logged_in)
    console.add_exception_handler(StarletteHTTPException, _error_page)
    console.add_exception_handler(RequestValidationError, _invalid_request)
    return console


def mount_console(app: FastAPI) -> None:
    """Serve the console from the API app: the login page at ``/``, everything else under ``/console``."""
    console = create_console_app(app)
    context: ConsoleContext = console.state.console

    def login_page(request: Request) -> Response:
        response = render_login(context, request)
        response.headers.update(SECURITY_HEADERS | {"Cache-Control": "no-store"})
        return response

    app.add_route(LOGIN_PATH, login_page, methods=["GET"], include_in_schema=False)
    app.mount(PREFIX, console, name="console")


async def _not_logged_in(request: Request, _exc: Exception) -> Response:
    """Pages go to the login (and back after it); fragments, streams and posts answer 401, with the
    login's address for htmx to follow."""
    if request.headers.get("hx-request") or request.url.path.endswith("/stream") or request.method != "GET":
        return Response(status_code=401, headers={"HX-Redirect": LOGIN_PATH})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A hand-made address or form the pages never send (an id out of range, a field too long)."""
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return render(request, "error.html", None, status_code=422, status=422, detail=detail)


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return render(
        request,
        "error.html",
        None,
        status_code=exc.status_code,
        headers=exc.headers,
        status=exc.status_code,
        detail=exc.detail,
    )
