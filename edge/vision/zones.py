"""Zones (polygons tested at a box's bottom centre) and masks (regions whose detections are ignored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.types import Detection

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in relative coordinates (0..1 of the frame) so it survives a resolution change."""

    name: str
    polygon: tuple[Point, ...]

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        contour = np.array([(px * width, py * height) for px, py in self.polygon], np.float32)
        return cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0


@dataclass(frozen=True, slots=True)
class ZoneFilter:
    """Keeps detections standing inside any zone (all when there are none) and outside every mask."""

    zones: tuple[Zone, ...] = ()
    masks: tuple[Zone, ...] = ()

    def apply(self, detections: Sequence[Detection], width: int, height: int) -> list[Detection]:
        kept = []
        for detection in detections:
            x, y = detection.bottom_center
            if any(mask.contains(x, y, width, height) for mask in self.masks):
                continue
            if self.zones and not any(zone.contains(x, y, width, height) for zone in self.zones):
                continue
            kept.append(detection)
        return kept
