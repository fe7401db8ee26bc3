"""A street agent that restarts ends the cases its previous run left open (edge/events.py, journal).

Real agents on a real Mosquitto: the first run stops with a case open (its file ends with the car still
parked, and stop() ends no case: as a crash or power cut would leave it), the second run on the same
outbox directory sends that case's end first, through the outbox."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
from edge.events import OpenEventJournal
from edge.street.agent import StreetAgent
from tests.edge.street.lit_detector import write_video
from tests.edge.street.test_agent import agent_config
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # two short agent runs: ~5 s


def events(collector: Collector) -> list[EventMessage]:
    unique = {(e.event_id, e.seq): e for e in collector.of(EventMessage)}  # QoS 1 may repeat one
    return sorted(unique.values(), key=lambda e: (e.ts, e.seq))


def test_a_restarted_street_agent_ends_the_case_it_left_open(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    parked = write_video(tmp_path / "parked.mp4", lit_s=6.0, dark_s=0.0)  # ends with the car still there
    first = StreetAgent(agent_config(tmp_path, mosquitto.url, parked)).start()
    try:
        assert first.wait(60), "the file did not finish"
        wait_until(lambda: len(events(collector)) == 2, what="the warning and the violation")
    finally:
        first.stop()  # ends nothing: the case stays open, as after a crash
    warning, violation = events(collector)
    assert (warning.phase, violation.phase) == ("new", "update")
    assert warning.event_id == violation.event_id
    journal = OpenEventJournal.beside(tmp_path / "outbox.sqlite3")
    assert list(journal.read()) == [warning.event_id]

    empty = write_video(tmp_path / "empty.mp4", lit_s=0.0, dark_s=1.0)
    second = StreetAgent(agent_config(tmp_path, mosquitto.url, empty)).start()
    try:
        assert second.wait(60)
        wait_until(lambda: len(events(collector)) == 3, what="the left-open case's end")
    finally:
        second.stop()
    end = events(collector)[-1]
    assert (end.event_id, end.seq, end.phase) == (warning.event_id, 2, "end")
    assert end.details["stage"] == end.details["end_reason"] == "agent_restarted"
    assert end.details["zone"] == "kerb" and end.severity == "warning"  # as last sent
    assert end.started_at == warning.started_at
    assert journal.read() == {}


def test_a_clean_run_leaves_an_empty_journal_and_a_corrupt_one_is_ignored(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    journal = OpenEventJournal.beside(tmp_path / "outbox.sqlite3")
    journal.path.write_text('{"v": 1, "open": {"4f0c', encoding="utf-8")  # cut short by a power cut
    video = write_video(tmp_path / "street.mp4", lit_s=6.0, dark_s=4.0)  # parks, is warned, leaves
    with caplog.at_level(logging.ERROR, logger="edge.events"):
        agent = StreetAgent(agent_config(tmp_path, mosquitto.url, video)).start()
    try:
        assert agent.wait(60), "the file did not finish"
        wait_until(lambda: any(e.phase == "end" for e in events(collector)), what="the case's end")
    finally:
        agent.stop()
    assert f"open-event journal {journal.path} is unreadable" in caplog.text
    assert [e.phase for e in events(collector)] == ["new", "update", "end"]
    assert events(collector)[-1].details["stage"] == "left_after_violation"
    assert journal.read() == {}
