"""The street: pavements, two kerbside strips, one traffic lane each way, painted zones, a junction.

Seen across (world ``x``, metres) from the left: left pavement, left kerbside strip (a fire lane and a
hatched no-stopping box), the lane towards the camera (``in``), the lane away from it (``out``), the
right kerbside strip (a yellow-line no-parking stretch, a bus stop, legal parking bays) and the right
pavement, where the camera's pole stands at ``y = 0``. Traffic drives on the right, so ``in`` traffic
pulls into the left strip and ``out`` traffic into the right one. A traffic light at the junction ahead
stops both lanes before a zebra crossing; street lamps stand on both pavements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.street.camera import CameraPose

ZONE_KINDS = ("no_parking", "bus_stop", "fire_lane", "no_stopping_box")
SPAWN_BEHIND_M = 25.0  # vehicles enter and leave this far behind the camera (out of view)
FAR_Y_M = 220.0  # and this far ahead


@dataclass(frozen=True)
class Zone:
    """A painted no-parking zone: a rectangle of a kerbside strip, with its rules' exemptions."""

    name: str
    kind: str  # one of ZONE_KINDS
    side: str  # "left" or "right" strip
    x0: float
    x1: float
    y0: float
    y1: float
    exempt_classes: tuple[str, ...] = ()

    @property
    def polygon_m(self) -> list[tuple[float, float]]:
        """Corners on the road plane, near-left first, clockwise as seen from above."""
        return [(self.x0, self.y0), (self.x0, self.y1), (self.x1, self.y1), (self.x1, self.y0)]

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


@dataclass(frozen=True)
class Lane:
    name: str  # "in" (towards the camera) or "out" (away from it)
    x0: float
    x1: float
    direction: int  # +1: travels towards +y; -1: towards -y
    kerb: str  # the strip its traffic pulls into: "left" or "right"

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    def y_at(self, s: float) -> float:
        """World ``y`` of a point ``s`` metres along the lane from where its traffic enters."""
        return -SPAWN_BEHIND_M + s if self.direction > 0 else FAR_Y_M - s

    def s_at(self, y: float) -> float:
        return y + SPAWN_BEHIND_M if self.direction > 0 else FAR_Y_M - y

    @property
    def length(self) -> float:
        return FAR_Y_M + SPAWN_BEHIND_M


@dataclass(frozen=True)
class Building:
    side: str
    y0: float
    y1: float
    height_m: float
    colour: tuple[int, int, int]  # BGR
    floor_m: float
    shop_colour: tuple[int, int, int]


@dataclass(frozen=True)
class StreetLayout:
    left_pavement: tuple[float, float]
    left_strip: tuple[float, float]
    lanes: tuple[Lane, Lane]  # in, out
    right_strip: tuple[float, float]
    right_pavement: tuple[float, float]
    stop_line_out_y: float  # the out lane stops before this line
    crossing: tuple[float, float]  # the zebra crossing's near and far edge (y)
    junction: tuple[float, float]  # the cross street (y): no buildings there
    zones: tuple[Zone, ...]
    parking_bays: tuple[tuple[float, float], ...]  # legal bays on the right strip (y ranges): no zone
    lamp_ys: tuple[tuple[str, float], ...]  # street lamps: (side, y)
    light_x: float  # the traffic light's head hangs over this x, at the out stop line
    light_height_m: float
    buildings: tuple[Building, ...]

    @property
    def lane_in(self) -> Lane:
        return self.lanes[0]

    @property
    def lane_out(self) -> Lane:
        return self.lanes[1]

    @property
    def stop_line_in_y(self) -> float:
        return self.crossing[1] + 1.0

    def lane(self, name: str) -> Lane:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise KeyError(name)

    def strip(self, side: str) -> tuple[float, float]:
        return self.left_strip if side == "left" else self.right_strip

    def zone(self, name: str) -> Zone:
        for zone in self.zones:
            if zone.name == name:
                return zone
        raise KeyError(f"no zone {name!r}: the street has {', '.join(z.name for z in self.zones)}")

    def zone_at(self, x: float, y: float) -> Zone | None:
        for zone in self.zones:
            if zone.contains(x, y):
                return zone
        return None

    def kerb_x(self, side: str, width_m: float) -> float:
        """Where a parked vehicle's centre line is: 0.3 m between its side and the kerb."""
        x0, x1 = self.strip(side)
        return x0 + 0.3 + width_m / 2 if side == "left" else x1 - 0.3 - width_m / 2


