"""Evidence snapshots: boxes drawn, people blurred or pixelated, JPEG sized to fit one MQTT message."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from citywatch.protocol import SnapshotMessage
from edge.vision.config import SnapshotConfig
from edge.vision.types import Detection

COLOURS = {"ebike": (0, 0, 255), "person": (0, 200, 0), "bicycle": (255, 160, 0)}
DEFAULT_COLOUR = (0, 200, 255)
PRIVATE_LABELS = frozenset({"person"})


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    jpeg: bytes
    width: int
    height: int


def apply_privacy(image: np.ndarray, detections: Sequence[Detection], mode: str) -> np.ndarray:
    """Blur or pixelate every person's box (in place on a copy); 'none' returns the image unchanged."""
    if mode == "none":
        return image
    out = image.copy()
    height, width = out.shape[:2]
    for det in detections:
        if det.label not in PRIVATE_LABELS:
            continue
        x1, y1 = max(0, int(det.x1)), max(0, int(det.y1))
        x2, y2 = min(width, int(np.ceil(det.x2))), min(height, int(np.ceil(det.y2)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        region = out[y1:y2, x1:x2]
        if mode == "pixelate_people":
            small = cv2.resize(
                region, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)), interpolation=cv2.INTER_AREA
            )
            out[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        else:
            kernel = max(3, ((min(x2 - x1, y2 - y1) // 3) | 1))
            out[y1:y2, x1:x2] = cv2.GaussianBlur(region, (kernel, kernel), 0)
    return out


def draw_boxes(image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    out = image.copy()
    thickness = max(1, round(out.shape[1] / 400))
    for det in detections:
        colour = COLOURS.get(det.label, DEFAULT_COLOUR)
        p1, p2 = (int(det.x1), int(det.y1)), (int(det.x2), int(det.y2))
        cv2.rectangle(out, p1, p2, colour, thickness)
        text = f"{det.label} {det.score:.2f}" + (f" #{det.track_id}" if det.track_id is not None else "")
        cv2.putText(out, text, (p1[0] + 2, max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    return out


def encode_snapshot(
    frame: np.ndarray, detections: Sequence[Detection], config: SnapshotConfig
) -> EncodedSnapshot:
    """Privacy first (on the full-resolution frame), then boxes, then shrink until under max_bytes."""
    image = draw_boxes(apply_privacy(frame, detections, config.privacy), detections)
    if image.shape[1] > config.max_width:
        scale = config.max_width / image.shape[1]
        image = cv2.resize(
            image, (config.max_width, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA
        )
    quality = config.jpeg_quality
    while True:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode the snapshot as JPEG")
        if len(buffer) <= config.max_bytes:
            return EncodedSnapshot(buffer.tobytes(), image.shape[1], image.shape[0])
        if quality > 40:
            quality -= 15
        else:  # quality alone is not enough: halve the size and start again
            image = cv2.resize(
                image,
                (max(1, image.shape[1] // 2), max(1, image.shape[0] // 2)),
                interpolation=cv2.INTER_AREA,
            )
            quality = config.jpeg_quality


def new_snapshot_id() -> str:
    return uuid.uuid4().hex


def snapshot_message(
    *, device_id: str, event_id: str, snapshot_id: str, ts: datetime, snapshot: EncodedSnapshot
) -> SnapshotMessage:
    return SnapshotMessage(
        device_id=device_id,
        snapshot_id=snapshot_id,
        event_id=event_id,
        ts=ts,
        width=snapshot.width,
        height=snapshot.height,
        data_b64=base64.b64encode(snapshot.jpeg).decode("ascii"),
    )
