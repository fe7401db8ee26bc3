"""Close-ups for plates: a pan-tilt-zoom camera beside the fixed one, turned onto a stopped vehicle.

A fixed pole camera that watches a whole street sees a plate 2-13 pixels high (the street simulator's
held-out scenes at 1080p), far below what any reader reads. Parking-enforcement poles therefore pair it
with a PTZ camera that zooms onto the vehicle the fixed view found ("gun-ball linkage"). A source that
can do this has a ``closeup`` method (:class:`CloseUpSource`); the street config's
``camera.closeup.enabled`` asks for it, and ``citywatch edge check`` refuses a source kind without one.
The street simulator's source has one; a real PTZ driver (ONVIF) would be another source kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class CloseUp:
    """What the PTZ camera saw once zoomed: a short burst of frames (a plate is taken only when frames
    agree on it), where the vehicle is expected in them, and the zoom used. ``frames`` may be a
    generator, read once: a device then holds one close-up frame at a time (a 1080p frame is 6 MB, and
    the street agent's memory budget is tight)."""

    frames: Iterable[np.ndarray]
    box: tuple[float, float, float, float]  # the vehicle, in the close-up's pixels
    zoom: float  # focal length over the fixed camera's


@runtime_checkable
class CloseUpSource(Protocol):
    def closeup(
        self, box: tuple[float, float, float, float], t: float, *, fill: float, max_zoom: float, frames: int
    ) -> CloseUp | None: ...


def source_can_zoom(driver: Any) -> bool:
    """Whether a source driver (a class, or a classmethod factory of one) makes sources with close-ups."""
    owner = getattr(driver, "__self__", driver)
    return callable(getattr(owner, "closeup", None))


def vehicle_cut(image: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.1) -> np.ndarray:
    """A close-up frame cut to the vehicle's expected ``box`` grown by ``margin`` on each side (a view)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    return image[top:bottom, left:right]
