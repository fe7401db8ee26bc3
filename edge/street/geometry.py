"""Plain-Python geometry of zones and boxes (no numpy, no OpenCV): the config validators use it too."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in frame pixels."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def length(self) -> float:
        """The vehicle's apparent length: its box's longer side (a side view shows the length, a view
        along the street the height and width, whichever is longer)."""
        return max(self.width, self.height)

    @property
    def ground(self) -> Point:
        """Where the vehicle stands: the box's bottom centre (what zones are tested against)."""
        return ((self.x1 + self.x2) / 2.0, self.y2)

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


def iou(a: Box, b: Box) -> float:
    inter = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1)) * max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def displacement(a: Box, b: Box) -> float:
    """How far a vehicle moved between two boxes, robust to partial occlusion.

    A pedestrian or a passing car hiding one end of a parked vehicle moves one edge of its box, not the
    others; a vehicle that really moves moves every edge. So each axis takes the smallest change among
    the two edges and the centre, and the result is the length of that (dx, dy).
    """
    dx = min(abs(a.x1 - b.x1), abs(a.x2 - b.x2), abs((a.x1 + a.x2) - (b.x1 + b.x2)) / 2.0)
    dy = min(abs(a.y1 - b.y1), abs(a.y2 - b.y2), abs((a.y1 + a.y2) - (b.y1 + b.y2)) / 2.0)
    return math.hypot(dx, dy)


def contains(polygon: Sequence[Point], point: Point) -> bool:
    """Point in polygon (even-odd ray casting); points on an edge count as inside."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if _on_segment((x1, y1), (x2, y2), point):
            return True
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def area(polygon: Sequence[Point]) -> float:
    """Unsigned area (shoelace)."""
    total = 0.0
    for i in range(len(polygon)):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % len(polygon)]
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0


def self_intersection(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (0-based edge i runs from corner i to corner i+1) that touch
    or cross, or None for a simple polygon."""
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            if _segments_touch(*edges[i], *edges[j]):
                return (i, j)
    return None


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    if abs(_orientation(a, b, p)) > 1e-9 * max(1.0, abs(b[0] - a[0]) + abs(b[1] - a[1])):
        return False
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_touch(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    d1, d2 = _orientation(q1, q2, p1), _orientation(q1, q2, p2)
    d3, d4 = _orientation(p1, p2, q1), _orientation(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )
