"""Incidents (a thrown object, a parked vehicle) are one event each, even from one camera at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import EventMessage
from gateway.db import make_engine, make_sessionmaker, migrate
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.events import service as events_service
from gateway.events.models import Event
from gateway.events.service import Outcome

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate(engine)
    factory = make_sessionmaker(engine)
    with factory() as session, session.begin():
        for device_id, kind in (("street-1", "street"), ("culvert-1", "culvert")):
            devices_service.create(
                session=session, device_in=DeviceCreate(id=device_id, site="riverside", device_type=kind)
            )
    yield factory
    engine.dispose()


def _message(
    device_id: str, event_id: str, seq: int, event_type: str, details: dict[str, Any], minute: float
) -> EventMessage:
    phase = "new" if seq == 0 else "update"
    return EventMessage.model_validate(
        {
            "v": 1,
            "device_id": device_id,
            "event_id": event_id,
            "seq": seq,
            "phase": phase,
            "type": event_type,
            "severity": "notice" if seq == 0 else "warning",
            "confidence": 0.9,
            "ts": (T0 + timedelta(minutes=minute)).isoformat(),
            "started_at": T0.isoformat(),
            "details": details,
        }
    )


def _apply(sessions: sessionmaker[Session], message: EventMessage) -> Outcome:
    with sessions() as session, session.begin():
        device = devices_service.get(session=session, device_id=message.device_id)
        assert device is not None
        outcome, _ = events_service.apply_device_event(session=session, device=device, message=message)
        return outcome


def _events(sessions: sessionmaker[Session], event_type: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.type == event_type).order_by(Event.id)))


def test_two_parked_vehicles_on_one_camera_are_two_events(sessions: sessionmaker[Session]) -> None:
    first = {"stage": "warning", "zone": "school-gate", "plate": "沪A·12345"}
    second = {"stage": "warning", "zone": "school-gate", "plate": "沪B·67890"}
    assert (
        _apply(sessions, _message("street-1", "case-aaaa-0001", 0, "illegal_parking", first, 2))
        is Outcome.CREATED
    )
    assert (
        _apply(sessions, _message("street-1", "case-bbbb-0002", 0, "illegal_parking", second, 3))
        is Outcome.CREATED
    )
    violation = {**first, "stage": "violation"}
    assert (
        _apply(sessions, _message("street-1", "case-aaaa-0001", 1, "illegal_parking", violation, 12))
        is Outcome.UPDATED
    )
    # A QoS 1 redelivery of the second car's warning changes nothing.
    assert (
        _apply(sessions, _message("street-1", "case-bbbb-0002", 0, "illegal_parking", second, 3))
        is Outcome.DUPLICATE
    )

    events = _events(sessions, "illegal_parking")
    assert [(e.device_event_id, e.details["plate"], e.details["stage"]) for e in events] == [
        ("case-aaaa-0001", "沪A·12345", "violation"),
        ("case-bbbb-0002", "沪B·67890", "warning"),
    ]


def test_two_throws_a_minute_apart_are_two_events(sessions: sessionmaker[Session]) -> None:
    for n, minute in enumerate((0, 1)):
        details = {"fall_height_m": 40.0 + n, "floor_estimate": 14 + n}
        message = _message("street-1", f"throw-0000-000{n}", 0, "object_thrown", details, minute)
        assert _apply(sessions, message) is Outcome.CREATED
    assert len(_events(sessions, "object_thrown")) == 2


def test_a_lasting_condition_still_folds_into_the_open_event(sessions: sessionmaker[Session]) -> None:
    details = {"level_cm": 12.0, "peak_cm": 12.0, "threshold_cm": 10.0}
    assert (
        _apply(sessions, _message("culvert-1", "water-0000-0001", 0, "water_level", details, 0))
        is Outcome.CREATED
    )
    assert (
        _apply(sessions, _message("culvert-1", "water-0000-0002", 0, "water_level", details, 1))
        is Outcome.UPDATED
    )
    assert len(_events(sessions, "water_level")) == 1


def test_the_open_event_index_skips_exactly_the_incident_types() -> None:
    from gateway.events.lifecycle.dedup import INCIDENT_TYPES
    from gateway.events.models import OPEN_CONDITION

    listed = OPEN_CONDITION.split("type NOT IN (")[1].rstrip(")")
    assert {name.strip(" '") for name in listed.split(",")} == set(INCIDENT_TYPES)
