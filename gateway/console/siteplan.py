"""A site plan without any tile service: the site's devices placed by their registered positions.

Control rooms are often offline, so the plan is drawn from the registry alone: positions projected
onto a box (equirectangular, east-west scaled by the latitude's cosine; exact enough across a site),
a scale bar in metres, north up. Devices without a position are listed beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.devices.models import Device

WIDTH, HEIGHT, MARGIN = 640.0, 360.0, 48.0
EARTH_RADIUS_M = 6_371_000.0
_NICE_METRES = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)


@dataclass(frozen=True, slots=True)
class PlacedDevice:
    id: str
    device_type: str
    description: str
    x: float
    y: float
    focus: bool  # the device of the event (or page) the plan is drawn for

    @property
    def label_left(self) -> bool:
        """Near the right edge the name goes left of the dot, so that it stays on the plan."""
        return self.x > WIDTH * 0.6


@dataclass(frozen=True, slots=True)
class SitePlan:
    site: str
    width: float
    height: float
    placed: list[PlacedDevice]
    unplaced: list[str]  # ids of the site's devices with no registered position
    scale_m: int  # the scale bar's length in metres
    scale_px: float


def site_plan(site: str, devices: Sequence[Device], *, focus: str | None) -> SitePlan:
    located = [d for d in devices if d.latitude is not None and d.longitude is not None]
    unplaced = sorted(d.id for d in devices if d.latitude is None or d.longitude is None)
    if not located:
        return SitePlan(site, WIDTH, HEIGHT, [], unplaced, 0, 0.0)
    lat0 = sum(d.latitude or 0.0 for d in located) / len(located)
    lon0 = sum(d.longitude or 0.0 for d in located) / len(located)
    cos_lat = math.cos(math.radians(lat0))
    # Metres east and north of the mean position.
    metres = [
        (
            math.radians((d.longitude or 0.0) - lon0) * EARTH_RADIUS_M * cos_lat,
            math.radians((d.latitude or 0.0) - lat0) * EARTH_RADIUS_M,
        )
        for d in located
    ]
    span_x = max(x for x, _ in metres) - min(x for x, _ in metres)
    span_y = max(y for _, y in metres) - min(y for _, y in metres)
    span = max(span_x / (WIDTH - 2 * MARGIN), span_y / (HEIGHT - 2 * MARGIN), 50.0 / (WIDTH - 2 * MARGIN))
    metres_per_px = span  # one device alone: 50 m across the plan
    mid_x = (max(x for x, _ in metres) + min(x for x, _ in metres)) / 2
    mid_y = (max(y for _, y in metres) + min(y for _, y in metres)) / 2
    placed = [
        PlacedDevice(
            id=d.id,
            device_type=d.device_type,
            description=d.description,
            x=round(WIDTH / 2 + (x - mid_x) / metres_per_px, 1),
            y=round(HEIGHT / 2 - (y - mid_y) / metres_per_px, 1),  # north up
            focus=d.id == focus,
        )
        for d, (x, y) in zip(located, metres, strict=True)
    ]
    placed.sort(key=lambda p: p.focus)  # the focused device drawn last, on top
    target_m = metres_per_px * WIDTH / 5
    scale_m = max((n for n in _NICE_METRES if n <= target_m), default=_NICE_METRES[0])
    return SitePlan(site, WIDTH, HEIGHT, placed, unplaced, scale_m, round(scale_m / metres_per_px, 1))