def random_layout(rng: np.random.Generator) -> StreetLayout:
    strip = float(rng.uniform(2.3, 2.7))
    lane_w = float(rng.uniform(3.3, 3.7))
    left_pavement = (-float(rng.uniform(3.5, 5.0)), 0.0)
    left_strip = (0.0, strip)
    lane_in = Lane("in", strip, strip + lane_w, -1, "left")
    lane_out = Lane("out", strip + lane_w, strip + 2 * lane_w, +1, "right")
    right_strip = (lane_out.x1, lane_out.x1 + strip)
    right_pavement = (right_strip[1], right_strip[1] + float(rng.uniform(3.5, 5.0)))
    # Along the right strip, near to far: no parking, bus stop, legal bays, a hatched box.
    y = float(rng.uniform(8.0, 10.0))
    kerb = Zone("kerb_no_parking", "no_parking", "right", *right_strip, y, y + float(rng.uniform(24, 30)))
    y = kerb.y1 + float(rng.uniform(1.5, 3.0))
    bus = Zone("bus_stop", "bus_stop", "right", *right_strip, y, y + float(rng.uniform(15, 17)), ("bus",))
    y = bus.y1 + 1.5
    bays = tuple((y + 7.0 * i, y + 7.0 * (i + 1)) for i in range(2))
    y = bays[-1][1] + 1.5
    box = Zone("school_gate", "no_stopping_box", "right", *right_strip, y, y + float(rng.uniform(7, 9)))
    stop_line = box.y1 + float(rng.uniform(2.0, 4.0))
    crossing = (stop_line + 1.0, stop_line + 5.0)
    junction = (crossing[1] + 1.5, crossing[1] + float(rng.uniform(12, 16)))
    # Along the left strip: a fire lane from near the camera, then a hatched box.
    y = float(rng.uniform(10, 13))
    fire = Zone("fire_lane", "fire_lane", "left", *left_strip, y, y + float(rng.uniform(30, 36)))
    hatched = Zone(
        "hatched_box",
        "no_stopping_box",
        "left",
        *left_strip,
        fire.y1 + 2.0,
        fire.y1 + 2.0 + float(rng.uniform(6, 8)),
    )
    spacing = float(rng.uniform(24, 30))
    lamp_ys = tuple(
        (side, float(offset + spacing * i))
        for side, offset in (("left", float(rng.uniform(5, 15))), ("right", float(rng.uniform(18, 28))))
        for i in range(7)
    )
    buildings: list[Building] = []
    for side in ("left", "right"):
        y = -30.0
        while y < FAR_Y_M + 60:
            length = float(rng.uniform(14, 34))
            y1 = y + length
            if y < junction[1] and y1 > junction[0]:  # the cross street: no building across it
                if y < junction[0]:
                    buildings.append(_building(rng, side, y, junction[0]))
                y = junction[1]
                continue
            buildings.append(_building(rng, side, y, y1))
            y = y1 + (float(rng.uniform(0.5, 4.0)) if rng.random() < 0.3 else 0.0)
    return StreetLayout(
        left_pavement=left_pavement,
        left_strip=left_strip,
        lanes=(lane_in, lane_out),
        right_strip=right_strip,
        right_pavement=right_pavement,
        stop_line_out_y=stop_line,
        crossing=crossing,
        junction=junction,
        zones=(kerb, bus, box, fire, hatched),
        parking_bays=bays,
        lamp_ys=lamp_ys,
        light_x=lane_out.centre,
        light_height_m=float(rng.uniform(5.2, 6.0)),
        buildings=tuple(buildings),
    )


def _building(rng: np.random.Generator, side: str, y0: float, y1: float) -> Building:
    base = rng.uniform(110, 215)
    b, g, r = (int(np.clip(base + t, 40, 235)) for t in rng.uniform(-25, 25, 3))
    signs = [(40, 40, 160), (150, 90, 30), (40, 140, 200), (60, 120, 40), (170, 170, 170)]
    shop = signs[int(rng.integers(len(signs)))]
    return Building(side, y0, y1, float(rng.uniform(7, 28)), (b, g, r), float(rng.uniform(2.9, 3.3)), shop)


def random_pose(rng: np.random.Generator, layout: StreetLayout) -> CameraPose:
    """A pole on the right pavement a little back from the kerb, looking down the street and across it."""
    return CameraPose(
        x_m=layout.right_strip[1] + float(rng.uniform(0.4, 1.2)),
        y_m=0.0,
        height_m=float(rng.uniform(5.5, 7.0)),
        tilt_deg=float(rng.uniform(15.0, 19.0)),
        yaw_deg=-float(rng.uniform(8.0, 13.0)),
        roll_deg=float(rng.uniform(-1.0, 1.0)),
        hfov_deg=float(rng.uniform(54.0, 62.0)),
    )
