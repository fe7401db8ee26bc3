"""The open-events journal: what an agent had open survives it, and a restart ends it (edge/events.py)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.protocol import EventMessage, EventType, Severity
from citywatch.protocol.messages import EbikeDetails, IllegalParkingDetails
from edge.events import EventEmitter, OpenEventJournal

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def journal(tmp_path: Path) -> OpenEventJournal:
    return OpenEventJournal.beside(tmp_path / "outbox.sqlite3", fsync=True)


def test_open_update_end_are_journaled_and_a_clean_end_leaves_it_empty(tmp_path: Path) -> None:
    log = journal(tmp_path)
    assert log.path == tmp_path / "outbox.sqlite3.open-events.json"
    emitter = EventEmitter(device_id="lift-1", event_type=EventType.EBIKE_IN_ELEVATOR, journal=log)
    new = emitter.open(ts=T0, severity=Severity.WARNING, details={"frames_seen": 5, "door_held": True})
    on_disk = journal(tmp_path).read()  # what another process would read
    assert list(on_disk) == [new.event_id] and on_disk[new.event_id]["seq"] == 0
    emitter.update(ts=T0 + timedelta(seconds=1), details={"frames_seen": 9, "door_held": True})
    assert journal(tmp_path).read()[new.event_id]["details"] == {"frames_seen": 9, "door_held": True}
    emitter.end(ts=T0 + timedelta(seconds=5), details={"frames_seen": 0})
    assert journal(tmp_path).read() == {}
    assert json.loads(log.path.read_text()) == {"v": 1, "open": {}}
    assert not log.path.with_name(log.path.name + ".tmp").exists()


def test_a_restart_ends_every_event_left_open_with_the_next_seq_and_the_reason(tmp_path: Path) -> None:
    first_run = journal(tmp_path)
    lift = EventEmitter(device_id="cam-1", event_type=EventType.EBIKE_IN_ELEVATOR, journal=first_run)
    ebike = lift.open(ts=T0, severity=Severity.WARNING, details={"frames_seen": 5, "door_held": True})
    case = EventEmitter(device_id="cam-1", event_type=EventType.ILLEGAL_PARKING, journal=first_run)
    parked = case.open(
        ts=T0, severity=Severity.NOTICE, details={"stage": "warning", "zone": "kerb"}, confidence=0.7
    )
    case.update(ts=T0 + timedelta(minutes=10), severity=Severity.WARNING, details={"stage": "violation"})
    closed = EventEmitter(device_id="cam-1", event_type=EventType.ILLEGAL_PARKING, journal=first_run)
    closed.open(ts=T0, severity=Severity.NOTICE, details={"stage": "warning"})
    closed.end(ts=T0, details={"stage": "left_in_grace"})
    # The process dies here: nothing ends ebike nor parked. The next run:
    now = T0 + timedelta(hours=1)
    sent: list[EventMessage] = []
    ends = {m.event_id: m for m in journal(tmp_path).restart_ends(send=sent.append, now=now)}
    assert list(ends.values()) == sent  # each handed to the outbox
    assert set(ends) == {ebike.event_id, parked.event_id}
    end = ends[ebike.event_id]
    assert (end.phase, end.seq, end.type, end.severity, end.ts, end.started_at) == (
        "end",
        1,
        "ebike_in_elevator",
        "warning",
        now,
        T0,
    )
    assert EbikeDetails.model_validate(end.details).end_reason == "agent_restarted"
    assert end.details["door_held"] is True  # the last details as sent, the reason added
    end = ends[parked.event_id]
    assert (end.seq, end.severity, end.confidence) == (2, "warning", 1.0)
    details = IllegalParkingDetails.model_validate(end.details)
    assert (details.stage, details.end_reason, details.zone) == ("agent_restarted", "agent_restarted", None)
    EventMessage.model_validate_json(end.to_json())  # the wire form is valid too
    # Ended once: the journal is empty after, and a second start sends nothing.
    assert journal(tmp_path).read() == {}
    assert journal(tmp_path).restart_ends(send=sent.append, now=now) == []


def test_an_end_never_goes_back_in_time(tmp_path: Path) -> None:
    ahead = T0 + timedelta(days=1)  # a fast-forwarded file's clock ran ahead of the machine's
    emitter = EventEmitter(device_id="cam-1", event_type=EventType.OBJECT_THROWN, journal=journal(tmp_path))
    emitter.open(ts=ahead, severity=Severity.CRITICAL, details={})
    [end] = journal(tmp_path).restart_ends(send=lambda _: None, now=T0)
    assert end.ts == ahead and end.details == {"end_reason": "agent_restarted"}


@pytest.mark.parametrize(
    "content",
    [b'{"v": 1, "open": {"abc', b"\x00\xff garbage", b"[1, 2]", b'{"v": 1, "open": {"x": 3}}'],
    ids=["truncated", "binary", "not-a-journal", "bad-entry"],
)
def test_a_corrupt_journal_is_logged_and_ignored(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    log = journal(tmp_path)
    log.path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="edge.events"):
        sent: list[EventMessage] = []
        assert log.restart_ends(send=sent.append, now=T0) == []
    assert sent == []
    assert str(log.path) in caplog.text
    assert journal(tmp_path).read() == {}  # replaced by an empty one: not logged again at the next start
    emitter = EventEmitter(device_id="cam-1", event_type=EventType.OBJECT_THROWN, journal=log)
    new = emitter.open(ts=T0, severity=Severity.CRITICAL, details={})
    assert list(journal(tmp_path).read()) == [new.event_id]


def test_an_entry_that_cannot_be_ended_is_logged_and_the_others_are_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emitter = EventEmitter(device_id="cam-1", event_type=EventType.OBJECT_THROWN, journal=journal(tmp_path))
    good = emitter.open(ts=T0, severity=Severity.CRITICAL, details={})
    raw = json.loads(journal(tmp_path).path.read_text())
    raw["open"]["broken"] = dict(raw["open"][good.event_id], event_id="broken", type="no_such_type")
    journal(tmp_path).path.write_text(json.dumps(raw))
    with caplog.at_level(logging.ERROR, logger="edge.events"):
        ends = journal(tmp_path).restart_ends(send=lambda _: None, now=T0)
    assert [m.event_id for m in ends] == [good.event_id]
    assert "cannot end event broken" in caplog.text


def test_a_journal_that_cannot_be_written_is_logged_and_the_event_still_goes_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full or read-only card: the journal is a safety net, the event (and the agent) go on."""
    (tmp_path / "a-file").write_text("")  # its "directory" is a file: every write fails (even as root)
    unwritable = OpenEventJournal(tmp_path / "a-file" / "agent.open-events.json")
    emitter = EventEmitter(device_id="cam-1", event_type=EventType.OBJECT_THROWN, journal=unwritable)
    with caplog.at_level(logging.ERROR, logger="edge.events"):
        new = emitter.open(ts=T0, severity=Severity.CRITICAL, details={})
        end = emitter.end(ts=T0, details={})
    assert (new.phase, end.phase, end.event_id) == ("new", "end", new.event_id)
    assert not emitter.is_open
    assert "not written" in caplog.text
