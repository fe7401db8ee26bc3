"""The evidence service on a real SQLite database and real files, without a broker: conflicts, the
purge of partial items, and the CAP <resource>s of what an event has."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from citywatch.protocol.messages import EvidenceMessage
from edge.uplink.evidence import evidence_messages
from gateway.evidence import service
from gateway.evidence.models import EvidenceItem, EvidencePart
from gateway.evidence.service import Applied, EvidenceOptions, PartOutcome
from gateway.runner import GatewayApp
from tests.gateway.helpers import BASE_TS, api_only_gateway

DEVICE = "culvert-1"
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayApp]:
    with api_only_gateway(tmp_path, devices=(DEVICE, "culvert-2")) as gateway:
        yield gateway


@pytest.fixture
def options(tmp_path: Path) -> EvidenceOptions:
    return EvidenceOptions(root=tmp_path / "evidence", max_bytes=1_000_000)


def parts(data: bytes, *, chunk_bytes: int = 1000, evidence_id: str = "ev-00000001") -> list[EvidenceMessage]:
    return evidence_messages(
        device_id=DEVICE,
        event_id="evt-00000001",
        kind="photo",
        content_type="image/jpeg",
        data=data,
        taken_at=BASE_TS,
        evidence_id=evidence_id,
        chunk_bytes=chunk_bytes,
        ts=BASE_TS,
    )


def apply(
    gateway: GatewayApp, options: EvidenceOptions, message: EvidenceMessage, now: datetime = NOW
) -> Applied:
    with gateway.session_factory() as session, session.begin():
        return service.apply_part(session=session, message=message, options=options, now=now)


def rows(gateway: GatewayApp) -> tuple[list[tuple[str, str]], int]:
    with gateway.read_session_factory() as session:
        items = [
            (item.evidence_id, item.status) for item in session.query(EvidenceItem).order_by(EvidenceItem.id)
        ]
        return items, session.query(EvidencePart).count()


def test_a_part_sent_again_with_other_bytes_is_a_conflict_and_the_first_stays(
    gateway: GatewayApp, options: EvidenceOptions
) -> None:
    data = bytes(range(250)) * 10
    first, second, third = parts(data)
    assert apply(gateway, options, first).outcome is PartOutcome.STORED
    assert apply(gateway, options, first).outcome is PartOutcome.DUPLICATE
    forged = first.model_copy(update={"data_b64": base64.b64encode(bytes(1000)).decode()})
    conflict = apply(gateway, options, forged)
    assert (conflict.outcome, conflict.reason) == (PartOutcome.REFUSED, "evidence_conflict")
    assert "other bytes" in (conflict.detail or "")
    assert apply(gateway, options, second).outcome is PartOutcome.STORED
    done = apply(gateway, options, third)
    assert done.outcome is PartOutcome.COMPLETED and done.event_pk is None  # its event has not come
    path = options.root / DEVICE / "ev-00000001.jpg"
    assert path.read_bytes() == data
    assert rows(gateway) == ([("ev-00000001", "complete")], 0)


@pytest.mark.parametrize(
    "changes",
    [{"size": 2400}, {"sha256": "0" * 64}, {"caption": "another photo"}, {"event_id": "evt-00000002"}],
    ids=lambda changes: next(iter(changes)),
)
def test_a_part_whose_item_fields_differ_from_the_earlier_parts_is_refused(
    gateway: GatewayApp, options: EvidenceOptions, changes: dict[str, object]
) -> None:
    first, second, _ = parts(bytes(2500))
    apply(gateway, options, first)
    refused = apply(gateway, options, second.model_copy(update=changes))
    assert (refused.outcome, refused.reason) == (PartOutcome.REFUSED, "evidence_conflict")
    assert next(iter(changes)) in (refused.detail or "")
    assert rows(gateway) == ([("ev-00000001", "partial")], 1)


def test_partial_items_older_than_the_window_are_purged_and_complete_ones_stay(
    gateway: GatewayApp, options: EvidenceOptions
) -> None:
    complete = parts(b"whole", evidence_id="ev-complete1")
    waiting = parts(bytes(2500), evidence_id="ev-waiting1")
    recent = parts(bytes(2500), evidence_id="ev-recent01")
    apply(gateway, options, complete[0])
    apply(gateway, options, waiting[0])
    apply(gateway, options, recent[0], now=NOW + timedelta(hours=71))
    with gateway.session_factory() as session, session.begin():
        dropped = service.purge(session=session, options=options, now=NOW + timedelta(hours=72, seconds=1))
    assert [item.evidence_id for item in dropped] == ["ev-waiting1"]
    assert rows(gateway) == ([("ev-complete1", "complete"), ("ev-recent01", "partial")], 1)
    # Parts of a purged item arriving later start it again: they are not taken for the old one.
    assert apply(gateway, options, waiting[1], now=NOW + timedelta(hours=73)).outcome is PartOutcome.STORED


def test_the_file_is_replaced_whole_when_a_batch_is_stored_again(
    gateway: GatewayApp, options: EvidenceOptions
) -> None:
    """A batch rolled back after the file was written (the database failed at the commit) is stored
    again: the same bytes land under the same name, and no temporary file is left."""
    data = bytes(range(256)) * 8
    messages = parts(data, chunk_bytes=2048)
    with gateway.session_factory() as session:
        session.begin()
        assert service.apply_part(session=session, message=messages[0], options=options, now=NOW).outcome is (
            PartOutcome.COMPLETED
        )
        session.rollback()
    assert rows(gateway) == ([], 0)
    assert apply(gateway, options, messages[0]).outcome is PartOutcome.COMPLETED
    files = sorted(path.name for path in (options.root / DEVICE).iterdir())
    assert files == ["ev-00000001.jpg"]
    assert hashlib.sha256((options.root / DEVICE / files[0]).read_bytes()).hexdigest() == messages[0].sha256


def test_cap_resources_validate_against_every_cap_schema() -> None:
    from citywatch.protocol.messages import Severity
    from gateway.cap import CapChange, CapEventView, CapResource, render_alert
    from tests.gateway.cap.schemas import schema_errors

    view = CapEventView(
        event_id="7",
        event_uid="0123456789abcdef0123456789abcdef",
        event_type="illegal_parking",
        severity=Severity.WARNING,
        state="dispatched",
        device_id="street-1",
        site="school-gate",
        started_at=BASE_TS,
        updated_at=BASE_TS,
        resources=(
            CapResource("Snapshot", "image/jpeg", "https://gw.example/events/7/snapshot"),
            CapResource(
                "Photo: warning photo (taken 2026-06-01T08:00:00-00:00)",
                "image/jpeg",
                "https://gw.example/events/7/evidence/ev-1",
                size=48_213,
                digest=hashlib.sha1(b"x").hexdigest(),
            ),
        ),
    )
    xml = render_alert(view, change=CapChange.RAISED, sent=BASE_TS, sequence=0).xml
    assert schema_errors(xml) == []
    names = [element.tag.split("}")[1] for element in etree.fromstring(xml).find("{*}info")]
    assert names.index("resource") > names.index("parameter") and names.index("area") > names.index(
        "resource"
    )
    with pytest.raises(ValueError, match="SHA-1"):
        CapResource("Photo", "image/jpeg", "https://gw.example/x", digest="not-a-digest")
