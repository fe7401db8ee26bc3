"""The small stages: motion gate, zones, tracker, snapshots and privacy, health, GPIO actuators."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from citywatch.protocol.codec import decode
from citywatch.protocol.topics import Channel, Topic
from edge.vision.actuators import GpioActuators, LoggingActuators, make_actuators
from edge.vision.config import ActuatorConfig, SnapshotConfig, ZoneConfig
from edge.vision.health import HealthCounters, cpu_temperature_c
from edge.vision.motion import MotionGate, MotionOptions
from edge.vision.snapshots import apply_privacy, encode_snapshot, snapshot_message
from edge.vision.tracker import IouTracker
from edge.vision.types import Detection
from edge.vision.zones import Zone, ZoneFilter


def still(width: int = 1280, height: int = 720) -> np.ndarray:
    image = np.full((height, width, 3), 100, np.uint8)
    cv2.rectangle(image, (100, 100), (300, 600), (60, 60, 60), -1)
    return image


def test_motion_gate_skips_a_still_car_except_for_periodic_checks() -> None:
    gate = MotionGate(MotionOptions(full_check_interval_s=2.0))
    frame = still()
    decisions = [gate.check(i / 10, frame) for i in range(50)]  # 5 s of an unchanging car at 10 fps
    runs = [(round(i / 10, 1), d.reason) for i, d in enumerate(decisions) if d.run]
    assert runs == [(0.0, "full_check"), (2.0, "full_check"), (4.0, "full_check")]


def test_motion_gate_runs_on_motion_with_a_roi_around_it_and_always_when_busy() -> None:
    gate = MotionGate(MotionOptions(full_check_interval_s=100.0))
    frame = still()
    gate.check(0.0, frame)
    gate.check(0.1, frame)
    moved = frame.copy()
    cv2.rectangle(moved, (900, 300), (1000, 450), (250, 250, 250), -1)  # someone steps in on the right
    decision = gate.check(0.2, moved)
    assert decision.run and decision.reason == "motion"
    assert decision.roi is not None
    x1, y1, x2, y2 = decision.roi
    assert x1 <= 900 and y1 <= 300 and x2 >= 1000 and y2 >= 450  # covers the change...
    assert (x2 - x1) * (y2 - y1) < 0.7 * 1280 * 720  # ...not the whole frame
    assert x2 - x1 >= 640 and y2 - y1 >= 360  # at least half the frame each way: objects keep their scale

    quiet = MotionGate(MotionOptions(full_check_interval_s=100.0))
    quiet.check(0.0, frame)
    assert not quiet.check(0.1, frame).run
    busy = quiet.check(0.2, frame, busy=True)
    assert busy.run and busy.reason == "busy" and busy.roi is None


def test_zones_test_the_bottom_centre_and_masks_win() -> None:
    floor = Zone("floor", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))
    mirror = Zone("mirror", ((0.8, 0.0), (1.0, 0.0), (1.0, 1.0), (0.8, 1.0)))
    standing = Detection("ebike", 0.9, 100, 100, 200, 500)  # feet at y=500 of 720: on the floor
    hanging = Detection("ebike", 0.9, 100, 0, 200, 300)  # bottom at y=300: above the floor zone
    reflected = Detection("ebike", 0.9, 1100, 300, 1200, 600)  # bottom centre inside the mirror mask
    kept = ZoneFilter(zones=(floor,), masks=(mirror,)).apply([standing, hanging, reflected], 1280, 720)
    assert kept == [standing]
    assert ZoneFilter().apply([standing, hanging], 1280, 720) == [standing, hanging]


def test_zone_config_explains_absolute_coordinates() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1: give corners as fractions"):
        ZoneConfig(name="floor", polygon=[(0, 0), (640, 0), (640, 360)])


def test_tracker_keeps_ids_through_motion_and_a_missed_frame() -> None:
    tracker = IouTracker()
    first = tracker.update(
        0.0, [Detection("ebike", 0.9, 100, 100, 300, 400), Detection("person", 0.9, 500, 50, 600, 400)]
    )
    # Next frame: the e-bike moved a little and was read as a bicycle once; the person was missed.
    second = tracker.update(0.1, [Detection("bicycle", 0.5, 110, 100, 310, 400)])
    third = tracker.update(
        0.2, [Detection("ebike", 0.9, 120, 100, 320, 400), Detection("person", 0.9, 505, 50, 605, 400)]
    )
    assert second[0].track_id == first[0].track_id == third[0].track_id
    assert third[1].track_id == first[1].track_id
    track = next(t for t in tracker.tracks if t.track_id == first[0].track_id)
    assert track.label == "ebike" and track.hits == 3
    # Gone longer than max_age_s: a new id.
    assert tracker.update(5.0, [Detection("ebike", 0.9, 120, 100, 320, 400)])[0].track_id not in {1, 2}


def test_privacy_blurs_people_only() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    person = Detection("person", 0.9, 50, 50, 250, 300)
    ebike = Detection("ebike", 0.9, 350, 50, 600, 300)
    blurred = apply_privacy(frame, [person, ebike], "blur_people")
    assert blurred[50:300, 50:250].std() < 0.5 * frame[50:300, 50:250].std()
    assert np.array_equal(blurred[50:300, 350:600], frame[50:300, 350:600])
    pixelated = apply_privacy(frame, [person], "pixelate_people")
    assert len(np.unique(pixelated[60:72, 60:72].reshape(-1, 3), axis=0)) <= 4
    assert apply_privacy(frame, [person], "none") is frame


def test_snapshot_of_a_noisy_720p_frame_fits_one_mqtt_message() -> None:
    frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)  # worst case for JPEG
    config = SnapshotConfig(max_width=1280, max_bytes=60_000)
    snapshot = encode_snapshot(frame, [Detection("ebike", 0.9, 10, 10, 400, 600, track_id=3)], config)
    assert len(snapshot.jpeg) <= 60_000
    assert snapshot.width <= 1280 and snapshot.width / snapshot.height == pytest.approx(16 / 9, rel=0.02)
    from datetime import UTC, datetime

    message = snapshot_message(
        device_id="lift-1", event_id="e" * 16, snapshot_id="s" * 16, ts=datetime.now(UTC), snapshot=snapshot
    )
    decoded = decode(str(Topic("tower-a", "lift-1", Channel.SNAPSHOT)), message.to_json())
    jpeg = base64.b64decode(decoded.message.data_b64)  # type: ignore[attr-defined]
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (
        snapshot.height,
        snapshot.width,
    )


def test_health_report_fields_and_interval_reset(tmp_path: Path) -> None:
    health = HealthCounters()
    for _ in range(30):
        health.frame_in()
    health.dropped(6)
    for i in range(24):
        health.processed(10.0 if i % 2 else None)
    fields = health.report(2.0, queue_depth=7)
    assert fields["fps_in"] == 15.0 and fields["fps_processed"] == 12.0 and fields["inferences_per_s"] == 6.0
    assert (
        fields["inference_ms"] == 10.0 and fields["dropped_frames"] == 6 and fields["uplink_queue_depth"] == 7
    )
    again = health.report(2.0)
    assert again["fps_in"] == 0.0 and again["dropped_frames"] == 0 and again["dropped_frames_total"] == 6


def test_cpu_temperature_from_thermal_zones(tmp_path: Path) -> None:
    for index, (kind, millideg) in enumerate((("cpu-thermal", "51234"), ("battery", "30000"))):
        zone = tmp_path / f"thermal_zone{index}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millideg + "\n")
    assert cpu_temperature_c(tmp_path) == pytest.approx(51.234)
    assert cpu_temperature_c(tmp_path / "absent") is None


def test_logging_actuators_remember_commands_and_release_on_close() -> None:
    actuators = make_actuators(ActuatorConfig())
    assert isinstance(actuators, LoggingActuators)
    actuators.hold_door("provisional")
    actuators.voice_warning("confirmed")
    actuators.close()
    assert actuators.history == [
        ("hold_door", "provisional"),
        ("voice_warning", "confirmed"),
        ("release_door", "shutdown"),
    ]


def test_gpio_actuators_drive_the_relay_and_read_the_door_on_mock_pins() -> None:
    gpiozero = pytest.importorskip("gpiozero", reason="the 'gpio' extra is not installed")
    from gpiozero.pins.mock import MockFactory

    previous = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = MockFactory()  # a fake for the hardware only
    try:
        config = ActuatorConfig(
            kind="gpio", door_hold_pin=17, voice_pin=27, voice_pulse_s=0.05, door_open_pin=22
        )
        actuators = make_actuators(config)
        assert isinstance(actuators, GpioActuators)
        relay = gpiozero.Device.pin_factory.pin(17)
        door = gpiozero.Device.pin_factory.pin(22)
        assert relay.state == 0
        actuators.hold_door("provisional")
        assert relay.state == 1
        door.drive_low()  # the door contact closes to ground while the door is open
        assert actuators.door_open() is True
        door.drive_high()  # pulled up: contact open, door closed
        assert actuators.door_open() is False
        actuators.release_door("ebike_left")
        assert relay.state == 0
        actuators.close()
    finally:
        gpiozero.Device.pin_factory = previous


def test_gpio_kind_without_pins_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="needs door_hold_pin and/or voice_pin"):
        ActuatorConfig(kind="gpio")
