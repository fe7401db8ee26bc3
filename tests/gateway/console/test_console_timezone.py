"""The district's time zone (TIMEZONE): governance counts local calendar days on SQLite and PostgreSQL
alike, the CSV says which zone, and the console shows times in the zone with its offset."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.console import governance
from gateway.console.web import short_time
from gateway.db import make_engine, make_sessionmaker, migrate
from gateway.devices import service as devices_service
from gateway.events.models import Event
from gateway.events.policy import EVENT_POLICY_KEY, EventPolicy, default_routing
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.console.support import provision
from tests.gateway.console.test_console_http import log_in, raise_event
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL runs)
from tests.gateway.tokens import issue_token

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai, the same day
LATE_EVENING = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 June in Shanghai
EARLY_MORNING = datetime(
    2026, 5, 27, 17, 0, tzinfo=UTC
)  # 01:00 on 28 May in Shanghai: the period's first day


def test_the_time_zone_is_an_iana_name_checked_at_start() -> None:
    assert Settings().TIMEZONE == "UTC" and Settings().zone.key == "UTC"
    assert Settings(TIMEZONE="Asia/Shanghai").zone == SHANGHAI
    with pytest.raises(ValidationError, match=r"unknown time zone 'Asia/Beijing'.*IANA zone name"):
        Settings(TIMEZONE="Asia/Beijing")
    with pytest.raises(ValidationError, match=r"did you mean 'Asia/Shanghai'"):
        Settings(TIMEZONE="asia/shanghai")
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(TIMEZONE="../../etc/passwd")


def test_times_are_shown_in_the_zone_with_its_offset() -> None:
    assert short_time(LATE_EVENING) == "2026-06-01 23:30 UTC"
    assert short_time(LATE_EVENING, SHANGHAI) == "2026-06-02 07:30 UTC+8"
    assert short_time(LATE_EVENING, ZoneInfo("Asia/Kolkata")) == "2026-06-02 05:00 UTC+5:30"
    assert short_time(LATE_EVENING, ZoneInfo("America/St_Johns")) == "2026-06-01 21:00 UTC-2:30"
    assert short_time(None, SHANGHAI) == "—"


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The event store with two culverts and two resolved events near midnight, on either database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'governance.db'}"
    engine = make_engine(url)
    try:
        migrate(engine)
        factory = make_sessionmaker(engine)
        with factory() as session, session.begin():
            # (device, raised, handling time, SLA): late in the evening UTC and 3 h late; early morning
            # in Shanghai the day before the UTC period begins, on time.
            for device_id, raised, handled_h, sla_h in (
                ("culvert-late", LATE_EVENING, 3, 1),
                ("culvert-early", EARLY_MORNING, 1, 4),
            ):
                devices_service.provision(
                    session=session, device_id=device_id, site="riverside", device_type="culvert"
                )
                session.flush()
                session.add(
                    Event(
                        device_id=device_id,
                        site="riverside",
                        type="water_level",
                        severity="warning",
                        confidence=0.9,
                        state="resolved",
                        device_event_id=f"evt-{device_id}",
                        started_at=raised,
                        last_device_ts=raised,
                        department="dispatch-centre",
                        dispatched_at=raised,
                        deadline=raised + timedelta(hours=sla_h),
                        resolved_at=raised + timedelta(hours=handled_h),
                        created_at=raised,
                        updated_at=raised,
                    )
                )
        yield factory
    finally:
        engine.dispose()


def _figures(sessions: sessionmaker[Session], zone: ZoneInfo | None) -> governance.Governance:
    with sessions() as session:
        session.info[EVENT_POLICY_KEY] = EventPolicy(routing=default_routing(), clock=lambda: NOW)
        return governance.governance(session, period="7d", area_level="site", zone=zone)


def test_governance_days_are_the_districts_calendar_days(sessions: sessionmaker[Session]) -> None:
    utc = _figures(sessions, None)  # the default: UTC days, as before
    assert [day.isoformat() for day in utc.days][0::6] == ["2026-05-28", "2026-06-03"]
    assert utc.start == datetime(2026, 5, 28, tzinfo=UTC)
    assert utc.per_day_type == {"water_level": [0, 0, 0, 0, 1, 0, 0]}  # 1 June
    assert (utc.raised, utc.finished, utc.on_time, utc.on_time_rate) == (1, 1, 0, 0.0)
    assert utc.mean_handling_s == utc.median_handling_s == 3 * 3600
    assert _figures(sessions, ZoneInfo("UTC")).per_day_type == utc.per_day_type

    local = _figures(sessions, SHANGHAI)
    assert local.start == datetime(2026, 5, 28, tzinfo=SHANGHAI)  # local midnight: 27 May 16:00 UTC
    assert local.stop.isoformat() == "2026-06-03T20:00:00+08:00"
    # 23:30 UTC on 1 June is 2 June in Shanghai; the early event is on the period's first local day.
    assert local.per_day_type == {"water_level": [1, 0, 0, 0, 0, 1, 0]}
    assert local.per_day_area == {"riverside": [1, 0, 0, 0, 0, 1, 0]}
    assert (local.raised, local.finished, local.on_time, local.on_time_rate) == (2, 2, 1, 0.5)
    assert local.mean_handling_s == local.median_handling_s == 2 * 3600

    per_day = governance.to_csv(local, "per_day_type").splitlines()
    assert "2026-06-02,water_level,1" in per_day and "2026-06-01,water_level,0" in per_day
    assert "2026-05-28,water_level,1" in per_day
    summary = governance.to_csv(local, "summary").splitlines()
    assert "time_zone,Asia/Shanghai" in summary
    assert "period_start,2026-05-28T00:00:00+08:00" in summary
    assert "time_zone,UTC" in governance.to_csv(utc, "summary").splitlines()


@pytest.fixture
def shanghai_gateway(tmp_path: Path) -> Iterator[GatewayApp]:
    """An API-only gateway (no MQTT) set to the district's zone."""
    gateway = GatewayApp(
        Settings(DATA_DIR=tmp_path, HTTP_PORT=0, MQTT_URL="mqtt://127.0.0.1:9", TIMEZONE="Asia/Shanghai")
    )
    try:
        migrate(gateway.engine)
        provision(gateway)
        yield gateway
    finally:
        gateway.store.close()
        gateway.engine.dispose()


def test_the_console_shows_local_times_and_local_days(shanghai_gateway: GatewayApp) -> None:
    event_id = raise_event(shanghai_gateway, "culvert-east")
    with shanghai_gateway.read_session_factory() as session:
        event = session.get(Event, event_id)
        assert event is not None
        raised = event.created_at
    local = raised.astimezone(SHANGHAI)
    with TestClient(create_app(shanghai_gateway.services), follow_redirects=False) as client:
        log_in(client, issue_token(shanghai_gateway, Role.VIEWER))
        page = client.get(f"/console/events/{event_id}").text
        assert f"{local:%Y-%m-%d %H:%M} UTC+8</time>" in page
        assert re.search(r'<time datetime="[^"]+\+00:00" title="Asia/Shanghai">', page)  # UTC for machines
        assert 'data-timezone="Asia/Shanghai"' in page
        desk = client.get("/console/desk").text
        assert f"{local:%Y-%m-%d %H:%M} UTC+8" in desk
        screen = client.get("/console/governance", params={"period": "7d"}).text
        assert "days in Asia/Shanghai" in screen
        assert f'<th scope="row">{local.date().isoformat()}</th>' in screen
        csv = client.get("/console/governance/export.csv", params={"table": "per_day_type", "period": "7d"})
        assert f"{local.date().isoformat()},water_level,1" in csv.text.splitlines()
