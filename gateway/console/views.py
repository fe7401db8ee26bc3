"""The console's routes (relative to ``/console``): login and logout, the event desk and its live stream,
event pages and their actions, devices, governance and its CSV export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from sse_starlette.sse import EventSourceResponse

from gateway.auth.service import authenticate
from gateway.console import desk, devicespage, eventpage, governance
from gateway.console.evidence import evidence_file, snapshot_file
from gateway.console.session import ConsoleSession, csrf_ok
from gateway.console.web import (
    LOGIN_PATH,
    PREFIX,
    ConsoleContext,
    current_session,
    render,
    render_login,
    safe_next,
    translator,
)
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.lifecycle.models import Action, RefusalCode, TransitionRefused
from gateway.events.models import CallbackRequest
from gateway.events.views import stream as event_stream

router = APIRouter(include_in_schema=False)
User = Annotated[ConsoleSession, Depends(current_session)]
EventId = Annotated[int, Path(ge=1, le=2**31 - 1)]
DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _context(request: Request) -> ConsoleContext:
    context: ConsoleContext = request.app.state.console
    return context


Context = Annotated[ConsoleContext, Depends(_context)]


# -- login ----------------------------------------------------------------------------------------------
@router.post("/login")
def login(
    request: Request,
    context: Context,
    token: Annotated[str, Form(max_length=256)] = "",
    login_csrf: Annotated[str, Form(max_length=128)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2000)] = "",
) -> Response:
    t = translator(request)
    if not context.signer.login_form_ok(request, login_csrf):
        return render_login(context, request, error=t("login_expired"), status_code=400, next_url=next_url)
    with context.services.read_session_factory() as session:
        principal = authenticate(session, token=token.strip())
    if principal is None:
        return render_login(context, request, error=t("login_failed"), status_code=401, next_url=next_url)
    response = RedirectResponse(safe_next(next_url), status_code=status.HTTP_303_SEE_OTHER)
    context.signer.open(response, request, token_id=principal.token_id)
    return response


@router.post("/logout")
def logout(
    request: Request, context: Context, user: User, csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    if not csrf_ok(user, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, translator(request)("csrf_failed"))
    response = RedirectResponse(LOGIN_PATH, status_code=status.HTTP_303_SEE_OTHER)
    context.signer.close(response)
    return response


@router.get("/")
def home(_user: User) -> Response:
    return RedirectResponse(f"{PREFIX}/desk", status_code=status.HTTP_303_SEE_OTHER)


# -- event desk -----------------------------------------------------------------------------------------
def _desk_filter(
    type_: Annotated[str, Query(alias="type", max_length=32)] = "",
    area: Annotated[str, Query(max_length=140)] = "",
    department: Annotated[str, Query(max_length=64)] = "",
    status_: Annotated[str, Query(alias="status", max_length=32)] = "open",
    period: Annotated[str, Query(max_length=8)] = "all",
) -> desk.DeskFilter:
    try:
        return desk.DeskFilter(type=type_, area=area, department=department, status=status_, period=period)
    except desk.FilterError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


Filters = Annotated[desk.DeskFilter, Depends(_desk_filter)]


@router.get("/desk")
def desk_screen(request: Request, context: Context, user: User, filters: Filters) -> Response:
    with context.services.read_session_factory() as session:
        found = desk.desk_page(session, filters)
        choices = desk.filter_choices(session)
    return render(
        request, "desk.html", user, desk=found, filters=filters, choices=choices, triage=desk.TRIAGE
    )


@router.get("/desk/rows")
def desk_rows(request: Request, context: Context, user: User, filters: Filters) -> Response:
    """The desk's table alone: what the live page fetches when the event stream says something changed."""
    with context.services.read_session_factory() as session:
        found = desk.desk_page(session, filters)
    return render(request, "desk_rows.html", user, desk=found, filters=filters)


