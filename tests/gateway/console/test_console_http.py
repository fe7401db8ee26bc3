"""The console over HTTP, without a browser: sessions, CSRF, roles, languages, the queries behind the
screens and what the API's OpenAPI document says of it (nothing)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity
from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.auth.service import authenticate, revoke_token
from gateway.console import desk, governance
from gateway.console.i18n import LANGUAGES, negotiate, texts
from gateway.console.session import LOGIN_COOKIE, SESSION_COOKIE
from gateway.console.siteplan import site_plan
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.models import Event
from gateway.runner import GatewayApp
from tests.gateway.console.support import CULVERTS, SITE, provision
from tests.gateway.helpers import api_only_gateway
from tests.gateway.tokens import issue_token

CONSOLE = Path(__file__).resolve().parents[3] / "gateway" / "console"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayApp]:
    with api_only_gateway(tmp_path) as gateway:
        provision(gateway)
        yield gateway


@pytest.fixture
def client(gateway: GatewayApp) -> Iterator[TestClient]:
    with TestClient(create_app(gateway.services), follow_redirects=False) as client:
        yield client


def raise_event(gateway: GatewayApp, device_id: str, event_type: EventType = EventType.WATER_LEVEL) -> int:
    """A device condition through the gateway's own event service (routing, audit), as the ingest would."""
    details: dict[str, Any] = {"level_cm": 14.0, "peak_cm": 14.0, "threshold_cm": 10.0}
    if event_type is EventType.SENSOR_FAULT:
        details = {"fault": "stuck", "message": "the same reading for an hour"}
    ts = datetime.now(UTC).replace(microsecond=0)
    message = EventMessage(
        device_id=device_id,
        event_id=uuid.uuid4().hex[:16],
        seq=0,
        phase=EventPhase.NEW,
        type=event_type,
        severity=Severity.WARNING,
        confidence=0.9,
        ts=ts,
        started_at=ts,
        details=details,
    )
    with gateway.session_factory() as session, session.begin():
        device = session.get(Device, device_id)
        assert device is not None
        _, event = events_service.apply_device_event(session=session, device=device, message=message)
        assert event is not None
        return event.id


def log_in(client: TestClient, token: str, *, next_url: str = "") -> Any:
    form = client.get("/")
    assert form.status_code == 200
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert login_csrf is not None
    return client.post(
        "/console/login", data={"token": token, "login_csrf": login_csrf.group(1), "next": next_url}
    )


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/desk").text)
    assert found is not None
    return found.group(1)


def state_of(gateway: GatewayApp, event_id: int) -> str:
    with gateway.read_session_factory() as session:
        event = session.get(Event, event_id)
        assert event is not None
        return event.state


# -- sessions -------------------------------------------------------------------------------------------
def test_login_opens_an_httponly_samesite_session_that_holds_no_token(
    gateway: GatewayApp, client: TestClient
) -> None:
    token = issue_token(gateway, Role.DISPATCHER)
    form = client.get("/")
    login_cookie = form.headers["set-cookie"]
    assert (
        login_cookie.startswith(LOGIN_COOKIE)
        and "HttpOnly" in login_cookie
        and "SameSite=strict" in login_cookie
    )
    assert form.headers["content-security-policy"].startswith("default-src 'self'")

    answer = log_in(client, token)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/desk"
    session_cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")
    )
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie and "Path=/" in session_cookie
    assert "Max-Age=43200" in session_cookie
    assert token not in session_cookie and token[3:20] not in session_cookie
    desk_page = client.get("/console/desk")
    assert desk_page.status_code == 200 and "test-dispatcher" in desk_page.text
    assert desk_page.headers["cache-control"] == "no-store"


def test_login_refuses_unknown_tokens_and_forged_forms(gateway: GatewayApp, client: TestClient) -> None:
    wrong = log_in(client, "cw_" + "x" * 43)
    assert wrong.status_code == 401 and "Unknown or revoked token" in wrong.text
    assert SESSION_COOKIE not in client.cookies
    token = issue_token(gateway, Role.ADMIN)
    # A form posted from another site carries no login cookie of ours (SameSite=strict): refused.
    forged = TestClient(client.app, follow_redirects=False).post(
        "/console/login", data={"token": token, "login_csrf": "guessed", "next": ""}
    )
    assert forged.status_code == 400
    assert SESSION_COOKIE not in forged.cookies


