"""Small value types shared by the vision stages."""

from __future__ import annotations

from dataclasses import dataclass, replace

# The detector's default minimum score, chosen with models.ebike.tune on validation rides (see the model card).
DEFAULT_SCORE_THRESHOLD = 0.3


@dataclass(frozen=True, slots=True)
class Detection:
    """One object in frame pixels (x1, y1, x2, y2); ``track_id`` is set by the tracker."""

    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    track_id: int | None = None

    @property
    def bottom_center(self) -> tuple[float, float]:
        """Where the object stands on the floor: what zones are tested against."""
        return ((self.x1 + self.x2) / 2.0, self.y2)

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def with_track(self, track_id: int) -> Detection:
        return replace(self, track_id=track_id)


def iou(a: Detection, b: Detection) -> float:
    ix1, iy1 = max(a.x1, b.x1), max(a.y1, b.y1)
    ix2, iy2 = min(a.x2, b.x2), min(a.y2, b.y2)
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0
