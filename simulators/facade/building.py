"""A residential tower's street facade: floors, window columns, balconies, AC units, laundry racks.

Floors count as the building does: floor 1 is at street level, floor ``k`` spans heights
``(k - 1) * floor_height_m`` to ``k * floor_height_m``. Window columns count from 1 at the left edge as
the camera sees the facade; column ``j`` is centred at ``(j - 0.5) * column_width_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.facade.camera import CameraPose

MIN_FLOORS = 6
MAX_FLOORS = 33
SILL_M = 0.9
PARAPET_M = 1.1


@dataclass(frozen=True)
class Building:
    floors: int
    floor_height_m: float
    columns: int
    column_width_m: float
    window_width_m: float
    window_height_m: float
    balcony_columns: frozenset[int]  # columns with a stack of balconies (from floor 2 up)
    balcony_depth_m: float
    ac_units: frozenset[tuple[int, int]]  # (floor, column): an outdoor unit under that window
    laundry: frozenset[tuple[int, int]]  # (floor, column): a rack with clothes out of that window
    wall_colour: tuple[int, int, int]  # BGR
    trim_colour: tuple[int, int, int]
    glass_colour: tuple[int, int, int]

    @property
    def width_m(self) -> float:
        return self.columns * self.column_width_m

    @property
    def height_m(self) -> float:
        return self.floors * self.floor_height_m

    def floor_y(self, floor: int) -> float:
        """Height of floor ``floor``'s floor line (``floors + 1`` is the roof line)."""
        return (floor - 1) * self.floor_height_m

    def column_x(self, column: int) -> float:
        return (column - 0.5) * self.column_width_m

    def window_rect(self, floor: int, column: int) -> tuple[float, float, float, float]:
        """(x_left, y_bottom, x_right, y_top) of a window, facade metres."""
        x = self.column_x(column)
        y = self.floor_y(floor) + SILL_M
        half = self.window_width_m / 2
        return x - half, y, x + half, min(y + self.window_height_m, self.floor_y(floor + 1) - 0.2)

    def has_balcony(self, floor: int, column: int) -> bool:
        return floor >= 2 and column in self.balcony_columns

    def release_point(self, floor: int, column: int, rng: np.random.Generator) -> tuple[float, float, float]:
        """Where a thrown object leaves a window (or its balcony railing), world metres."""
        if not (1 <= floor <= self.floors and 1 <= column <= self.columns):
            raise ValueError(
                f"window floor {floor}, column {column} is not on this building "
                f"(floors 1..{self.floors}, columns 1..{self.columns})"
            )
        x = self.column_x(column) + float(rng.uniform(-0.3, 0.3)) * self.window_width_m
        if self.has_balcony(floor, column):
            return x, self.floor_y(floor) + float(rng.uniform(1.0, 1.3)), self.balcony_depth_m + 0.1
        return x, self.floor_y(floor) + float(rng.uniform(1.0, 1.5)), float(rng.uniform(0.1, 0.4))


def random_building(rng: np.random.Generator, floors: int | None = None) -> Building:
    if floors is None:
        floors = int(rng.integers(MIN_FLOORS, MAX_FLOORS + 1))
    if not MIN_FLOORS <= floors <= MAX_FLOORS:
        raise ValueError(f"floors must be {MIN_FLOORS}..{MAX_FLOORS}, got {floors}")
    columns = int(rng.integers(4, 13))
    column_width = float(rng.uniform(2.8, 4.2))
    balcony_columns = frozenset(int(c) for c in range(1, columns + 1) if rng.random() < 0.35)
    ac: set[tuple[int, int]] = set()
    laundry: set[tuple[int, int]] = set()
    for floor in range(2, floors + 1):
        for column in range(1, columns + 1):
            if rng.random() < 0.3:
                ac.add((floor, column))
            if rng.random() < (0.2 if column in balcony_columns else 0.06):
                laundry.add((floor, column))
    tone = float(rng.uniform(0.6, 1.0))
    base = [(190, 200, 210), (170, 180, 200), (200, 200, 195), (150, 165, 185), (185, 190, 175)]
    wall = tuple(int(c * tone) for c in base[int(rng.integers(len(base)))])
    return Building(
        floors=floors,
        floor_height_m=float(rng.uniform(2.8, 3.2)),
        columns=columns,
        column_width_m=column_width,
        window_width_m=float(rng.uniform(0.4, 0.6)) * column_width,
        window_height_m=float(rng.uniform(1.3, 1.7)),
        balcony_columns=balcony_columns,
        balcony_depth_m=float(rng.uniform(1.0, 1.5)),
        ac_units=frozenset(ac),
        laundry=frozenset(laundry),
        wall_colour=(int(wall[0]), int(wall[1]), int(wall[2])),
        trim_colour=(int(wall[0] * 0.8), int(wall[1] * 0.8), int(wall[2] * 0.8)),
        glass_colour=(int(rng.integers(70, 110)), int(rng.integers(70, 100)), int(rng.integers(55, 80))),
    )


REFERENCE_ASPECT = 9 / 16


def random_camera_pose(rng: np.random.Generator, building: Building) -> CameraPose:
    """A camera at the foot of the tower, framing the roof with sky above it."""
    hfov = float(rng.uniform(70, 100))
    distance = float(np.clip(building.height_m * rng.uniform(0.15, 0.4), 8.0, 40.0))
    height = float(rng.uniform(1.0, 5.0))
    x = building.width_m * float(rng.uniform(0.3, 0.7))
    # Tilt so the roof line sits 15-35 % down the picture: sky above it, as many floors as fit below.
    roof_elevation = math.atan2(building.height_m + PARAPET_M - height, distance)
    half_height = math.tan(math.radians(hfov) / 2) * REFERENCE_ASPECT
    roof_row = float(rng.uniform(0.15, 0.35))  # fraction of the height from the top
    above_centre = math.atan((0.5 - roof_row) * 2 * half_height)
    tilt = math.degrees(roof_elevation - above_centre)
    return CameraPose(
        x_m=x,
        height_m=height,
        distance_m=distance,
        tilt_deg=float(np.clip(tilt, 10.0, 80.0)),
        yaw_deg=float(rng.uniform(-8, 8)),
        roll_deg=float(rng.uniform(-2, 2)),
        hfov_deg=hfov,
        k1=float(rng.uniform(-0.12, -0.01)),
        k2=float(rng.uniform(0.0, 0.02)),
    )