@pytest.mark.parametrize(
    "next_url", ["https://elsewhere.example/", "//elsewhere.example/x", "/docs", "/console//x"]
)
def test_login_goes_back_only_to_console_pages(
    gateway: GatewayApp, client: TestClient, next_url: str
) -> None:
    answer = log_in(client, issue_token(gateway, Role.VIEWER), next_url=next_url)
    assert answer.headers["location"] == "/console/desk"


def test_a_page_without_a_session_goes_to_the_login_and_back(gateway: GatewayApp, client: TestClient) -> None:
    event_id = raise_event(gateway, "culvert-east")
    page = client.get(f"/console/events/{event_id}")
    assert page.status_code == 303 and page.headers["location"] == f"/?next=%2Fconsole%2Fevents%2F{event_id}"
    assert client.get("/console/stream").status_code == 401
    assert client.get("/console/desk/rows", headers={"HX-Request": "true"}).headers["hx-redirect"] == "/"
    assert client.post(f"/console/events/{event_id}/act/accept", data={"csrf": "x"}).status_code == 401
    answer = log_in(client, issue_token(gateway, Role.VIEWER), next_url=f"/console/events/{event_id}")
    assert answer.headers["location"] == f"/console/events/{event_id}"


def test_revoking_the_token_ends_its_sessions(gateway: GatewayApp, client: TestClient) -> None:
    token = issue_token(gateway, Role.DISPATCHER, name="leaving")
    log_in(client, token)
    assert client.get("/console/desk").status_code == 200
    with gateway.session_factory() as session, session.begin():
        principal = authenticate(session, token=token)
        assert principal is not None
        revoke_token(session, token_id=principal.token_id)
    assert client.get("/console/desk").status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(gateway: GatewayApp, client: TestClient) -> None:
    log_in(client, issue_token(gateway, Role.VIEWER))
    assert client.post("/console/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.get("/console/desk").status_code == 200
    answer = client.post("/console/logout", data={"csrf": csrf_of(client)})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert client.get("/console/desk").status_code == 303


def test_a_tampered_session_cookie_is_no_session(gateway: GatewayApp, client: TestClient) -> None:
    log_in(client, issue_token(gateway, Role.VIEWER))
    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/console/desk").status_code == 303


# -- actions --------------------------------------------------------------------------------------------
def test_actions_need_the_sessions_csrf_token(gateway: GatewayApp, client: TestClient) -> None:
    event_id = raise_event(gateway, "culvert-east")
    assert state_of(gateway, event_id) == "dispatched"
    log_in(client, issue_token(gateway, Role.DISPATCHER))
    for csrf in ("", "not-the-token"):
        answer = client.post(f"/console/events/{event_id}/act/accept", data={"csrf": csrf})
        assert answer.status_code == 403
    assert state_of(gateway, event_id) == "dispatched"
    answer = client.post(f"/console/events/{event_id}/act/accept", data={"csrf": csrf_of(client)})
    assert (
        answer.status_code == 303 and answer.headers["location"] == f"/console/events/{event_id}?done=accept"
    )
    assert state_of(gateway, event_id) == "accepted"
    shown = client.get(answer.headers["location"])
    assert "accepted: it is now accepted" in shown.text


def test_a_refused_action_says_why_and_changes_nothing(gateway: GatewayApp, client: TestClient) -> None:
    event_id = raise_event(gateway, "culvert-east")
    log_in(client, issue_token(gateway, Role.DISPATCHER))
    csrf = csrf_of(client)
    no_note = client.post(f"/console/events/{event_id}/act/reject", data={"csrf": csrf})
    assert no_note.status_code == 409 and "reject needs a note" in no_note.text
    wrong_state = client.post(f"/console/events/{event_id}/act/resolve", data={"csrf": csrf, "note": "done"})
    assert wrong_state.status_code == 409 and "cannot resolve an event that is dispatched" in wrong_state.text
    control = client.post(
        f"/console/events/{event_id}/act/cancel", data={"csrf": csrf, "note": "bad\x00note"}
    )
    assert control.status_code == 422
    assert state_of(gateway, event_id) == "dispatched"
    rerouted = client.post(
        f"/console/events/{event_id}/act/assign",
        data={"csrf": csrf, "assignee": "crew 7", "note": "pump truck"},
    )
    assert rerouted.status_code == 303
    page = client.get(f"/console/events/{event_id}").text
    assert "assigned to crew 7: pump truck" in page


def test_a_viewer_sees_the_event_but_no_action_and_cannot_post_one(
    gateway: GatewayApp, client: TestClient
) -> None:
    event_id = raise_event(gateway, "culvert-east")
    log_in(client, issue_token(gateway, Role.VIEWER))
    page = client.get(f"/console/events/{event_id}")
    assert page.status_code == 200
    assert "/act/" not in page.text and "sees events but cannot act" in page.text
    answer = client.post(f"/console/events/{event_id}/act/accept", data={"csrf": csrf_of(client)})
    assert answer.status_code == 403 and "cannot act on events" in answer.text
    assert state_of(gateway, event_id) == "dispatched"


def test_installer_gets_no_event_actions_either(gateway: GatewayApp, client: TestClient) -> None:
    event_id = raise_event(gateway, "culvert-east")
    log_in(client, issue_token(gateway, Role.INSTALLER))
    assert "/act/" not in client.get(f"/console/events/{event_id}").text


# -- what the API's schema says of the console: nothing ---------------------------------------------------
def test_console_routes_are_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not [p for p in paths if p.startswith("/console")]


def test_static_files_are_served_and_nothing_is_loaded_from_elsewhere(client: TestClient) -> None:
    for name in ("console.css", "console.js", "vendor/htmx.min.js", "vendor/chart.umd.min.js"):
        answer = client.get(f"/console/static/{name}")
        assert answer.status_code == 200 and answer.content, name
    ours = [
        *CONSOLE.joinpath("templates").glob("*.html"),
        CONSOLE / "static" / "console.js",
        CONSOLE / "static" / "console.css",
    ]
    for path in ours:
        assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", path.read_text()), (
            f"{path} loads from elsewhere"
        )


