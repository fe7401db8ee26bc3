"""Outbox claims between dispatch workers of different gateways on one PostgreSQL (no processes needed).

A claimed notification is sent by its claimant only; a claim left by a worker that died runs out and
another worker sends the notification then; and nothing of the same endpoint overtakes it meanwhile.
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from citywatch.protocol.messages import EventType, Severity
from gateway.db import make_engine, make_sessionmaker, migrate, utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.dispatch import service as dispatch_service
from gateway.dispatch.models import OutboxMessage, OutboxStatus
from gateway.dispatch.worker import DeliveryOptions, DispatchWorker
from gateway.events import service as events_service
from gateway.events.policy import EVENT_POLICY_KEY, EventPolicy, default_routing
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.slow  # a private PostgreSQL cluster (module fixture): ~3 s

LEASE = DeliveryOptions(base_delay_s=0.05, max_delay_s=0.3, timeout_s=0.5, lease_s=1.5)


def test_a_dead_workers_claim_runs_out_then_another_sends_in_order(
    postgres_server: PostgresServer, dispatch_centre: DispatchCentreSimulator, webhook_secret: str
) -> None:
    engine = make_engine(postgres_server.create_database(f"claims_{uuid.uuid4().hex[:8]}"))
    migrate(engine)
    sessions = make_sessionmaker(engine)
    policy = EventPolicy(
        routing=default_routing(dispatch_url=dispatch_centre.url, dispatch_secret=webhook_secret)
    )
    sessions.configure(info={EVENT_POLICY_KEY: policy})
    with sessions() as session, session.begin():
        dispatch_service.configure_endpoints(session=session, table=policy.routing)
        for n in range(3):
            device = devices_service.create(
                session=session,
                device_in=DeviceCreate(id=f"culvert-{n}", site="riverside", device_type="culvert"),
            )
            events_service.raise_gateway_event(
                session=session, device=device, event_type=EventType.DEVICE_OFFLINE, severity=Severity.WARNING,
                details={"last_seen": "2026-06-01T08:00:00+00:00", "offline_after_s": 600.0, "by_will": False},
            )  # fmt: skip
    dead = DispatchWorker(session_factory=sessions, options=LEASE, name="dead")
    alive = DispatchWorker(session_factory=sessions, options=LEASE, name="alive")
    try:
        runs, _ = dead._due_runs(utcnow())
        claimed = dead._claim(runs, utcnow())  # ... and then it is killed before sending
        assert [len(run) for run in claimed] == [1]  # a fresh worker probes: the endpoint's oldest only
        assert alive.deliver_due() > 0  # nothing to send: the endpoint's oldest is claimed
        assert dispatch_centre.received() == []
        time.sleep(LEASE.lease_s + 0.1)
        deadline = time.monotonic() + 10
        while len(dispatch_centre.received()) < 3 and time.monotonic() < deadline:
            alive.deliver_due()
        with sessions() as session:
            rows = session.execute(
                select(OutboxMessage.webhook_id, OutboxMessage.status, OutboxMessage.claimed_by)
            )
            outbox = sorted(rows, key=lambda row: row.webhook_id)
        assert [row.status for row in outbox] == [OutboxStatus.DELIVERED] * 3
        assert all(row.claimed_by is None for row in outbox)
        received = [hook.webhook_id for hook in dispatch_centre.received()]
        with sessions() as session:  # in outbox order, the dead worker's one first
            in_order = list(session.scalars(select(OutboxMessage.webhook_id).order_by(OutboxMessage.id)))
        assert received == in_order
        assert dispatch_centre.duplicates == 0
    finally:
        dead.stop()
        alive.stop()
        engine.dispose()
