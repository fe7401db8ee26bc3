"""The elevator camera agent end to end: simulated ride -> pipeline -> real Mosquitto -> event + snapshot.

The detector here is a fixed-output ONNX model built in the test (it reports one e-bike in every
frame), so the test is about the agent's plumbing, not the model's accuracy: motion gate, tracker,
analyzer, actuators, EventEmitter, snapshot encoding and the uplink through a real broker.
``test_elevator_ride_real_model`` runs the shipped model on a rendered e-bike ride when it exists.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.cli import main
from citywatch.protocol import AckMessage, CommandMessage, EventMessage, SnapshotMessage, TelemetryMessage
from edge.config import ElevatorAgentConfig, validate_config_dict
from edge.vision.actuators import LoggingActuators
from edge.vision.agent import ElevatorAgent
from edge.vision.config import EbikeAnalyzerConfig
from tests.edge.vision.elevator_helpers import REAL_MODEL, device_config, ebike_everywhere_model, unique
from tests.support.mqtt import Collector
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until


@pytest.mark.slow
def test_simulated_ride_raises_event_with_snapshot_over_mqtt(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    model = ebike_everywhere_model(tmp_path / "fixed.onnx")
    config = validate_config_dict(device_config(tmp_path, mosquitto, model))
    assert isinstance(config, ElevatorAgentConfig)
    actuators = LoggingActuators()
    agent = ElevatorAgent(config, actuators=actuators).start()
    try:
        wait_until(lambda: collector.of(SnapshotMessage), what="the event's snapshot")
        wait_until(lambda: collector.of(TelemetryMessage), what="health telemetry")
        # Property management releases the door remotely.
        command = CommandMessage(cmd_id="rel-1", ts=datetime.now(UTC), command="release_door")
        collector.publish("citywatch/v1/tower-a/lift-test-1/cmd", command.to_json())
        wait_until(
            lambda: any(a.cmd_id == "rel-1" for a in collector.of(AckMessage)), what="the command's ack"
        )
    finally:
        agent.stop()
    ack = next(a for a in collector.of(AckMessage) if a.cmd_id == "rel-1")
    assert ack.ok and ack.message == "door released"
    assert ("release_door", "remote command") in actuators.history

    events = [e for e in collector.of(EventMessage) if e.type == "ebike_in_elevator"]
    new = events[0]
    assert new.phase == "new" and new.seq == 0 and new.device_id == "lift-test-1"
    assert new.details["door_held"] is True and new.details["frames_seen"] >= 4
    assert new.confidence == pytest.approx(0.9, abs=0.01)
    [snapshot] = unique(collector.of(SnapshotMessage))  # QoS 1 may repeat one
    assert snapshot.event_id == new.event_id and snapshot.snapshot_id == new.snapshot_id
    image = cv2.imdecode(np.frombuffer(base64.b64decode(snapshot.data_b64), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (snapshot.height, snapshot.width) == (180, 320)
    # The provisional hold came first, then the confirmed warning.
    assert [k for k, _ in actuators.history][:2] == ["hold_door", "voice_warning"]
    # Provisional hold on the first frame with the e-bike; the alarm confirm_min_s (1 s) later.
    confirm_min_s = EbikeAnalyzerConfig().confirm_min_s  # confirmed as soon as allowed: e-bike in every frame
    assert (new.ts - new.started_at).total_seconds() == pytest.approx(confirm_min_s, abs=0.1)

    health = [t for t in collector.of(TelemetryMessage) if t.measurement == "health"]
    fields = health[0].fields
    assert {"fps_in", "fps_processed", "inference_ms", "dropped_frames", "uplink_queue_depth"} <= set(fields)
    assert fields["fps_processed"] > 0 and fields["inference_ms"] > 0


@pytest.mark.slow
def test_event_and_snapshot_raised_while_the_broker_is_down_arrive_after_it_returns(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    model = ebike_everywhere_model(tmp_path / "fixed.onnx")
    config = validate_config_dict(device_config(tmp_path, mosquitto, model))
    assert isinstance(config, ElevatorAgentConfig)
    mosquitto.stop()
    actuators = LoggingActuators()
    agent = ElevatorAgent(config, actuators=actuators).start()
    try:
        # The door is held and the warning plays with no network at all; event and snapshot wait on disk.
        wait_until(lambda: ("voice_warning", "confirmed") in actuators.history, what="the confirmed warning")
        wait_until(lambda: agent.uplink.queue_depth >= 2, what="event and snapshot queued in the outbox")
        assert collector.of(EventMessage) == []
        mosquitto.start()
        wait_until(lambda: collector.of(SnapshotMessage), what="the queued snapshot after the broker is back")
        wait_until(lambda: collector.of(EventMessage), what="the queued event")
    finally:
        agent.stop()
    [snapshot] = unique(collector.of(SnapshotMessage))  # QoS 1 may repeat one
    new = next(e for e in collector.of(EventMessage) if e.phase == "new")
    assert snapshot.event_id == new.event_id and new.snapshot_id == snapshot.snapshot_id


def test_missing_or_corrupt_model_stops_edge_run_at_start(
    tmp_path: Path, mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model")
    for model, expected in (
        (tmp_path / "missing.onnx", "does not exist"),
        (corrupt, "not a loadable ONNX model"),
    ):
        path = tmp_path / "lift.yaml"
        path.write_text(yaml.safe_dump(device_config(tmp_path, mosquitto, model)))
        assert main(["edge", "run", str(path)]) == 2
        err = capsys.readouterr().err
        assert "cannot start" in err and str(model) in err and expected in err
        assert "Traceback" not in err

        assert main(["edge", "check", str(path)]) == 2
        err = capsys.readouterr().err
        assert "elevator.detector.model" in err and expected in err


def test_edge_check_accepts_a_good_elevator_config(
    tmp_path: Path, mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ebike_everywhere_model(tmp_path / "fixed.onnx")
    path = tmp_path / "lift.yaml"
    path.write_text(yaml.safe_dump(device_config(tmp_path, mosquitto, model)))
    assert main(["edge", "check", str(path)]) == 0
    assert "ok (elevator tower-a/lift-test-1" in capsys.readouterr().out


@pytest.mark.parametrize("example", ["elevator.example.yaml", "elevator-coco.example.yaml"])
def test_edge_check_accepts_the_elevator_examples(
    example: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What an installer copies must pass the installer's check: config, model load and warm-up, source."""
    monkeypatch.chdir(PROJECT_ROOT)  # the examples name their model relative to the project
    path = Path("firmware_configs") / example
    assert main(["edge", "check", str(path)]) == 0, capsys.readouterr().err
    assert "ok (elevator tower-a/" in capsys.readouterr().out


