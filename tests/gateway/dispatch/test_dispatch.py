"""The dispatch outbox against the dispatch-centre simulator over real HTTP (no MQTT needed here)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import EventMessage
from gateway.db import make_engine, make_sessionmaker, migrate, read_sessionmaker
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.dispatch import service as dispatch_service
from gateway.dispatch.models import OutboxMessage, OutboxStatus, WebhookEndpoint
from gateway.dispatch.worker import DeliveryOptions, DispatchWorker
from gateway.events import service as events_service
from gateway.events.models import Event
from simulators.dispatch_centre import Behaviour, DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES
from tests.gateway.helpers import water_event
from tests.support.polling import wait_until


@dataclass
class Outbox:
    sessions: sessionmaker[Session]
    worker: DispatchWorker

    def raise_event(self, device_id: str, event_id: str, seq: int) -> None:
        message = EventMessage.model_validate_json(water_event(device_id, event_id, seq))
        with self.sessions() as session, session.begin():
            device = devices_service.get(session=session, device_id=device_id)
            assert device is not None
            events_service.apply_device_event(session=session, device=device, message=message)
        self.worker.wake()

    def rows(self) -> list[OutboxMessage]:
        with self.sessions() as session:
            return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))

    def endpoint(self) -> WebhookEndpoint:
        with self.sessions() as session:
            endpoint = session.scalars(select(WebhookEndpoint)).one()
            return endpoint


def _make_outbox(
    db_path: Path,
    sim: DispatchCentreSimulator,
    options: DeliveryOptions,
    *,
    devices: Sequence[str] = ("culvert-1", "culvert-2", "culvert-3"),
) -> tuple[Outbox, object]:
    engine = make_engine(f"sqlite:///{db_path}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        dispatch_service.ensure_endpoint(
            session=session,
            name="dispatch-centre",
            url=sim.url,
            secrets=[sim.secret],
            department="dispatch-centre",
        )
        for device_id in devices:
            if devices_service.get(session=session, device_id=device_id) is None:
                devices_service.create(
                    session=session,
                    device_in=DeviceCreate(id=device_id, site="riverside", device_type="culvert"),
                )
    worker = DispatchWorker(
        session_factory=sessions, read_session_factory=read_sessionmaker(engine), options=options
    )
    return Outbox(sessions=sessions, worker=worker), engine


@pytest.fixture
def outbox(tmp_path: Path, dispatch_centre: DispatchCentreSimulator) -> Iterator[Outbox]:
    box, engine = _make_outbox(tmp_path / "gw.db", dispatch_centre, FAST_RETRIES)
    yield box
    box.worker.stop()
    engine.dispose()  # type: ignore[attr-defined]


def _assert_in_order_per_event(sim: DispatchCentreSimulator) -> None:
    seen: dict[int, list[int]] = {}
    for webhook in sim.received():
        seen.setdefault(webhook.event["id"], []).append(webhook.event["last_seq"])
    for event_id, seqs in seen.items():
        assert seqs == sorted(seqs), f"event {event_id} was delivered out of order: {seqs}"


@pytest.mark.slow
def test_dispatch_centre_down_then_up_receives_every_event_once(
    outbox: Outbox, dispatch_centre: DispatchCentreSimulator
) -> None:
    dispatch_centre.stop()  # connection refused
    outbox.worker.start()
    for n, device_id in enumerate(("culvert-1", "culvert-2", "culvert-3")):
        outbox.raise_event(device_id, f"evt-down-{n:04d}", 0)
        outbox.raise_event(device_id, f"evt-down-{n:04d}", 1)
    wait_until(lambda: outbox.worker.failed_attempts >= 6, what="failed attempts while the centre is down")
    assert all(row.status == OutboxStatus.PENDING for row in outbox.rows())
    assert max(row.attempts for row in outbox.rows() if row.message_type == "event.created") >= 2

    dispatch_centre.start()  # same port
    assert dispatch_centre.wait_for(6, timeout_s=20), dispatch_centre.summary()
    wait_until(lambda: all(r.status == OutboxStatus.DELIVERED for r in outbox.rows()), what="outbox drained")
    assert len(dispatch_centre.received()) == 6
    assert dispatch_centre.duplicates == 0
    assert {w.webhook_id for w in dispatch_centre.received()} == {r.webhook_id for r in outbox.rows()}
    _assert_in_order_per_event(dispatch_centre)


@pytest.mark.slow
def test_a_recovered_centre_gets_the_whole_backlog_at_once_in_order(
    tmp_path: Path, dispatch_centre: DispatchCentreSimulator
) -> None:
    """Backoffs that have grown to 4-8 s during an outage do not delay the catch-up: once the centre
    answers again, every waiting notification follows at once, oldest first."""
    devices = [f"culvert-{n}" for n in range(1, 21)]
    slow_backoff = DeliveryOptions(base_delay_s=0.5, max_delay_s=30.0, timeout_s=2.0, probe_max_delay_s=1.0)
    box, engine = _make_outbox(tmp_path / "gw.db", dispatch_centre, slow_backoff, devices=devices)
    try:
        dispatch_centre.set_behaviour(fail_rate=1.0, fail_status=503)
        box.worker.start()
        for n, device_id in enumerate(devices):  # 20 events, one notification each
            box.raise_event(device_id, f"evt-outage-{n:04d}", 0)
            time.sleep(0.05)
        time.sleep(5.0)  # long enough for per-notification backoffs of 4-8 s
        oldest, *rest = box.rows()
        assert oldest.attempts >= 3 and all(row.status == OutboxStatus.PENDING for row in rest)
        # A centre that is down gets one request at a time, not one per waiting notification.
        assert sum(row.attempts for row in rest) <= len(rest)

        dispatch_centre.set_behaviour(fail_rate=0.0)
        recovered = time.time()
        assert dispatch_centre.wait_for(20, timeout_s=15), dispatch_centre.summary()
        arrived = dispatch_centre.received()
        assert arrived[-1].received_at - recovered < 2.0, "the backlog waited out its backoffs"
        assert [w.webhook_id for w in arrived] == [row.webhook_id for row in box.rows()]  # oldest first
        assert dispatch_centre.duplicates == 0
    finally:
        box.worker.stop()
        engine.dispose()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_failing_centre_is_retried_with_the_same_webhook_id(
    outbox: Outbox, dispatch_centre: DispatchCentreSimulator
) -> None:
    dispatch_centre.set_behaviour(fail_rate=1.0, fail_status=503)
    outbox.worker.start()
    outbox.raise_event("culvert-1", "evt-fail-0001", 0)
    wait_until(lambda: outbox.rows()[0].attempts >= 3, what="three failed attempts")
    assert "503" in (outbox.rows()[0].last_error or "")
    assert dispatch_centre.received() == []

    dispatch_centre.set_behaviour(fail_rate=0.0)
    assert dispatch_centre.wait_for(1)
    (webhook,) = dispatch_centre.received()
    assert webhook.webhook_id == outbox.rows()[0].webhook_id
    assert webhook.message_type == "event.created"


@pytest.mark.slow
def test_429_retry_after_is_honoured(outbox: Outbox, dispatch_centre: DispatchCentreSimulator) -> None:
    dispatch_centre.set_behaviour(throttle_retry_after_s=30)
    outbox.worker.start()
    outbox.raise_event("culvert-1", "evt-429-00001", 0)
    wait_until(lambda: outbox.rows()[0].attempts == 1, what="the throttled attempt")
    row = outbox.rows()[0]
    # the worker's own backoff would be under 0.3 s; Retry-After asks for 30 s
    assert row.next_attempt_at - row.created_at >= timedelta(seconds=29)
    assert row.status == OutboxStatus.PENDING and "429" in (row.last_error or "")


@pytest.mark.slow
def test_410_gone_disables_the_endpoint_and_keeps_the_notifications(
    outbox: Outbox, dispatch_centre: DispatchCentreSimulator
) -> None:
    dispatch_centre.set_behaviour(fail_rate=1.0, fail_status=410)
    outbox.worker.start()
    outbox.raise_event("culvert-1", "evt-gone-0001", 0)
    wait_until(lambda: not outbox.endpoint().enabled, what="the endpoint to be disabled")
    assert "410" in (outbox.endpoint().disabled_reason or "")
    (row,) = outbox.rows()
    assert row.status == OutboxStatus.PENDING and row.attempts == 1

    # New changes are not queued for a disabled endpoint; re-enabling (config change) delivers the backlog.
    dispatch_centre.set_behaviour(fail_rate=0.0)
    with outbox.sessions() as session, session.begin():
        dispatch_service.ensure_endpoint(
            session=session,
            name="dispatch-centre",
            url=dispatch_centre.base_url + "/",
            secrets=[dispatch_centre.secret],
            department="dispatch-centre",
        )
    outbox.worker.wake()
    assert dispatch_centre.wait_for(1)


@pytest.mark.slow
def test_wrong_secret_is_refused_by_the_centre_and_retried(
    outbox: Outbox, dispatch_centre: DispatchCentreSimulator
) -> None:
    with outbox.sessions() as session, session.begin():
        session.execute(update(WebhookEndpoint).values(secret="whsec_" + "QUJD" * 8))
    outbox.worker.start()
    outbox.raise_event("culvert-1", "evt-sig-00001", 0)
    wait_until(lambda: dispatch_centre.invalid_signatures >= 2, what="signature refusals")
    assert dispatch_centre.received() == []
    assert outbox.rows()[0].status == OutboxStatus.PENDING and "401" in (outbox.rows()[0].last_error or "")


@pytest.mark.slow
def test_per_event_order_is_kept_with_a_slow_flaky_centre(
    outbox: Outbox, dispatch_centre: DispatchCentreSimulator
) -> None:
    dispatch_centre.set_behaviour(fail_rate=0.5, delay_s=0.02)
    for seq in range(8):
        outbox.raise_event("culvert-1", "evt-order-001", seq)
        outbox.raise_event("culvert-2", "evt-order-002", seq)
    outbox.worker.start()
    assert dispatch_centre.wait_for(16, timeout_s=30), dispatch_centre.summary()
    assert dispatch_centre.summary()["refused"] > 0  # the failures did happen
    _assert_in_order_per_event(dispatch_centre)
    assert dispatch_centre.duplicates == 0


@pytest.mark.slow
def test_outbox_survives_a_restart_and_redelivery_keeps_the_webhook_id(
    tmp_path: Path, dispatch_centre: DispatchCentreSimulator
) -> None:
    first, engine = _make_outbox(tmp_path / "gw.db", dispatch_centre, FAST_RETRIES)
    first.raise_event("culvert-1", "evt-restart-01", 0)  # committed, never sent: the worker never ran
    engine.dispose()  # type: ignore[attr-defined]

    second, engine = _make_outbox(tmp_path / "gw.db", dispatch_centre, FAST_RETRIES)
    second.worker.start()
    try:
        assert dispatch_centre.wait_for(1)
        wait_until(lambda: second.rows()[0].status == OutboxStatus.DELIVERED, what="row marked delivered")
        # A crash between the centre's 200 and our commit means sending again: same webhook-id.
        with second.sessions() as session, session.begin():
            session.execute(update(OutboxMessage).values(status=OutboxStatus.PENDING))
        second.worker.wake()
        wait_until(lambda: dispatch_centre.duplicates == 1, what="the repeat to be recognised")
        assert len(dispatch_centre.received()) == 1
    finally:
        second.worker.stop()
        engine.dispose()  # type: ignore[attr-defined]


def test_event_change_and_its_notification_commit_together(outbox: Outbox) -> None:
    message = EventMessage.model_validate_json(water_event("culvert-1", "evt-atomic-01", 0))
    with outbox.sessions() as session:
        device = devices_service.get(session=session, device_id="culvert-1")
        assert device is not None
        events_service.apply_device_event(session=session, device=device, message=message)
        session.flush()
        assert session.scalar(select(OutboxMessage.id)) is not None
        session.rollback()  # e.g. the process dies before the commit
    with outbox.sessions() as session:
        assert session.scalar(select(Event.id)) is None
        assert session.scalar(select(OutboxMessage.id)) is None


def test_signature_headers_verify_with_the_reference_library() -> None:
    from standardwebhooks.webhooks import Webhook

    from gateway.dispatch.worker import signed_headers
    from simulators.dispatch_centre import new_secret

    secret = new_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_abc", payload='{"type":"event.created"}')
    assert Webhook(secret).verify('{"type":"event.created"}', headers) == {"type": "event.created"}
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify('{"type":"event.created"}', headers)


def test_every_secret_of_a_rotation_signs_and_a_cap_body_keeps_its_media_type() -> None:
    from standardwebhooks.webhooks import Webhook

    from gateway.dispatch.worker import signed_headers
    from simulators.dispatch_centre import new_secret

    old, new = new_secret(), new_secret()
    body = '<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>'
    headers = signed_headers(
        secret=f"{old} {new}", webhook_id="msg_rot", payload=body, content_type="application/cap+xml"
    )
    assert headers["content-type"] == "application/cap+xml"
    assert [part.split(",")[0] for part in headers["webhook-signature"].split(" ")] == ["v1", "v1"]
    for secret in (old, new):
        assert (
            Webhook(secret).verify(body, headers, json_parse=False) is None
        )  # raises when it does not match
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers, json_parse=False)


def test_behaviour_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        Behaviour(fail_rate=2.0)
