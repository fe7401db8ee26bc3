"""An elevator agent that restarts with its e-bike event open ends it (the e-bike left meanwhile).

Real agents, simulated rides, a real Mosquitto: the first run's fixed-output model sees an e-bike in
every frame, so it stops with the event open; the second run's model sees nothing (the e-bike is gone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
from edge.config import ElevatorAgentConfig, validate_config_dict
from edge.events import OpenEventJournal
from edge.vision.actuators import LoggingActuators
from edge.vision.agent import ElevatorAgent
from tests.edge.vision.elevator_helpers import LABELS, SIZE, device_config, ebike_everywhere_model
from tests.edge.vision.onnx_builders import yolo_model
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # two simulated rides: a few seconds


def config(tmp_path: Path, broker: MosquittoBroker, model: Path) -> ElevatorAgentConfig:
    parsed = validate_config_dict(device_config(tmp_path, broker, model))
    assert isinstance(parsed, ElevatorAgentConfig)
    return parsed


def test_a_restarted_elevator_agent_ends_the_ebike_event_it_left_open(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    first = ElevatorAgent(
        config(tmp_path, mosquitto, ebike_everywhere_model(tmp_path / "ebike.onnx")),
        actuators=LoggingActuators(),
    ).start()
    try:
        wait_until(lambda: collector.of(EventMessage), what="the e-bike event")
    finally:
        first.stop()  # the e-bike is still in every frame: the event is open when it stops
    sent = {(e.event_id, e.seq): e for e in collector.of(EventMessage)}
    [event_id] = {e.event_id for e in sent.values()}
    assert all(e.phase != "end" for e in sent.values())
    last_seq = max(seq for _, seq in sent)
    journal = OpenEventJournal.beside(tmp_path / "outbox.sqlite3")
    assert list(journal.read()) == [event_id]

    nothing = yolo_model(tmp_path / "nothing.onnx", np.array([[128.0, 150.0, 60.0, 80.0] + [0.01] * 5]),
                         size=SIZE, names=LABELS)  # fmt: skip
    second = ElevatorAgent(config(tmp_path, mosquitto, nothing), actuators=LoggingActuators()).start()
    try:
        wait_until(lambda: any(e.phase == "end" for e in collector.of(EventMessage)), what="the event's end")
        assert second.wait(60)
    finally:
        second.stop()
    ends = {(e.event_id, e.seq): e for e in collector.of(EventMessage) if e.phase == "end"}
    [end] = ends.values()
    assert (end.event_id, end.seq, end.type) == (event_id, last_seq + 1, "ebike_in_elevator")
    assert end.details["end_reason"] == "agent_restarted"
    assert not second.events.is_open  # and it raised nothing new: the e-bike had left
    assert {e.event_id for e in collector.of(EventMessage)} == {event_id}
    assert journal.read() == {}
