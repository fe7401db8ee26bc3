"""Empty-car frames cut from annotated photos: what a detector reports where nothing is.

The issue behind it: an e-bike guard must stay silent on an empty car (floor mats, posters, door
frames). Real photos of empty cars are scarce, so each annotated photo yields up to ``max_regions``
rectangles that overlap no annotated object (each box widened by a margin, so no handlebar or
shoulder just outside a tight box is cut in). The crops exist only in memory while scoring.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

Region = tuple[int, int, int, int]  # x1, y1, x2, y2 in image pixels

# Labels whose presence on an empty frame is a false alarm or a near miss of one.
DEFAULT_ALARM_LABELS = ("ebike", "bicycle")


@dataclass(frozen=True)
class EmptyRegionRule:
    """How big an empty crop must be, and how far from every annotated box it stays."""

    max_regions: int = 2
    min_side_fraction: float = 0.25  # of the image's shorter side
    min_side_px: int = 64
    margin_fraction: float = 0.03  # of the image's longer side, added around each annotated box
    max_aspect: float = 3.0  # longer side over shorter side; longer crops are trimmed about the centre


def _overlaps(a: Region, b: Region) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _trim_aspect(region: Region, max_aspect: float) -> Region:
    x1, y1, x2, y2 = region
    width, height = x2 - x1, y2 - y1
    if width > max_aspect * height:
        keep = int(max_aspect * height)
        x1 += (width - keep) // 2
        x2 = x1 + keep
    elif height > max_aspect * width:
        keep = int(max_aspect * width)
        y1 += (height - keep) // 2
        y2 = y1 + keep
    return x1, y1, x2, y2


def empty_regions(
    boxes: Sequence[tuple[float, float, float, float]],
    width: int,
    height: int,
    rule: EmptyRegionRule = EmptyRegionRule(),
) -> list[Region]:
    """The largest rectangles, largest first, that touch no (widened) annotated box nor each other.

    ``boxes`` are every annotated object's x1, y1, x2, y2, whatever its class.

    Candidate edges are the image borders and the widened boxes' edges: a maximal empty rectangle
    always has its sides there, so trying every pair of them finds the largest one exactly.
    """
    margin = rule.margin_fraction * max(width, height)
    obstacles: list[Region] = [
        (
            max(0, int(x1 - margin)),
            max(0, int(y1 - margin)),
            min(width, int(x2 + margin + 0.999)),
            min(height, int(y2 + margin + 0.999)),
        )
        for x1, y1, x2, y2 in boxes
    ]
    min_side = max(rule.min_side_px, int(rule.min_side_fraction * min(width, height)))
    found: list[Region] = []
    for _ in range(rule.max_regions):
        xs = sorted({0, width, *(o[0] for o in obstacles), *(o[2] for o in obstacles)})
        ys = sorted({0, height, *(o[1] for o in obstacles), *(o[3] for o in obstacles)})
        best: Region | None = None
        best_area = 0
        for x1, x2 in combinations(xs, 2):
            if x2 - x1 < min_side:
                continue
            for y1, y2 in combinations(ys, 2):
                if y2 - y1 < min_side:
                    continue
                region = _trim_aspect((x1, y1, x2, y2), rule.max_aspect)
                area = (region[2] - region[0]) * (region[3] - region[1])
                if area > best_area and not any(_overlaps((x1, y1, x2, y2), o) for o in obstacles):
                    best, best_area = region, area
        if best is None:
            break
        found.append(best)
        obstacles.append(best)
    return found


@dataclass
class EmptyFrameTally:
    """What a detector reported on each empty frame, scored at any threshold afterwards.

    Detections are kept down to the ranking floor (0.05); counting those at or above a threshold
    gives what the runtime reports at that threshold, since greedy NMS over the higher-scoring boxes
    alone decides the same way.
    """

    alarm_labels: tuple[str, ...] = DEFAULT_ALARM_LABELS
    found: list[list[tuple[str, float]]] = field(default_factory=list)

    def add(self, detections: Iterable[tuple[str, float]]) -> None:
        self.found.append([(label, float(score)) for label, score in detections])

    def summary(
        self, score_threshold: float, class_thresholds: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        """Counts at the runtime's thresholds (``class_thresholds[label]``, else ``score_threshold``)."""
        per_class = class_thresholds or {}
        labels: Counter[str] = Counter()
        alarmed = 0
        for frame in self.found:
            kept = [label for label, score in frame if score >= per_class.get(label, score_threshold)]
            labels.update(kept)
            alarmed += any(label in self.alarm_labels for label in kept)
        frames = len(self.found)
        return {
            "frames": frames,
            "fp_per_frame": {
                label: round(labels[label] / frames, 4) if frames else None for label in self.alarm_labels
            },
            "frames_with_" + "_or_".join(self.alarm_labels): alarmed,
            "detections": dict(sorted(labels.items())),
        }

    def per_frame(self, label: str, threshold: float) -> float | None:
        """``label`` detections at or above ``threshold`` per empty frame."""
        if not self.found:
            return None
        count = sum(
            1 for frame in self.found for name, score in frame if name == label and score >= threshold
        )
        return round(count / len(self.found), 4)
