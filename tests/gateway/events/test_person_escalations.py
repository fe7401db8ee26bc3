"""People urge and supervise open events through the API: the same transition, audit line and push the
escalation loop makes, by the caller; refused for roles that may not and for events no longer open.
Through real parts: the event hub of ``test_event_hub`` (Mosquitto, the gateway, HTTP receivers)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from gateway.auth.roles import Role
from gateway.dispatch.models import OutboxMessage
from gateway.events.models import Event
from tests.gateway.events import test_event_hub
from tests.gateway.events.test_event_hub import Hub, _json_bodies
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL runs)
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway, its receivers and Mosquitto per test
hub = test_event_hub.hub  # the fixture


def _lines(detail: dict[str, object], action: str) -> list[dict[str, object]]:
    audit = detail["audit"]
    assert isinstance(audit, list)
    return [line for line in audit if line["action"] == action]


@pytest.mark.parametrize("hub", ["sqlite", "postgresql"], indirect=True)
def test_a_dispatcher_urges_and_a_supervisor_supervises_with_audit_and_push(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-urge-00001")
    with (
        hub.api() as admin,
        hub.api(Role.DISPATCHER) as dispatcher,
        hub.api(Role.SUPERVISOR) as supervisor,
    ):
        event_id = hub.wait_event(admin, device_id="culvert-1", state="dispatched")["id"]
        wait_until(lambda: len(hub.transport.received()) == 1, what="the dispatch pushed")
        hub.clock.advance(minutes=5)  # well in time: a person need not wait for the deadline

        note = "water over the kerb at the school gate; send the pump crew now"
        urged = dispatcher.post(f"/events/{event_id}/urge", json={"note": note})
        assert urged.status_code == 200, urged.text
        detail = urged.json()
        assert detail["state"] == "dispatched" and detail["department"] == "transport_bureau"
        (line,) = _lines(detail, "urge")
        assert (line["actor"], line["role"], line["note"]) == ("test-dispatcher", "dispatcher", note)
        assert (line["from_status"], line["to_status"]) == ("dispatched", "dispatched")
        assert admin.get(f"/events/{event_id}/cap").text.count(note) == 1  # the push carries the note

        supervised = supervisor.post(f"/events/{event_id}/supervise", json={})
        assert supervised.status_code == 200, supervised.text
        (line,) = _lines(supervised.json(), "supervise")
        assert (line["actor"], line["role"]) == ("test-supervisor", "supervisor")
        assert supervisor.post(f"/events/{event_id}/urge", json={"note": "again"}).status_code == 200

        wait_until(lambda: len(hub.transport.received()) == 4, what="each escalation pushed")
        assert [b["type"] for b in _json_bodies(hub.transport)] == [
            "event.created",
            "event.urge",
            "event.supervise",
            "event.urge",
        ]
        pushed = _json_bodies(hub.transport)[1]["data"]
        assert pushed["id"] == event_id and pushed["state"] == "dispatched"

        # A person's escalations leave the loop's schedule alone: past the deadline it still supervises.
        assert supervised.json()["escalations_sent"] == 0
        hub.clock.advance(minutes=26)

        def supervised_by_gateway() -> list[dict[str, object]]:
            # This pass or the loop's own (whichever holds the cluster lock first) does the one escalation.
            hub.gateway.escalation.run_once()
            lines = _lines(admin.get(f"/events/{event_id}").json(), "supervise")
            return [a for a in lines if a["actor"] == "gateway"]

        wait_until(supervised_by_gateway, what="the loop's escalation past the deadline")
        by_gateway = [a for a in _lines(admin.get(f"/events/{event_id}").json(), "supervise")]
        assert [(a["actor"], a["note"]) for a in by_gateway] == [
            ("test-supervisor", ""),
            ("gateway", "overdue by 1 min; escalation 1"),
        ]


def test_roles_that_may_not_are_refused_and_nothing_is_recorded(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-urge-00002")
    with (
        hub.api() as admin,
        hub.api(Role.DISPATCHER) as dispatcher,
        hub.api(Role.VIEWER) as viewer,
        hub.api(Role.INSTALLER) as installer,
        hub.api(Role.DISPATCH_CENTRE) as centre,
    ):
        event_id = hub.wait_event(admin, device_id="culvert-1", state="dispatched")["id"]
        before = len(admin.get(f"/events/{event_id}").json()["audit"])
        for client in (viewer, installer, centre):
            for action in ("urge", "supervise"):
                answer = client.post(f"/events/{event_id}/{action}", json={"note": "hurry"})
                assert answer.status_code == 403, (action, answer.text)
                assert "may not do this" in answer.json()["detail"]
        # A dispatcher urges, but supervising is the supervisors' (the lifecycle table says so).
        refused = dispatcher.post(f"/events/{event_id}/supervise", json={})
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith("role 'dispatcher' may not supervise an event")
        assert len(admin.get(f"/events/{event_id}").json()["audit"]) == before
        assert dispatcher.post(f"/events/{event_id}/urge", json={"rating": 5}).status_code == 422


def test_a_finished_event_or_one_without_a_department_is_refused_with_the_reason(hub: Hub) -> None:
    hub.raise_event("culvert-1", "evt-urge-00003")
    hub.raise_event("culvert-2", "evt-urge-00004")
    with (
        hub.api() as admin,
        hub.api(Role.SUPERVISOR) as supervisor,
        hub.api(Role.DISPATCH_CENTRE) as centre,
    ):
        closed_id = hub.wait_event(admin, device_id="culvert-1", state="dispatched")["id"]
        triage_id = hub.wait_event(admin, device_id="culvert-2", state="dispatched")["id"]
        assert centre.post(f"/events/{closed_id}/accept", json={}).status_code == 200
        assert centre.post(f"/events/{closed_id}/resolve", json={"note": "cleared"}).status_code == 200
        assert centre.post(f"/events/{closed_id}/close", json={}).json()["state"] == "closed"
        trail = len(admin.get(f"/events/{closed_id}").json()["audit"])
        for action in ("urge", "supervise"):
            refused = supervisor.post(f"/events/{closed_id}/{action}", json={"note": "late"})
            assert refused.status_code == 409
            assert refused.json()["detail"] == (
                f"cannot {action} an event that is closed: {action} applies only to accepted, "
                "dispatched, in_progress, new events"
            )
        assert len(admin.get(f"/events/{closed_id}").json()["audit"]) == trail

        # Returned as not theirs: it waits in the triage queue, with no department to urge.
        returned = centre.post(f"/events/{triage_id}/reject", json={"note": "not ours"}).json()
        assert returned["state"] == "new" and returned["department"] is None
        no_one = supervisor.post(f"/events/{triage_id}/urge", json={})
        assert no_one.status_code == 409 and "no department to urge" in no_one.json()["detail"]
        assert supervisor.post(f"/events/{triage_id}/supervise", json={}).status_code == 200
        assert admin.post("/events/999999/urge", json={}).status_code == 404
    # Nothing queued for the refusals; the triage event's supervise had no department to push to.
    with hub.gateway.read_session_factory() as session:
        queued = session.scalars(select(OutboxMessage.message_type).order_by(OutboxMessage.id)).all()
    assert queued == ["event.created"] * 2 + ["event.accept", "event.resolve", "event.close", "event.reject"]


@pytest.mark.parametrize("hub", ["postgresql"], indirect=True)
def test_an_escalation_pass_locks_only_the_events_it_escalates(hub: Hub) -> None:
    """An overdue event past its last urge is not locked by the next pass: a writer holding it (the ingest
    folding a repeat in, an operator acting) does not hold up the escalations due elsewhere."""
    loop = hub.gateway.escalation
    with hub.api() as admin:
        hub.raise_event("culvert-1", "evt-quiet-0001")
        quiet = hub.wait_event(admin, device_id="culvert-1", state="dispatched")["id"]
        hub.clock.advance(minutes=31)
        for _ in range(4):  # supervise, then urge up to max_urges (3)
            assert loop.run_once() == 1
            hub.clock.advance(minutes=10)
        assert loop.run_once() == 0  # overdue, but nothing more to send
        hub.raise_event("culvert-2", "evt-due-0001")
        hub.wait_event(admin, device_id="culvert-2", state="dispatched")
    hub.clock.advance(minutes=31)

    done: list[int] = []
    with hub.gateway.session_factory() as holder, holder.begin():
        holder.scalars(
            select(Event).where(Event.id == quiet).with_for_update()
        ).one()  # held, as a writer would
        passing = threading.Thread(target=lambda: done.append(loop.run_once()), daemon=True)
        passing.start()
        passing.join(timeout=30)
        assert done == [1], "the pass waited on an event it had nothing to send for"