def test_vendored_files_are_the_recorded_releases_with_their_licences() -> None:
    vendor = CONSOLE / "static" / "vendor"
    readme = (vendor / "README.md").read_text()
    for name in ("htmx.min.js", "chart.umd.min.js"):
        digest = hashlib.sha256((vendor / name).read_bytes()).hexdigest()
        assert digest in readme, f"{name}: its SHA-256 is not the one recorded in vendor/README.md"
    assert (vendor / "htmx.LICENSE").is_file() and (vendor / "chart.js.LICENSE.md").is_file()


# -- languages ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("zh-TW", "zh"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("fr;q=1, zh;q=0.5, en;q=0.4", "zh"),
        ("en;q=0.5, zh;q=0.8", "zh"),
        ("zh;q=0", "en"),
        ("", "en"),
        (None, "en"),
        ("*", "en"),
        ("<script>", "en"),
    ],
)
def test_the_browsers_language_chooses_the_texts(header: str | None, language: str) -> None:
    assert negotiate(header) == language


def test_every_language_has_every_text_with_the_same_fields() -> None:
    english = texts("en")
    used = set()
    for path in CONSOLE.joinpath("templates").glob("*.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z0-9_.]+)["']""", path.read_text()))
    used -= {key for key in used if key.endswith(".")}  # prefixes: completed at run time
    assert used <= set(english), f"used but not in en.json: {sorted(used - set(english))}"
    for language in LANGUAGES:
        other = texts(language)
        assert set(other) == set(english), f"{language}: {sorted(set(other) ^ set(english))}"
        for key, text in other.items():
            fields = set(re.findall(r"{(\w+)}", text))
            assert fields == set(re.findall(r"{(\w+)}", english[key])), f"{language} {key}: fields differ"


def test_chinese_pages_for_a_chinese_browser(gateway: GatewayApp, client: TestClient) -> None:
    client.headers["Accept-Language"] = "zh-CN,zh;q=0.9"
    log_in(client, issue_token(gateway, Role.VIEWER))
    page = client.get("/console/desk").text
    assert '<html lang="zh-CN">' in page and "事件处置台" in page and "查看员" in page


# -- the queries behind the screens -----------------------------------------------------------------------
def test_the_desk_puts_overdue_then_new_then_dispatched_first_and_filters(gateway: GatewayApp) -> None:
    dispatched = raise_event(gateway, "culvert-east")
    overdue = raise_event(gateway, "culvert-west")
    fault = raise_event(gateway, "culvert-hill", EventType.SENSOR_FAULT)
    resolved = raise_event(gateway, "culvert-hill")
    now = datetime.now(UTC)
    with gateway.session_factory() as session, session.begin():
        rows = {e.id: e for e in session.query(Event)}
        rows[overdue].deadline = now - timedelta(minutes=1)
        rows[fault].state, rows[fault].department, rows[fault].deadline = "new", None, None  # in triage
        rows[resolved].state, rows[resolved].resolved_at = "resolved", now
    with gateway.read_session_factory() as session:
        page = desk.desk_page(session, desk.DeskFilter())
        assert [row.event.id for row in page.rows] == [overdue, fault, dispatched, resolved]
        assert [row.overdue for row in page.rows] == [True, False, False, False]
        assert page.rows[0].event.sla.value == "red"
        assert page.counts == {"new": 1, "dispatched": 2, "in_work": 0, "overdue": 1}

        def ids(**filters: str) -> list[int]:
            return [row.event.id for row in desk.desk_page(session, desk.DeskFilter(**filters)).rows]

        assert ids(status="overdue") == [overdue]
        assert ids(type="sensor_fault") == [fault]
        assert ids(area="grid:g-07") == [fault, resolved]
        assert ids(area=f"site:{SITE}", department=desk.TRIAGE) == [fault]
        assert ids(department="dispatch-centre", status="dispatched") == [overdue, dispatched]
        assert ids(period="1h") == ids()
    with pytest.raises(desk.FilterError, match="area is written"):
        desk.DeskFilter(area="street:x")


def test_governance_figures_from_the_event_rows(gateway: GatewayApp) -> None:
    ids = [raise_event(gateway, device) for device in ("culvert-east", "culvert-west", "culvert-hill")]
    ids.append(raise_event(gateway, "culvert-east", EventType.SENSOR_FAULT))
    now = datetime.now(UTC)
    start = now - timedelta(hours=10)
    with gateway.session_factory() as session, session.begin():
        rows = {e.id: e for e in session.query(Event)}
        # Two resolved: in 2 h (on time) and in 6 h (4 h late); one cancelled; one open and overdue.
        for event_id, hours, deadline_h in ((ids[0], 2, 4), (ids[1], 6, 2)):
            row = rows[event_id]
            row.state, row.dispatched_at = "resolved", start
            row.resolved_at, row.deadline = (
                start + timedelta(hours=hours),
                start + timedelta(hours=deadline_h),
            )
        rows[ids[2]].state = "cancelled"
        rows[ids[3]].deadline = now - timedelta(minutes=10)
    with gateway.read_session_factory() as session:
        figures = governance.governance(session, period="7d", area_level="grid")
    assert figures.raised == 4
    assert (figures.finished, figures.on_time, figures.on_time_rate) == (2, 1, 0.5)
    assert figures.mean_handling_s == pytest.approx(4 * 3600)
    assert figures.median_handling_s == pytest.approx(4 * 3600)
    assert figures.open_overdue == {"dispatch-centre": 1}
    assert sum(figures.per_day_type["water_level"]) == 3 and sum(figures.per_day_type["sensor_fault"]) == 1
    assert {area: sum(n) for area, n in figures.per_day_area.items()} == {"g-07": 1, "g-12": 3}
    hill = next(d for d in figures.false_alarms if d.device_id == "culvert-hill")
    assert (hill.events, hill.cancelled, hill.rate) == (1, 1, 1.0)
    assert figures.false_alarms[0].device_id == "culvert-hill"  # the worst first
    summary = governance.to_csv(figures, "summary").splitlines()
    assert summary[0] == "figure,value" and "on_time_rate,0.5000" in summary
    assert "median_handling_time_s,14400.0000" in summary
    alarms = governance.to_csv(figures, "false_alarms").splitlines()
    assert alarms[1] == "culvert-hill,riverside,culvert,1,1,1.0000"
    per_day = governance.to_csv(figures, "per_day_area").splitlines()
    assert per_day[0] == "day,grid,events" and len(per_day) == 1 + 2 * 7


def test_governance_csv_download(gateway: GatewayApp, client: TestClient) -> None:
    raise_event(gateway, "culvert-east")
    log_in(client, issue_token(gateway, Role.VIEWER))
    answer = client.get("/console/governance/export.csv", params={"table": "per_day_type", "period": "7d"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.text.splitlines()[0] == "day,type,events"
    assert client.get("/console/governance/export.csv", params={"table": "passwords"}).status_code == 400


def test_the_site_plan_is_north_up_and_keeps_every_device_inside(gateway: GatewayApp) -> None:
    with gateway.read_session_factory() as session:
        devices = list(session.query(Device).order_by(Device.id))
    plan = site_plan(SITE, devices, focus="culvert-east")
    placed = {p.id: p for p in plan.placed}
    assert set(placed) == {"culvert-east", "culvert-west"} and plan.unplaced == ["culvert-hill"]
    east, west = placed["culvert-east"], placed["culvert-west"]
    assert east.x > west.x  # east is right
    assert east.y < west.y  # culvert-east lies further north: higher on the plan
    assert all(0 < p.x < plan.width and 0 < p.y < plan.height for p in plan.placed)
    assert east.focus and not west.focus and plan.placed[-1].id == "culvert-east"  # drawn on top
    # The two are about 640 m apart; the scale bar is a round number of metres in proportion.
    apart_px = ((east.x - west.x) ** 2 + (east.y - west.y) ** 2) ** 0.5
    assert 600 < apart_px * plan.scale_m / plan.scale_px < 700
    assert len(CULVERTS) == 3


def test_the_snapshot_is_served_under_the_session(gateway: GatewayApp, client: TestClient) -> None:
    event_id = raise_event(gateway, "culvert-east")
    jpeg = b"\xff\xd8\xff\xe0fake-but-a-file\xff\xd9"
    snapshot_id = "snap0001abcd"
    gateway.settings.snapshot_dir.mkdir(parents=True, exist_ok=True)
    (gateway.settings.snapshot_dir / f"{snapshot_id}.jpg").write_bytes(jpeg)
    with gateway.session_factory() as session, session.begin():
        row = session.get(Event, event_id)
        assert row is not None
        row.snapshot_id = snapshot_id
    assert client.get(f"/console/events/{event_id}/snapshot").status_code == 303  # no session
    log_in(client, issue_token(gateway, Role.VIEWER))
    answer = client.get(f"/console/events/{event_id}/snapshot")
    assert (
        answer.status_code == 200
        and answer.content == jpeg
        and answer.headers["content-type"] == "image/jpeg"
    )
    assert f"/console/events/{event_id}/snapshot" in client.get(f"/console/events/{event_id}").text
    assert client.get("/console/events/999999").status_code == 404


def test_clips_and_photos_of_the_evidence_domain_are_shown_and_served(
    gateway: GatewayApp, client: TestClient
) -> None:
    models = pytest.importorskip(
        "gateway.evidence.models", reason="the evidence domain is not in this gateway"
    )
    event_id = raise_event(gateway, "culvert-east")
    clip, photo = b"\x00\x00\x00\x18ftypmp42-a-clip", b"\xff\xd8\xff\xe0a-photo\xff\xd9"
    root = getattr(gateway.settings, "evidence_dir", gateway.settings.DATA_DIR / "evidence")
    with gateway.session_factory() as session, session.begin():
        event = session.get(Event, event_id)
        assert event is not None
        for evidence_id, kind, content_type, data, name in (
            ("clip-0001", "clip", "video/mp4", clip, "culvert-east/clip-0001.mp4"),
            ("photo-0001", "photo", "image/jpeg", photo, "culvert-east/photo-0001.jpg"),
        ):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
            session.add(
                models.EvidenceItem(
                    device_id="culvert-east",
                    evidence_id=evidence_id,
                    device_event_id=event.device_event_id,
                    kind=kind,
                    content_type=content_type,
                    caption=f"the {kind}",
                    taken_at=event.started_at,
                    parts=1,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    status=models.EvidenceStatus.COMPLETE,
                    file_name=name,
                )
            )
    log_in(client, issue_token(gateway, Role.VIEWER))
    page = client.get(f"/console/events/{event_id}").text
    assert f'<video controls preload="metadata" src="/console/events/{event_id}/evidence/clip-0001"' in page
    assert f'<img src="/console/events/{event_id}/evidence/photo-0001"' in page
    served = client.get(f"/console/events/{event_id}/evidence/clip-0001")
    assert (
        served.status_code == 200 and served.content == clip and served.headers["content-type"] == "video/mp4"
    )
    assert client.get(f"/console/events/{event_id}/evidence/photo-0001").content == photo
    assert client.get(f"/console/events/{event_id}/evidence/nothing-here").status_code == 404
    other = raise_event(gateway, "culvert-west")
    assert client.get(f"/console/events/{other}/evidence/clip-0001").status_code == 404  # not its evidence


def test_addresses_the_pages_never_send_get_an_error_page(gateway: GatewayApp, client: TestClient) -> None:
    log_in(client, issue_token(gateway, Role.VIEWER))
    for path, code in (
        ("/console/events/0", 422),
        ("/console/devices/no%20such", 422),
        ("/console/devices/no-such-device", 404),
        ("/console/desk?status=sleeping", 400),
        ("/console/governance?period=forever", 400),
        ("/console/devices/culvert-east?window=1y", 400),
    ):
        answer = client.get(path)
        assert answer.status_code == code, (path, answer.text[:200])
        assert answer.headers["content-type"].startswith("text/html") and "<h1>" in answer.text


@pytest.mark.parametrize(
    ("role", "buttons"),
    [
        (Role.DISPATCHER, {"urge"}),
        (Role.SUPERVISOR, {"urge", "supervise"}),
        (Role.ADMIN, {"urge", "supervise"}),
        (Role.DISPATCH_CENTRE, set()),
        (Role.VIEWER, set()),
    ],
)
def test_urge_and_supervise_buttons_follow_the_role(
    gateway: GatewayApp, client: TestClient, role: Role, buttons: set[str]
) -> None:
    event_id = raise_event(gateway, "culvert-east")
    log_in(client, issue_token(gateway, role, name=f"{role.value}-7"))
    page = client.get(f"/console/events/{event_id}").text
    shown = {a for a in ("urge", "supervise") if f"/act/{a}" in page}
    assert shown == buttons
    for action in ("urge", "supervise"):
        answer = client.post(f"/console/events/{event_id}/act/{action}", data={"csrf": csrf_of(client)})
        if action in buttons:
            assert answer.status_code == 303, answer.text[:300]
            assert answer.headers["location"].endswith(f"?done={action}")
        else:
            assert answer.status_code == 403
    with gateway.read_session_factory() as session:
        trail = events_service.audit_trail(session=session, event_id=event_id)
    assert sorted(line.action for line in trail if line.action in ("urge", "supervise")) == sorted(buttons)
    assert all(line.actor == f"{role.value}-7" for line in trail if line.action in buttons)
    assert state_of(gateway, event_id) == "dispatched"


def test_urge_is_offered_only_with_a_department_and_refused_when_finished(
    gateway: GatewayApp, client: TestClient
) -> None:
    event_id = raise_event(gateway, "culvert-east")
    log_in(client, issue_token(gateway, Role.SUPERVISOR))
    csrf = csrf_of(client)
    done = client.get(
        client.post(f"/console/events/{event_id}/act/urge", data={"csrf": csrf}).headers["location"]
    )
    assert f"The department was urged about event #{event_id}" in done.text
    with gateway.session_factory() as session, session.begin():
        row = session.get(Event, event_id)
        assert row is not None
        row.department, row.state = None, "new"  # back in the triage queue
    page = client.get(f"/console/events/{event_id}").text
    assert "/act/urge" not in page and "/act/supervise" in page
    refused = client.post(f"/console/events/{event_id}/act/urge", data={"csrf": csrf})
    assert refused.status_code == 409 and "no department to urge" in refused.text
    with gateway.session_factory() as session, session.begin():
        row = session.get(Event, event_id)
        assert row is not None
        row.state = "cancelled"
    assert "/act/supervise" not in client.get(f"/console/events/{event_id}").text
    refused = client.post(f"/console/events/{event_id}/act/supervise", data={"csrf": csrf})
    assert refused.status_code == 409 and "cannot supervise an event that is cancelled" in refused.text