def test_the_coco_example_reports_ebikes_through_its_label_map(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.vision.detector import Detector
    from edge.vision.pipeline import detector_options

    monkeypatch.chdir(PROJECT_ROOT)
    raw = yaml.safe_load(Path("firmware_configs/elevator-coco.example.yaml").read_text())
    config = validate_config_dict(raw)
    assert isinstance(config, ElevatorAgentConfig)
    detector = Detector.load(detector_options(config.elevator))
    # Both COCO two-wheelers are reported as e-bikes, so the analyzer's trigger label exists.
    assert "ebike" in detector.output_labels and not {"motorcycle", "bicycle"} & set(detector.output_labels)


@pytest.mark.skipif(not REAL_MODEL.is_file(), reason="models/ebike-detector.onnx is not trained yet")
@pytest.mark.slow
def test_elevator_ride_real_model(tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector) -> None:
    config = validate_config_dict(device_config(tmp_path, mosquitto, REAL_MODEL))
    assert isinstance(config, ElevatorAgentConfig)
    agent = ElevatorAgent(config, actuators=LoggingActuators()).start()
    try:
        wait_until(
            lambda: collector.of(SnapshotMessage), timeout_s=120, what="an e-bike event from the real model"
        )
    finally:
        agent.stop()
    [snapshot] = unique(collector.of(SnapshotMessage))  # QoS 1 may repeat one
    new = next(e for e in collector.of(EventMessage) if e.event_id == snapshot.event_id)
    assert new.phase == "new"
    assert json.loads(new.model_dump_json())["type"] == "ebike_in_elevator"
