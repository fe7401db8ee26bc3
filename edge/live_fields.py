"""Which fields of a pushed config each device kind takes while it runs, and which need a restart.

A config push (edge/installer/live.py) is compared with the running config field by field (dotted
paths, ``culvert.thresholds.notice_cm``; a list such as ``elevator.zones`` is one field). When every
changed field is under a path listed here for the device's kind (or ``COMMON_LIVE``), the agent takes the
config live: the culvert between two samples, a camera agent between two frames on its frame-loop
thread (thresholds, zones, detector scores, analyzer rules, evidence timing: edge/vision/camera_agent.py).
Anything else (the camera or sensor, the model file, the frame size, MQTT, the outbox, the actuators'
pins) needs the agent restarted in-process on the new config, and the ack names those fields.

Pure Python (no numpy), so the culvert agent and ``citywatch config`` can read it.
"""

from __future__ import annotations

from collections.abc import Iterable

# Every kind: read afresh each time they are used.
COMMON_LIVE: tuple[str, ...] = ("telemetry", "device.description")

_DETECTOR_LIVE = (
    "score_threshold",
    "iou_threshold",
    "class_thresholds",
    "label_map",
    "keep_labels",
    "labels",
)

LIVE_FIELDS: dict[str, tuple[str, ...]] = {
    # The analyzer's options and reporting are read at every sample; the sensor needs a new agent.
    "culvert": ("culvert",),
    # The same loaded model with new thresholds and labels; a new motion gate, zones and masks; the
    # tracker's and the e-bike analyzer's options (its state, a held door, an open event, stays).
    # Restart: camera, detector.model/layout/threads/input_size, actuators (GPIO pins).
    "elevator": (
        *(f"elevator.detector.{name}" for name in _DETECTOR_LIVE),
        "elevator.motion",
        "elevator.tracker",
        "elevator.zones",
        "elevator.masks",
        "elevator.ebike",
        "elevator.snapshots",
    ),
    # Calibration recomputed, masks and detection settings given to the motion detector (a changed
    # background model relearns for a few frames), tracking and fall rules; tracks in flight stay.
    # Restart: camera (source, frame size the calibration pixels refer to), the clip recorder and maker.
    "facade": (
        "facade.building",
        "facade.calibration",
        "facade.columns",
        "facade.parallax",
        "facade.masks",
        "facade.detection",
        "facade.tracking",
        "facade.rules",
        "facade.evidence.post_s",
        "facade.evidence.max_event_s",
    ),
    # The same loaded model with new thresholds; zones matched by name keep their open cases (a case
    # whose zone is gone ends); tracking, queues, plate retries and the photos' settings.
    # Restart: camera, detector.model/layout/threads/input_size, plate.reader (another model).
    "street": (
        *(f"street.detector.{name}" for name in _DETECTOR_LIVE),
        "street.timezone",
        "street.vehicle_classes",
        "street.privacy_classes",
        "street.zones",
        "street.occlusion_tolerance_s",
        "street.queue",
        "street.tracking",
        "street.plate.min_confidence",
        "street.plate.retry_s",
        "street.evidence",
    ),
}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def live_fields(kind: str) -> tuple[str, ...]:
    return COMMON_LIVE + LIVE_FIELDS.get(kind, ())


def restart_fields(kind: str, changed: Iterable[str]) -> list[str]:
    """The changed fields a ``kind`` agent cannot take while it runs (empty: all of it applies live)."""
    live = live_fields(kind)
    return [path for path in changed if not any(_under(path, prefix) for prefix in live)]
