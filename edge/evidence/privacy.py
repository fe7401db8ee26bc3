"""Privacy in the evidence: configured zones blurred whole (but for the object's corridor), faces blurred.

Zones (balconies, windows) are polygons in the camera's pixels; each evidence frame gets them blurred
except a corridor of ``track_corridor_px`` around the object's tracked path and fitted curve, so the
fall stays visible where it crosses a balcony. Blurring is a coarse pixelation smoothed back up
(blocks of ``width / BLOCKS_ACROSS`` pixels): cheap, and not reversible the way a light Gaussian is.

Faces: OpenCV's Haar frontal-face cascade (``cv2.CascadeClassifier``; in OpenCV 5 it lives in the
contrib build the ``vision`` extra installs, the cascade XML in ``cv2.data`` or Debian's opencv-data).
What it can do here is limited: a real portrait pasted into a facade frame (tests/edge/evidence/
test_privacy.py) is found from about 60 pixels of face width in the evidence frame, not every time
below about 80, never under 50; nothing turned away or in profile. It also marks a few patches of
wall (blurred for nothing: harmless). A pass over a 1280x720 frame costs a few hundred milliseconds,
so the worker searches every few frames only. A facade camera at the foot of a tower sees a face on the tenth floor a
few pixels wide: neither found nor recognisable. It catches people near the camera (the street, the
lowest floors); privacy zones are the tool for balconies and windows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.evidence.config import PrivacyConfig
from edge.vision.errors import VisionStartError

log = logging.getLogger(__name__)

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 as fractions of the width and height
BLOCKS_ACROSS = 96  # a 960-wide frame blurs in 10-pixel blocks
FACE_CASCADE = "haarcascade_frontalface_default.xml"
CASCADE_DIRS = (Path("/usr/share/opencv4/haarcascades"), Path("/usr/share/opencv/haarcascades"))
FACE_MIN_PX = 24  # the cascade's own window: nothing smaller is searched
MAX_SEARCH_PIXELS = 1280 * 720  # larger frames are searched in parts (FaceFinder._search: memory)
TILE_FACE_PX = 200  # in parts, faces up to this are searched at full resolution, larger at half
FACE_MARGIN = 0.25  # boxes grow by this share each side (hair, the motion between checked frames)


class EvidenceStartError(VisionStartError):
    """The evidence cannot be produced as configured (no face cascade): the message says what to fix."""


def find_face_cascade(explicit: Path | None = None) -> Path:
    if explicit is not None:
        if not explicit.is_file():
            raise EvidenceStartError(f"evidence.privacy.face_cascade: {explicit} does not exist")
        return explicit
    data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    candidates = ([Path(data)] if data else []) + list(CASCADE_DIRS)
    for directory in candidates:
        if (directory / FACE_CASCADE).is_file():
            return directory / FACE_CASCADE
    raise EvidenceStartError(
        f"evidence.privacy.blur_faces: no {FACE_CASCADE} in {', '.join(str(c) for c in candidates)}; "
        "install Debian's opencv-data or set evidence.privacy.face_cascade"
    )


class FaceFinder:
    """Upright frontal faces with OpenCV's Haar cascade; boxes as fractions of the frame."""

    def __init__(self, cascade: Path | None = None, *, min_px: int = FACE_MIN_PX) -> None:
        classifier = getattr(cv2, "CascadeClassifier", None)
        if classifier is None:
            raise EvidenceStartError(
                "evidence.privacy.blur_faces: this OpenCV has no Haar cascade classifier (OpenCV 5 moved it "
                "to contrib): install opencv-contrib-python-headless, or set blur_faces false"
            )
        self.path = find_face_cascade(cascade)
        try:
            self._cascade = classifier(str(self.path))
            loaded = not self._cascade.empty()
        except (cv2.error, SystemError):  # OpenCV raises from inside the constructor on a malformed file
            loaded = False
        if not loaded:
            raise EvidenceStartError(f"evidence.privacy: {self.path} is not a Haar cascade OpenCV can load")
        self.min_px = min_px

    def find(self, image: np.ndarray) -> list[Box]:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        height, width = grey.shape
        return [
            (x / width, y / height, (x + w) / width, (y + h) / height) for x, y, w, h in self._search(grey)
        ]

    def _detect(self, grey: np.ndarray, largest: int | None = None) -> list[tuple[int, int, int, int]]:
        # Tuned for recall (a box too many only blurs a patch of wall): 1.08 / 3 missed the test portrait
        # at half the widths under 100 px, 1.1 / 2 at fewer.
        found = self._cascade.detectMultiScale(
            grey,
            scaleFactor=1.1,
            minNeighbors=2,
            minSize=(self.min_px, self.min_px),
            maxSize=(largest, largest) if largest else (0, 0),
        )
        return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]

    def _search(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Faces in ``grey`` (x, y, w, h). One cascade pass holds its whole scale pyramid, about 60 bytes a
        pixel (125 MB for a 1080p frame), so a large frame is searched in parts: faces up to TILE_FACE_PX
        in overlapping tiles at full resolution, larger ones in the frame at half resolution."""
        height, width = grey.shape
        if height * width <= MAX_SEARCH_PIXELS:
            return self._detect(grey)
        # Tiles overlap by this much, so every face up to it lies whole in one; the cascade finds faces under
        # ~100 px unreliably, so nothing that small is left to the half-resolution pass.
        largest = TILE_FACE_PX
        columns, rows = _tiling(width, height, largest)
        tile_w, tile_h = -(-width // columns), -(-height // rows)
        found = []
        for row in range(rows):
            for column in range(columns):
                x0, y0 = column * tile_w, row * tile_h
                tile = grey[y0 : min(height, y0 + tile_h + largest), x0 : min(width, x0 + tile_w + largest)]
                found += [(x + x0, y + y0, w, h) for x, y, w, h in self._detect(tile, largest)]
        half = cv2.resize(grey, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        found += [(2 * x, 2 * y, 2 * w, 2 * h) for x, y, w, h in self._search(half)]
        return found


def _tiling(width: int, height: int, overlap: int) -> tuple[int, int]:
    """The fewest columns x rows whose tiles, grown by ``overlap``, each stay within one search's pixels."""
    for count in range(2, 64):
        for columns in range(1, count + 1):
            rows = count // columns
            if columns * rows != count:
                continue
            if (-(-width // columns) + overlap) * (-(-height // rows) + overlap) <= MAX_SEARCH_PIXELS:
                return columns, rows
    raise ValueError(f"a {width}x{height} frame cannot be cut into searchable tiles")


def blur_where(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the pixels under ``mask`` (uint8, nonzero) replaced by a coarse blur, in place."""
    height, width = image.shape[:2]
    block = max(4, width // BLOCKS_ACROSS)
    small = cv2.resize(image, (max(1, width // block), max(1, height // block)), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    cv2.copyTo(blurred, mask, image)
    return image


class PrivacyFilter:
    """Zones and faces for one event's evidence (its corridor); masks are cached per frame size."""

    def __init__(
        self,
        config: PrivacyConfig,
        *,
        frame_size: tuple[int, int],
        corridor: Sequence[Sequence[Point]] = (),
    ) -> None:
        self.config = config
        self.frame_size = frame_size  # the camera's pixels, which zones and the corridor are given in
        self.corridor = [list(line) for line in corridor if len(line) > 0]
        self._masks: dict[tuple[int, int], np.ndarray | None] = {}

    @property
    def active(self) -> bool:
        return bool(self.config.zones) or self.config.blur_faces

    def zone_mask(self, width: int, height: int) -> np.ndarray | None:
        """255 where a zone must be blurred in a ``width`` x ``height`` frame; None without zones."""
        key = (width, height)
        if key not in self._masks:
            self._masks[key] = self._build_mask(width, height)
        return self._masks[key]

    def _build_mask(self, width: int, height: int) -> np.ndarray | None:
        if not self.config.zones:
            return None
        sx, sy = width / self.frame_size[0], height / self.frame_size[1]
        mask = np.zeros((height, width), np.uint8)
        for zone in self.config.zones:
            polygon = np.array([[x * sx, y * sy] for x, y in zone.polygon], np.float64)
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
        half = self.config.track_corridor_px * sx
        if half > 0:
            for line in self.corridor:
                points = np.round(np.array([[u * sx, v * sy] for u, v in line])).astype(np.int32)
                if len(points) == 1:
                    cv2.circle(mask, tuple(int(c) for c in points[0]), round(half), 0, -1)
                else:
                    cv2.polylines(mask, [points], False, 0, thickness=max(1, round(2 * half)))
        return mask

    def apply(self, image: np.ndarray, faces: Sequence[Box] = ()) -> np.ndarray:
        """Blur zones (but the corridor) and ``faces`` in ``image`` (in place; returned for chaining)."""
        height, width = image.shape[:2]
        zones = self.zone_mask(width, height)
        mask = zones.copy() if zones is not None else None
        if faces:
            if mask is None:
                mask = np.zeros((height, width), np.uint8)
            for x1, y1, x2, y2 in faces:
                dx, dy = (x2 - x1) * FACE_MARGIN, (y2 - y1) * FACE_MARGIN
                p1 = (max(0, int((x1 - dx) * width)), max(0, int((y1 - dy) * height)))
                p2 = (min(width - 1, int((x2 + dx) * width)), min(height - 1, int((y2 + dy) * height)))
                cv2.rectangle(mask, p1, p2, 255, -1)
        if mask is not None:
            blur_where(image, mask)
        return image
