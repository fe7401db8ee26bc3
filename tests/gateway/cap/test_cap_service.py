"""CAP messages of real events (the gateway's event service on SQLite): chains, area, identity, feed links.

No broker: device messages go through ``apply_device_event`` as the ingest applies them, people's
actions through ``act``, and the API through FastAPI's test client.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity
from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.db import migrate, utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.lifecycle.models import Action, Actor
from gateway.events.models import EventCapMessage
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.cap.schemas import CAP_TIME, NS, cap_times, deviations_from_the_list, schema_errors
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL runs)
from tests.gateway.tokens import bearer, issue_token

SITE = "riverside"
PLACED = "culvert-1"  # registered with a position, grid and town
UNPLACED = "culvert-2"
PUBLIC_URL = "https://citywatch.riverside.example"
CENTRE = Actor(name="dispatch-centre", role=Role.DISPATCH_CENTRE)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0) - timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _gateway(data_dir: Path, clock: Clock, **settings: Any) -> GatewayApp:
    app = GatewayApp(
        Settings(
            DATA_DIR=data_dir,
            HTTP_PORT=0,
            MQTT_URL="mqtt://127.0.0.1:9",  # never started: no broker needed
            PUBLIC_URL=PUBLIC_URL + "/",
            CAP_CONTACT="Riverside duty desk +86 21 5555 0100",
            **settings,
        ),
        clock=clock,
    )
    migrate(app.engine)
    with app.session_factory() as session, session.begin():
        devices_service.provision(
            session=session,
            device_id=PLACED,
            site=SITE,
            device_type="culvert",
            grid="g-12",
            town="xinqiao",
            latitude=31.2304,
            longitude=121.4737,
            description="Xinqiao Rd culvert, north lane",
        )
        devices_service.provision(session=session, device_id=UNPLACED, site=SITE, device_type="culvert")
    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[GatewayApp]:
    db_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    app = _gateway(tmp_path / "gw", clock, CAP_VALIDITY_S={"water_level": 7200}, DB_URL=db_url)
    try:
        yield app
    finally:
        app.store.close()
        app.engine.dispose()


def _device_says(
    app: GatewayApp, clock: Clock, event_id: str, seq: int, *, device_id: str = PLACED, end: bool = False
) -> int:
    phase = EventPhase.END if end else EventPhase.NEW if seq == 0 else EventPhase.UPDATE
    message = EventMessage(
        device_id=device_id,
        event_id=event_id,
        seq=seq,
        phase=phase,
        type=EventType.WATER_LEVEL,
        severity=Severity.INFO if end else Severity.CRITICAL,
        confidence=1.0,
        ts=clock.now,
        started_at=clock.now,
        details={"level_cm": 4.0 if end else 31.0, "peak_cm": 31.0, "threshold_cm": 10.0},
    )
    with app.session_factory() as session, session.begin():
        device = session.get(Device, device_id)
        assert device is not None
        _outcome, event = events_service.apply_device_event(session=session, device=device, message=message)
        assert event is not None, _outcome
        return event.id


def _act(app: GatewayApp, event_id: int, action: Action, note: str | None = None) -> None:
    with app.session_factory() as session, session.begin():
        events_service.act(session=session, event_id=event_id, action=action, actor=CENTRE, note=note)


def _messages(app: GatewayApp, event_id: int | None = None) -> list[EventCapMessage]:
    query = select(EventCapMessage).order_by(EventCapMessage.id)
    if event_id is not None:
        query = query.where(EventCapMessage.event_id == event_id)
    with app.read_session_factory() as session:
        return list(session.scalars(query))


def _text(xml: str, path: str) -> list[str]:
    return [node.text for node in etree.fromstring(xml.encode()).findall(path, NS)]


def test_no_update_after_a_cancel_a_re_raised_condition_starts_a_new_chain(
    gateway: GatewayApp, clock: Clock
) -> None:
    """Flooded, over, closed; the water comes back within the suppression window: the same work item is
    re-raised, and its alert is a new Alert that references the cancelled chain, not an Update of it."""
    event_id = _device_says(gateway, clock, "evt-flood-0001", 0)
    clock.advance(minutes=20)
    _device_says(gateway, clock, "evt-flood-0001", 1, end=True)
    clock.advance(minutes=1)
    _act(gateway, event_id, Action.ACCEPT)
    _act(gateway, event_id, Action.RESOLVE, note="culvert cleared")
    clock.advance(minutes=1)
    _act(gateway, event_id, Action.CLOSE)
    clock.advance(minutes=2)
    assert _device_says(gateway, clock, "evt-flood-0002", 0) == event_id  # the same work item, re-raised
    clock.advance(minutes=5)
    _act(gateway, event_id, Action.CANCEL, note="a blocked drain upstream, not the culvert")

    messages = _messages(gateway, event_id)
    assert [m.msg_type for m in messages] == [
        "Alert",  # raised
        "Update",  # condition over
        "Update",  # accepted
        "Update",  # resolved
        "Cancel",  # closed: the chain ends (AllClear)
        "Alert",  # re-raised: a new chain
        "Cancel",  # cancelled as a false alarm
    ]
    for earlier, later in itertools.pairwise(messages):
        assert not (earlier.msg_type == "Cancel" and later.msg_type == "Update")
    identifiers = [m.identifier for m in messages]
    assert len(set(identifiers)) == len(identifiers)

    def references(message: EventCapMessage) -> list[str]:
        listed = _text(message.xml, "cap:references")
        return [reference.split(",")[1] for reference in listed[0].split()] if listed else []

    assert references(messages[4]) == identifiers[:4]
    assert references(messages[5]) == identifiers[:5]  # the new chain's Alert names the cancelled chain
    assert references(messages[6]) == identifiers[5:6]  # its Cancel cancels the new chain only
    incidents = {_text(m.xml, "cap:incidents")[0] for m in messages}
    assert len(incidents) == 1  # one work item, one incident
    for message in messages:
        assert schema_errors(message.xml) == [], message.identifier
        assert deviations_from_the_list(message.xml) == []


def test_an_update_for_a_condition_that_is_over_says_past_and_all_clear(
    gateway: GatewayApp, clock: Clock
) -> None:
    event_id = _device_says(gateway, clock, "evt-flood-0001", 0)
    clock.advance(minutes=20)
    _device_says(gateway, clock, "evt-flood-0001", 1, end=True)
    raised, over = _messages(gateway, event_id)
    assert (raised.msg_type, over.msg_type) == ("Alert", "Update")
    assert _text(raised.xml, "cap:info/cap:urgency") == ["Immediate"]
    assert _text(raised.xml, "cap:info/cap:severity") == ["Severe"]
    assert _text(over.xml, "cap:info/cap:urgency") == ["Past"]
    assert _text(over.xml, "cap:info/cap:severity") == ["Minor"]
    assert _text(over.xml, "cap:info/cap:responseType") == ["AllClear"]


def test_every_message_has_expires_contact_and_utc_as_minus_zero(gateway: GatewayApp, clock: Clock) -> None:
    event_id = _device_says(gateway, clock, "evt-flood-0001", 0)
    clock.advance(minutes=3)
    _act(gateway, event_id, Action.ACCEPT)
    for message in _messages(gateway, event_id):
        sent = datetime.fromisoformat(_text(message.xml, "cap:sent")[0])
        expires = datetime.fromisoformat(_text(message.xml, "cap:info/cap:expires")[0])
        assert expires - sent == timedelta(seconds=7200)  # CITYWATCH_CAP_VALIDITY_S for water_level
        assert _text(message.xml, "cap:info/cap:contact") == ["Riverside duty desk +86 21 5555 0100"]
        times = cap_times(message.xml)
        assert times and all(CAP_TIME.match(value) for value in times), times
        assert _text(message.xml, "cap:info/cap:web") == [f"{PUBLIC_URL}/events/{event_id}"]


def test_the_area_comes_from_the_device_registry(gateway: GatewayApp, clock: Clock) -> None:
    placed = _messages(gateway, _device_says(gateway, clock, "evt-flood-0001", 0))[0].xml
    unplaced = _messages(gateway, _device_says(gateway, clock, "evt-flood-0002", 0, device_id=UNPLACED))[
        0
    ].xml
    area = "cap:info/cap:area/"
    assert _text(placed, area + "cap:areaDesc") == ["Xinqiao Rd culvert, north lane"]
    assert _text(placed, area + "cap:circle") == ["31.230400,121.473700 0.1"]
    geocodes = dict(
        zip(
            _text(placed, area + "cap:geocode/cap:valueName"),
            _text(placed, area + "cap:geocode/cap:value"),
            strict=True,
        )
    )
    assert geocodes == {"citywatch:site": SITE, "citywatch:grid": "g-12", "citywatch:town": "xinqiao"}
    assert _text(unplaced, area + "cap:circle") == []  # no position registered: no circle
    assert _text(unplaced, area + "cap:geocode/cap:valueName") == ["citywatch:site"]
    assert _text(unplaced, area + "cap:areaDesc") == [f"{SITE} (device {UNPLACED})"]
    for xml in (placed, unplaced):
        assert schema_errors(xml) == []


def test_identifiers_stay_unique_when_the_database_is_rebuilt(tmp_path: Path, clock: Clock) -> None:
    """The same first event of two fresh databases: same event id, different CAP identifiers."""
    seen = []
    for name in ("before", "after-rebuild"):
        app = _gateway(tmp_path / name, clock)
        try:
            event_id = _device_says(app, clock, "evt-flood-0001", 0)
            assert event_id == 1
            seen.append(_messages(app)[0])
        finally:
            app.store.close()
            app.engine.dispose()
    first, second = seen
    assert first.identifier != second.identifier
    assert _text(first.xml, "cap:incidents") != _text(second.xml, "cap:incidents")


def test_feed_entries_link_to_each_cap_document_on_the_public_url(gateway: GatewayApp, clock: Clock) -> None:
    event_id = _device_says(gateway, clock, "evt-flood-0001", 0)
    clock.advance(minutes=1)
    _act(gateway, event_id, Action.ACCEPT)
    stored = {m.identifier: m.xml for m in _messages(gateway)}
    with TestClient(create_app(gateway.services)) as client:
        headers = bearer(issue_token(gateway, Role.VIEWER))
        feed = client.get("/cap/feed", headers=headers)
        assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
        document = etree.fromstring(feed.content)
        assert document.findtext("atom:id", namespaces=NS) == f"{PUBLIC_URL}/cap/feed"
        assert document.find("atom:link[@rel='self']", NS).get("href") == f"{PUBLIC_URL}/cap/feed"
        entries = document.findall("atom:entry", NS)
        assert len(entries) == len(stored) == 2
        for entry in entries:
            link = entry.find("atom:link[@rel='alternate']", NS)
            assert link is not None and link.get("type") == "application/cap+xml"
            href = link.get("href")
            assert (
                href.startswith(f"{PUBLIC_URL}/cap/alerts/")
                and entry.findtext("atom:id", namespaces=NS) == href
            )
            answer = client.get(href.removeprefix(PUBLIC_URL), headers=headers)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(
                "application/cap+xml"
            )
            assert answer.text == stored[href.rsplit("/", 1)[1]]
        assert client.get("/cap/alerts/citywatch.1.nope.0", headers=headers).status_code == 404
        assert client.get(f"/cap/alerts/{next(iter(stored))}").status_code == 401


def test_cap_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWATCH_CAP_VALIDITY_S", '{"water_level": 43200, "ebike_in_elevator": 900}')
    assert Settings().CAP_VALIDITY_S == {EventType.WATER_LEVEL: 43200, EventType.EBIKE_IN_ELEVATOR: 900}
    for bad, reason in [
        ('{"flood": 60}', "water_level"),
        ('{"water_level": 0}', "positive"),
        ("6h", "CAP_VALIDITY_S"),
    ]:
        monkeypatch.setenv("CITYWATCH_CAP_VALIDITY_S", bad)
        with pytest.raises(ValueError, match=reason):
            Settings()


def test_a_change_after_the_cancel_is_another_cancel_of_the_ended_chain(
    gateway: GatewayApp, clock: Clock
) -> None:
    """Closed while the water was still up; the device's end arrives afterwards: no Update of the ended
    alert, a Cancel of the same chain again."""
    event_id = _device_says(gateway, clock, "evt-flood-0001", 0)
    _act(gateway, event_id, Action.ACCEPT)
    _act(gateway, event_id, Action.RESOLVE, note="road closed, pumps running")
    _act(gateway, event_id, Action.CLOSE)
    clock.advance(minutes=30)
    _device_says(gateway, clock, "evt-flood-0001", 1, end=True)
    messages = _messages(gateway, event_id)
    assert [m.msg_type for m in messages] == ["Alert", "Update", "Update", "Cancel", "Cancel"]
    second_cancel = messages[4]
    chain = [m.identifier for m in messages[:4]]
    assert [ref.split(",")[1] for ref in _text(second_cancel.xml, "cap:references")[0].split()] == chain
    assert schema_errors(second_cancel.xml) == []