@router.get("/stream")
async def stream(
    request: Request,
    context: Context,
    user: User,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> EventSourceResponse:
    """The API's event stream (``GET /events/stream``) under the console's session, every change as a
    plain ``message`` (its ``action`` is in the data): a page need not know every action's name."""
    source = await event_stream.stream_events(
        request,
        context.services,
        user.principal,
        after=after,
        last_event_id=request.headers.get("last-event-id"),
    )

    async def messages() -> Any:
        async for change in source.body_iterator:
            assert isinstance(change, dict)
            yield {"id": change["id"], "data": change["data"]}

    return EventSourceResponse(messages(), ping=15)


# -- one event ------------------------------------------------------------------------------------------
DONE_ACTIONS = frozenset(action.value for action in events_service.PERSON_ACTIONS)


def _event_page(
    request: Request,
    context: Context,
    user: ConsoleSession,
    event_id: int,
    *,
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with context.services.read_session_factory() as session:
        try:
            found = eventpage.event_page(
                session, context.services, event_id, role=user.principal.role, prefix=PREFIX
            )
        except events_service.EventNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, translator(request)("no_such_event")) from None
        chart = eventpage.chart_json(found)
    return render(
        request,
        "event.html",
        user,
        status_code=status_code,
        page=found,
        event=found.event,
        chart=chart,
        done=done if done in DONE_ACTIONS else None,
        error=error,
    )


@router.get("/events/{event_id}")
def event_screen(
    request: Request,
    context: Context,
    user: User,
    event_id: EventId,
    done: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    return _event_page(request, context, user, event_id, done=done)


@router.post("/events/{event_id}/act/{action}")
def act(
    request: Request,
    context: Context,
    user: User,
    event_id: EventId,
    action: Action,
    csrf: Annotated[str, Form(max_length=128)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    department: Annotated[str, Form(max_length=128)] = "",
    assignee: Annotated[str, Form(max_length=256)] = "",
    rating: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    t = translator(request)
    if not csrf_ok(user, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, t("csrf_failed"))
    if not user.may_act or action not in events_service.PERSON_ACTIONS:
        return _event_page(
            request,
            context,
            user,
            event_id,
            error=t("role_cannot_act", role=t("role." + user.principal.role.value)),
            status_code=status.HTTP_403_FORBIDDEN,
        )
    try:
        body = CallbackRequest.model_validate(
            {
                "note": note.strip() or None,
                "department": department.strip() or None,
                "assignee": assignee.strip() or None,
                "rating": int(rating) if rating.strip().isdigit() else None,
            }
        )
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _event_page(request, context, user, event_id, error=message, status_code=422)
    with context.services.session_factory() as session:
        try:
            events_service.act(
                session=session,
                event_id=event_id,
                action=action,
                actor=user.principal.actor(),
                note=body.note,
                rating=body.rating,
                department=body.department,
                assignee=body.assignee,
            )
            session.commit()
        except events_service.EventNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, t("no_such_event")) from None
        except TransitionRefused as exc:
            session.rollback()
            code = 403 if exc.code is RefusalCode.ROLE_NOT_ALLOWED else 409
            return _event_page(request, context, user, event_id, error=exc.reason, status_code=code)
    return RedirectResponse(
        f"{PREFIX}/events/{event_id}?done={action.value}", status_code=status.HTTP_303_SEE_OTHER
    )


@router.get("/events/{event_id}/snapshot")
def event_snapshot(context: Context, _user: User, event_id: EventId) -> Response:
    with context.services.read_session_factory() as session:
        event = _get_event(session, event_id)
        path = snapshot_file(context.services.settings, event)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no snapshot")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/events/{event_id}/evidence/{evidence_id}")
def event_evidence(
    context: Context,
    _user: User,
    event_id: EventId,
    evidence_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
) -> Response:
    with context.services.read_session_factory() as session:
        event = _get_event(session, event_id)
        found = evidence_file(session, context.services.settings, event, evidence_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such evidence")
    path, content_type = found
    return FileResponse(path, media_type=content_type)  # ranges served: the clip player can seek


def _get_event(session: Any, event_id: int) -> Any:
    try:
        return events_service.get(session=session, event_id=event_id)
    except events_service.EventNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such event") from None


# -- devices --------------------------------------------------------------------------------------------
@router.get("/devices")
def devices_screen(
    request: Request,
    context: Context,
    user: User,
    page_no: Annotated[int, Query(alias="page", ge=0, le=100_000)] = 0,
) -> Response:
    with context.services.read_session_factory() as session:
        now = events_service.policy_of(session).clock()
        rows, total = devicespage.device_rows(session, context.services, page=page_no, now=now)
    pages = max(1, -(-total // devicespage.PAGE_SIZE))
    return render(
        request,
        "devices.html",
        user,
        rows=rows,
        total=total,
        page_no=page_no,
        pages=pages,
        health_columns=devicespage.HEALTH_COLUMNS,
        now=now,
    )


@router.get("/devices/{device_id}")
def device_screen(
    request: Request,
    context: Context,
    user: User,
    device_id: DeviceId,
    window: Annotated[str, Query(max_length=8)] = "24h",
) -> Response:
    if window not in devicespage.WINDOWS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"window is one of {', '.join(devicespage.WINDOWS)}")
    with context.services.read_session_factory() as session:
        device = session.get(Device, device_id)
        if device is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, translator(request)("no_such_device"))
        now = events_service.policy_of(session).clock()
        found = devicespage.device_page(session, context.services, device, window=window, now=now)
    span = [int(found.start.timestamp() * 1000), int(found.stop.timestamp() * 1000)]
    charts = [s.as_json() | {"window": span} for s in found.charts]
    return render(
        request,
        "device.html",
        user,
        found=found,
        device=device,
        charts=charts,
        windows=list(devicespage.WINDOWS),
    )


# -- governance -----------------------------------------------------------------------------------------
def _governance(
    context: ConsoleContext,
    period: str,
    area: str,
) -> governance.Governance:
    try:
        with context.services.read_session_factory() as session:
            return governance.governance(session, period=period, area_level=area, zone=context.zone)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


Period = Annotated[str, Query(max_length=8)]
AreaLevel = Annotated[str, Query(max_length=8)]


@router.get("/governance")
def governance_screen(
    request: Request, context: Context, user: User, period: Period = "30d", area: AreaLevel = "town"
) -> Response:
    figures = _governance(context, period, area)
    t = translator(request)
    charts = {
        "per_day_type": _stacked(figures, figures.per_day_type, lambda key: t("type." + key)),
        "per_day_area": _stacked(figures, figures.per_day_area, str),
        "overdue": {
            "labels": [t("triage_queue") if d == governance.TRIAGE else d for d in figures.open_overdue],
            "values": list(figures.open_overdue.values()),
        },
    }
    return render(
        request,
        "governance.html",
        user,
        figures=figures,
        period=period,
        area=area,
        periods=list(governance.PERIODS),
        area_levels=list(desk.AREA_LEVELS),
        charts=charts,
        tables=governance.CSV_TABLES,
    )


def _stacked(
    figures: governance.Governance, counts: dict[str, list[int]], name: Callable[[str], str]
) -> dict[str, Any]:
    return {
        "labels": [day.isoformat() for day in figures.days],
        "series": [{"name": name(key), "values": values} for key, values in counts.items()],
    }


@router.get("/governance/export.csv")
def governance_csv(
    context: Context,
    _user: User,
    table: Annotated[str, Query(max_length=32)] = "summary",
    period: Period = "30d",
    area: AreaLevel = "town",
) -> Response:
    if table not in governance.CSV_TABLES:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"table is one of {', '.join(governance.CSV_TABLES)}"
        )
    figures = _governance(context, period, area)
    name = f"citywatch-{table}-{period}-{figures.stop.date().isoformat()}.csv"
    return Response(
        governance.to_csv(figures, table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
