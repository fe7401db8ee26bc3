"""The event store on PostgreSQL (127.0.0.1:5432, database ``test``), each test in its own schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import EventMessage, EventPhase
from citywatch.protocol.topics import Channel
from gateway.db import make_engine, make_sessionmaker, migrate
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.events import service as events_service
from gateway.events.models import Event
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES, SITE
from tests.gateway.helpers import BASE_TS, Publisher, topic, water_event
from tests.gateway.test_migrations import schema_drift
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

POSTGRES_URL = os.environ.get(
    "CITYWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test database; dropped afterwards."""
    admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {type(exc).__name__}")
    schema = f"citywatch_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_events_on_postgres_are_idempotent_and_one_active_per_device_type(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        migrate(engine)  # at every start: a no-op when current
        assert schema_drift(engine) == []
        sessions = make_sessionmaker(engine)
        with sessions() as session, session.begin():
            devices_service.create(
                session=session, device_in=DeviceCreate(id="culvert-1", site=SITE, device_type="culvert")
            )
        outcomes = []
        for seq, phase in [(0, None), (1, None), (1, None), (0, None), (2, EventPhase.END)]:
            message = EventMessage.model_validate_json(
                water_event("culvert-1", "evt-pg-000001", seq, phase=phase)
            )
            with sessions() as session, session.begin():
                device = devices_service.get(session=session, device_id="culvert-1")
                assert device is not None
                outcome, _ = events_service.apply_device_event(
                    session=session, device=device, message=message
                )
                outcomes.append(outcome.value)
        assert outcomes == ["created", "updated", "duplicate", "duplicate", "cleared"]
        with sessions() as session:
            (event,) = session.query(Event).all()
            # The condition cleared; the work item stays dispatched until its department closes it.
            assert event.state == "dispatched" and event.revisions == 3 and event.cleared_at is not None
            assert event.started_at == BASE_TS  # timezone-aware round trip
            trail = events_service.audit_trail(session=session, event_id=event.id)
            assert [a.action for a in trail] == ["created", "dispatch", "updated", "condition_cleared"]

        # The partial unique index: a second open event for the same device and type is refused.
        with sessions() as session, pytest.raises(IntegrityError), session.begin():
            for _ in range(2):
                session.add(
                    Event(
                        device_id="culvert-1",
                        site=SITE,
                        type="water_level",
                        severity="notice",
                        confidence=1.0,
                        device_event_id=uuid.uuid4().hex,
                        started_at=BASE_TS,
                        last_device_ts=BASE_TS,
                    )
                )
            session.flush()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_gateway_runs_on_postgres(
    postgres_url: str,
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    dispatch_centre: DispatchCentreSimulator,
    publisher: Publisher,
) -> None:
    settings = Settings(
        MQTT_URL=mosquitto.url,
        MQTT_CLIENT_ID=f"gw-pg-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        DB_URL=postgres_url,
        HTTP_PORT=0,
        DISPATCH_URL=dispatch_centre.url,
        DISPATCH_SECRET=dispatch_centre.secret,
    )
    with GatewayApp(settings, delivery=FAST_RETRIES) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="culvert-1", site=SITE, device_type="culvert"
            )
        event_topic = topic(SITE, "culvert-1", Channel.EVENT)
        for seq in (0, 1, 1, 0):
            publisher.publish(event_topic, water_event("culvert-1", "evt-pg-gw-0001", seq))
        assert dispatch_centre.wait_for(2)
        page = wait_until(
            lambda: httpx.get(f"{gateway.url}/events", headers=admin_headers(gateway)).json(),
            what="events listed",
        )
        assert page["total"] == 1
        event_id = page["items"][0]["id"]
        ack = httpx.post(
            f"{gateway.url}/events/{event_id}/acknowledge",
            headers=admin_headers(gateway),
            json={"by": "operator-1"},
        )
        assert ack.status_code == 200 and ack.json()["state"] == "accepted"
        wait_until(
            lambda: (
                httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway)).json()["counts"]["outbox"]
                == {"delivered": 3}
            ),
            what="every notification marked delivered",
        )
        assert gateway.stats.snapshot()["refused"] == {}
        assert dispatch_centre.wait_for(3)
        assert [w.message_type for w in dispatch_centre.received()] == [
            "event.created",
            "event.updated",
            "event.accept",
        ]
