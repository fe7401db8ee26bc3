"""Vehicles of the five classes as simple 3-D models at real-world size, with plates.

A model is a few blocks (boxes whose top may be inset, so windscreens slope) in the vehicle's own frame:
``a`` metres forward from the centre of its footprint, ``b`` metres to its right, ``z`` up. Blocks carry
panels (windows, lights, grille, the plate) on their faces; wheels are dark tyre blocks under the body
with a rim drawn on the side the camera sees. Riders of two- and three-wheelers are blocks too.

Classes (``VEHICLE_CLASSES``) are what the parking rules know; ``body`` is the shape drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.street.plates import PlateColour, plate_size_mm, random_plate

VEHICLE_CLASSES = ("car", "truck", "bus", "motorbike", "ebike")
BODIES = {
    "car": ("sedan", "hatchback", "suv"),
    "truck": ("van", "box_truck"),
    "bus": ("bus",),
    "motorbike": ("motorbike",),
    "ebike": ("ebike", "tricycle"),
}
# The COCO label a generic detector gives each body (the analyzer's label_map starts from these).
COCO_LABEL = {
    "sedan": "car",
    "hatchback": "car",
    "suv": "car",
    "van": "car",
    "box_truck": "truck",
    "bus": "bus",
    "motorbike": "motorcycle",
    "ebike": "bicycle",
    "tricycle": "motorcycle",
}
CLASS_MIX = {"car": 0.72, "truck": 0.1, "bus": 0.05, "motorbike": 0.05, "ebike": 0.08}

BGR = tuple[int, int, int]
FACES = ("front", "rear", "left", "right", "top")

_CAR_PAINT: list[tuple[BGR, float]] = [
    ((232, 233, 235), 0.24),  # white
    ((28, 28, 30), 0.18),  # black
    ((182, 184, 186), 0.17),  # silver
    ((110, 112, 115), 0.12),  # grey
    ((40, 38, 176), 0.07),  # red
    ((140, 80, 25), 0.07),  # blue
    ((90, 45, 20), 0.04),  # dark blue
    ((50, 80, 120), 0.04),  # brown
    ((60, 110, 55), 0.03),  # green
    ((30, 180, 235), 0.04),  # yellow (taxi)
]
_TRUCK_PAINT: list[tuple[BGR, float]] = [
    ((225, 228, 230), 0.4),
    ((150, 90, 30), 0.2),
    ((40, 150, 60), 0.1),
    ((180, 180, 175), 0.15),
    ((40, 50, 170), 0.15),
]
_BUS_PAINT: list[tuple[BGR, float]] = [
    ((70, 150, 40), 0.4),
    ((170, 120, 30), 0.3),
    ((225, 225, 220), 0.2),
    ((40, 60, 190), 0.1),
]
_CLOTHES: list[BGR] = [
    (40, 40, 40),
    (160, 60, 20),
    (30, 30, 150),
    (200, 200, 200),
    (60, 120, 60),
    (30, 140, 200),
    (120, 60, 120),
]

GLASS: BGR = (70, 55, 45)
TYRE: BGR = (28, 28, 30)
RIM: BGR = (150, 150, 155)
HEADLIGHT: BGR = (215, 225, 230)
TAILLIGHT: BGR = (40, 30, 150)
GRILLE: BGR = (45, 45, 48)


@dataclass(frozen=True)
class Panel:
    """A flat patch on one face of a block, in fractions of that face (``s`` across, ``t`` up)."""

    face: str  # front, rear, left, right, top
    s0: float
    s1: float
    t0: float
    t1: float
    colour: BGR
    role: str = "paint"  # paint, glass, head, tail, plate, sign


@dataclass(frozen=True)
class Block:
    """A box from (a0, b0, z0) to (a1, b1, z1) whose top face is inset (front, rear, sides)."""

    a0: float
    a1: float
    b0: float
    b1: float
    z0: float
    z1: float
    colour: BGR
    layer: int = 0  # drawn in layer order, far to near within a layer
    inset_front: float = 0.0
    inset_rear: float = 0.0
    inset_side: float = 0.0
    panels: tuple[Panel, ...] = ()

    def corners(self) -> np.ndarray:
        """Bottom corners then top corners, each (rear-left, front-left, front-right, rear-right)."""
        bottom = [(self.a0, self.b0), (self.a1, self.b0), (self.a1, self.b1), (self.a0, self.b1)]
        top = [
            (self.a0 + self.inset_rear, self.b0 + self.inset_side),
            (self.a1 - self.inset_front, self.b0 + self.inset_side),
            (self.a1 - self.inset_front, self.b1 - self.inset_side),
            (self.a0 + self.inset_rear, self.b1 - self.inset_side),
        ]
        return np.array(
            [(a, b, self.z0) for a, b in bottom] + [(a, b, self.z1) for a, b in top], dtype=np.float64
        )


# Each face as four corner indices into Block.corners(): (s=0,t=0), (s=1,t=0), (s=1,t=1), (s=0,t=1),
# with s running left to right as someone facing that side of the vehicle sees it (plates read right).
FACE_CORNERS = {
    "front": (2, 1, 5, 6),
    "rear": (0, 3, 7, 4),
    "left": (1, 0, 4, 5),
    "right": (3, 2, 6, 7),
    "top": (4, 5, 6, 7),
}


def face_point(corners: np.ndarray, face: str, s: float, t: float) -> np.ndarray:
    p00, p10, p11, p01 = (corners[i] for i in FACE_CORNERS[face])
    bottom = p00 + (p10 - p00) * s
    top = p01 + (p11 - p01) * s
    return np.asarray(bottom + (top - bottom) * t)


@dataclass(frozen=True)
class Wheel:
    a: float  # centre, forward
    b: float  # the outer face of the tyre (0: a two-wheeler's wheel in the middle)
    radius: float
    width: float


@dataclass(frozen=True)
class VehicleSpec:
    cls: str  # one of VEHICLE_CLASSES
    body: str
    length_m: float
    width_m: float
    height_m: float
    colour: BGR
    plate_text: str | None
    plate_colour: PlateColour | None
    v0_mps: float  # desired speed in town
    accel_mps2: float
    blocks: tuple[Block, ...]
    wheels: tuple[Wheel, ...]
    plate_height_m: float  # height of the plate's centre above the road

    @property
    def coco_label(self) -> str:
        return COCO_LABEL[self.body]

    @property
    def plate_size_m(self) -> tuple[float, float]:
        if self.plate_colour is None:
            return (0.0, 0.0)
        w, h = plate_size_mm(self.plate_colour)
        scale = 0.68 if self.cls == "motorbike" else 1.0  # a motorbike's plate is smaller
        return (w / 1000 * scale, h / 1000 * scale)


def random_class(rng: np.random.Generator, mix: dict[str, float] | None = None) -> str:
    mix = mix or CLASS_MIX
    names = list(mix)
    weights = np.array([mix[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def make_vehicle(rng: np.random.Generator, cls: str, body: str | None = None) -> VehicleSpec:
    """A vehicle of this class with a random body, size, colour and plate."""
    if cls not in BODIES:
        raise ValueError(f"unknown vehicle class {cls!r}: expected one of {', '.join(VEHICLE_CLASSES)}")
    if body is None:
        body = str(rng.choice(BODIES[cls]))
    elif body not in BODIES[cls]:
        raise ValueError(f"a {cls} is drawn as one of {', '.join(BODIES[cls])}, not {body!r}")
    builder = _BUILDERS[body]
    return builder(rng, cls, body)


def _pick_colour(rng: np.random.Generator, palette: list[tuple[BGR, float]]) -> BGR:
    weights = np.array([w for _, w in palette])
    base = palette[int(rng.choice(len(palette), p=weights / weights.sum()))][0]
    jitter = rng.uniform(-12, 12, 3)
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(base, jitter, strict=True))  # type: ignore[return-value]


def _plate(rng: np.random.Generator, cls: str) -> tuple[str, PlateColour]:
    if cls in ("truck", "bus"):
        colour: PlateColour = "green" if rng.random() < 0.2 else "yellow"
        return random_plate(rng, colour)
    if cls == "motorbike":
        return random_plate(rng, "yellow")
    return random_plate(rng, "green" if rng.random() < 0.3 else "blue")


def _plate_panel(
    face: str,
    block: tuple[float, float, float, float],
    z0: float,
    z1: float,
    plate_w: float,
    plate_h: float,
    centre_z: float,
) -> Panel:
    """The plate's place on a block face (b from b0 to b1 across, z0..z1 up), centred."""
    b0, b1 = block[2], block[3]
    half = plate_w / 2 / (b1 - b0)
    t0 = (centre_z - plate_h / 2 - z0) / (z1 - z0)
    t1 = (centre_z + plate_h / 2 - z0) / (z1 - z0)
    return Panel(face, 0.5 - half, 0.5 + half, t0, t1, (0, 0, 0), "plate")


def _car_like(rng: np.random.Generator, cls: str, body: str) -> VehicleSpec:
    if body == "sedan":
        length, width, height = rng.uniform(4.4, 4.95), rng.uniform(1.76, 1.86), rng.uniform(1.42, 1.52)
        belt, deck, hood, slope_f, slope_r = 0.92, 0.2, 0.3, 0.55, 0.4
    elif body == "hatchback":
        length, width, height = rng.uniform(3.9, 4.35), rng.uniform(1.7, 1.8), rng.uniform(1.45, 1.56)
        belt, deck, hood, slope_f, slope_r = 0.9, 0.04, 0.26, 0.5, 0.2
    elif body == "suv":
        length, width, height = rng.uniform(4.4, 4.9), rng.uniform(1.84, 1.95), rng.uniform(1.65, 1.8)
        belt, deck, hood, slope_f, slope_r = 1.05, 0.04, 0.24, 0.45, 0.12
    else:  # van
        length, width, height = rng.uniform(4.8, 5.35), rng.uniform(1.88, 2.0), rng.uniform(1.95, 2.2)
        belt, deck, hood, slope_f, slope_r = 1.05, 0.02, 0.14, 0.35, 0.04
    length, width, height = float(length), float(width), float(height)
    colour = _pick_colour(rng, _CAR_PAINT if cls == "car" else _TRUCK_PAINT)
    text, plate_colour = _plate(rng, cls)
    pw, ph = (v / 1000 for v in plate_size_mm(plate_colour))
    a0, a1, b0, b1 = -length / 2, length / 2, -width / 2, width / 2
    clearance = 0.22
    lower_box = (a0, a1, b0, b1)
    plate_z = 0.42 if body != "van" else 0.5
    lower = Block(
        a0,
        a1,
        b0,
        b1,
        clearance,
        belt,
        colour,
        panels=(
            Panel("rear", 0.04, 0.22, 0.55, 0.85, TAILLIGHT, "tail"),
            Panel("rear", 0.78, 0.96, 0.55, 0.85, TAILLIGHT, "tail"),
            Panel("front", 0.05, 0.22, 0.55, 0.82, HEADLIGHT, "head"),
            Panel("front", 0.78, 0.95, 0.55, 0.82, HEADLIGHT, "head"),
            Panel("front", 0.3, 0.7, 0.5, 0.8, GRILLE),
            _plate_panel("rear", lower_box, clearance, belt, pw, ph, plate_z),
            _plate_panel("front", lower_box, clearance, belt, pw, ph, plate_z - 0.04),
        ),
    )
    cab_a0, cab_a1 = a0 + deck * length, a1 - hood * length
    inset = 0.1 if body != "van" else 0.05
    cabin = Block(
        cab_a0,
        cab_a1,
        b0 + 0.04,
        b1 - 0.04,
        belt,
        height,
        colour,
        layer=1,
        inset_front=1.5 * slope_f * (height - belt),
        inset_rear=1.5 * slope_r * (height - belt),
        inset_side=inset,
        panels=(
            Panel("front", 0.04, 0.96, 0.06, 0.94, GLASS, "glass"),
            Panel("rear", 0.06, 0.94, 0.1, 0.9, GLASS, "glass"),
            Panel("left", 0.05, 0.47, 0.12, 0.88, GLASS, "glass"),
            Panel("left", 0.52, 0.94, 0.12, 0.88, GLASS, "glass"),
            Panel("right", 0.05, 0.47, 0.12, 0.88, GLASS, "glass"),
            Panel("right", 0.52, 0.94, 0.12, 0.88, GLASS, "glass"),
        ),
    )
    radius = 0.31 if body != "van" else 0.33
    axle = length / 2 - 0.85
    wheels = tuple(Wheel(sa * axle, sb * (width / 2 - 0.02), radius, 0.2) for sa in (-1, 1) for sb in (-1, 1))
    v0 = float(rng.uniform(10, 14))
    return VehicleSpec(
        cls,
        body,
        length,
        width,
        height,
        colour,
        text,
        plate_colour,
        v0,
        1.6 if cls == "car" else 1.3,
        (lower, cabin),
        wheels,
        plate_z,
    )


def _box_truck(rng: np.random.Generator, cls: str, body: str) -> VehicleSpec:
    length, width, height = (
        float(rng.uniform(6.0, 8.5)),
        float(rng.uniform(2.3, 2.45)),
        float(rng.uniform(3.0, 3.4)),
    )
    cab_colour = _pick_colour(rng, _TRUCK_PAINT)
    box_colour = _pick_colour(rng, [((228, 230, 232), 0.6), ((200, 200, 195), 0.2), ((150, 95, 40), 0.2)])
    text, plate_colour = _plate(rng, cls)
    pw, ph = (v / 1000 for v in plate_size_mm(plate_colour))
    a0, a1, b0, b1 = -length / 2, length / 2, -width / 2, width / 2
    cab_len = 2.1
    cab = Block(
        a1 - cab_len,
        a1,
        b0 + 0.05,
        b1 - 0.05,
        0.45,
        2.75,
        cab_colour,
        inset_front=0.18,
        inset_side=0.04,
        panels=(
            Panel("front", 0.06, 0.94, 0.55, 0.92, GLASS, "glass"),
            Panel("left", 0.08, 0.55, 0.55, 0.9, GLASS, "glass"),
            Panel("right", 0.45, 0.92, 0.55, 0.9, GLASS, "glass"),
            Panel("front", 0.05, 0.2, 0.12, 0.24, HEADLIGHT, "head"),
            Panel("front", 0.8, 0.95, 0.12, 0.24, HEADLIGHT, "head"),
            Panel("front", 0.28, 0.72, 0.1, 0.3, GRILLE),
            _plate_panel("front", (a1 - cab_len, a1, b0 + 0.05, b1 - 0.05), 0.45, 2.75, pw, ph, 0.62),
        ),
    )
    chassis_z1 = 1.0
    chassis = Block(
        a0,
        a1 - cab_len,
        b0 + 0.15,
        b1 - 0.15,
        0.45,
        chassis_z1,
        (50, 50, 52),
        panels=(
            Panel("rear", 0.02, 0.14, 0.45, 0.9, TAILLIGHT, "tail"),
            Panel("rear", 0.86, 0.98, 0.45, 0.9, TAILLIGHT, "tail"),
            _plate_panel("rear", (a0, a1 - cab_len, b0 + 0.15, b1 - 0.15), 0.45, chassis_z1, pw, ph, 0.7),
        ),
    )
    cargo = Block(
        a0,
        a1 - cab_len - 0.1,
        b0,
        b1,
        chassis_z1,
        height,
        box_colour,
        layer=1,
        panels=(
            Panel("rear", 0.49, 0.51, 0.02, 0.98, (120, 120, 120)),
            Panel("rear", 0.03, 0.05, 0.02, 0.98, (140, 140, 140)),
            Panel("rear", 0.95, 0.97, 0.02, 0.98, (140, 140, 140)),
        ),
    )
    radius = 0.45
    wheels = tuple(
        Wheel(a, sb * (width / 2 - 0.05), radius, 0.3) for a in (a1 - 1.3, a0 + 1.6) for sb in (-1, 1)
    )
    return VehicleSpec(
        cls,
        body,
        length,
        width,
        height,
        box_colour,
        text,
        plate_colour,
        float(rng.uniform(9, 12)),
        1.0,
        (cab, chassis, cargo),
        wheels,
        0.7,
    )


def _bus(rng: np.random.Generator, cls: str, body: str) -> VehicleSpec:
    length, width, height = float(rng.uniform(10.5, 12.0)), 2.5, float(rng.uniform(3.05, 3.25))
    colour = _pick_colour(rng, _BUS_PAINT)
    text, plate_colour = _plate(rng, cls)
    pw, ph = (v / 1000 for v in plate_size_mm(plate_colour))
    a0, a1, b0, b1 = -length / 2, length / 2, -width / 2, width / 2
    z0 = 0.3
    sign = (20, 160, 240)
    box = (a0, a1, b0, b1)
    shell = Block(
        a0,
        a1,
        b0,
        b1,
        z0,
        height,
        colour,
        inset_front=0.1,
        inset_rear=0.05,
        inset_side=0.06,
        panels=(
            Panel("left", 0.03, 0.97, 0.42, 0.86, GLASS, "glass"),
            Panel("right", 0.03, 0.82, 0.42, 0.86, GLASS, "glass"),
            Panel("right", 0.86, 0.96, 0.05, 0.86, GLASS, "glass"),  # the front door
            Panel("right", 0.4, 0.5, 0.05, 0.86, GLASS, "glass"),  # the middle door
            Panel("front", 0.04, 0.96, 0.36, 0.88, GLASS, "glass"),
            Panel("front", 0.15, 0.85, 0.9, 0.97, sign, "sign"),
            Panel("rear", 0.12, 0.88, 0.55, 0.85, GLASS, "glass"),
            Panel("rear", 0.03, 0.12, 0.12, 0.3, TAILLIGHT, "tail"),
            Panel("rear", 0.88, 0.97, 0.12, 0.3, TAILLIGHT, "tail"),
            Panel("front", 0.04, 0.16, 0.1, 0.2, HEADLIGHT, "head"),
            Panel("front", 0.84, 0.96, 0.1, 0.2, HEADLIGHT, "head"),
            _plate_panel("rear", box, z0, height, pw, ph, 0.6),
            _plate_panel("front", box, z0, height, pw, ph, 0.5),
        ),
    )
    wheels = tuple(
        Wheel(a, sb * (width / 2 - 0.05), 0.5, 0.3) for a in (a1 - 2.5, a0 + 3.0) for sb in (-1, 1)
    )
    return VehicleSpec(
        cls,
        body,
        length,
        width,
        height,
        colour,
        text,
        plate_colour,
        float(rng.uniform(9, 11)),
        0.9,
        (shell,),
        wheels,
        0.6,
    )


def _rider(rng: np.random.Generator, a: float, seat_z: float) -> tuple[Block, ...]:
    clothes = _CLOTHES[int(rng.integers(len(_CLOTHES)))]
    helmet = _CLOTHES[int(rng.integers(len(_CLOTHES)))]
    skin = (120, 150, 190)
    torso = Block(a - 0.18, a + 0.12, -0.2, 0.2, seat_z, seat_z + 0.58, clothes, layer=1, inset_side=0.04)
    head = Block(
        a - 0.12,
        a + 0.1,
        -0.11,
        0.11,
        seat_z + 0.6,
        seat_z + 0.86,
        helmet,
        layer=2,
        inset_side=0.02,
        panels=(Panel("front", 0.15, 0.85, 0.15, 0.6, skin),),
    )
    legs = Block(a - 0.05, a + 0.3, -0.17, 0.17, seat_z - 0.45, seat_z + 0.02, (60, 50, 45), layer=0)
    return (legs, torso, head)


def _two_wheeler(rng: np.random.Generator, cls: str, body: str) -> VehicleSpec:
    motor = body == "motorbike"
    length = float(rng.uniform(1.95, 2.2) if motor else rng.uniform(1.6, 1.8))
    width = 0.72 if motor else 0.6
    colour = _pick_colour(rng, _CAR_PAINT)
    text: str | None = None
    plate_colour: PlateColour | None = None
    panels: tuple[Panel, ...] = (
        Panel("front", 0.3, 0.7, 0.55, 0.85, HEADLIGHT, "head"),
        Panel("rear", 0.3, 0.7, 0.6, 0.85, TAILLIGHT, "tail"),
    )
    z0, z1 = (0.35, 0.85) if motor else (0.3, 0.75)
    frame_box = (-length / 2 + 0.25, length / 2 - 0.25, -0.18, 0.18)
    if motor:  # e-bikes carry local plates that are not modelled; motorbikes carry a small yellow one
        text, plate_colour = _plate(rng, cls)
        w, h = (v / 1000 * 0.68 for v in plate_size_mm(plate_colour))
        panels += (_plate_panel("rear", (0, 0, -0.17, 0.17), z0, z1, min(w, 0.34), h, 0.55),)
    frame = Block(*frame_box, z0, z1, colour, inset_front=0.1, inset_side=0.03, panels=panels)
    riders = _rider(rng, -0.15, z1 + 0.02)
    radius = 0.3 if motor else 0.26
    axle = length / 2 - radius - 0.02
    wheels = (Wheel(axle, 0.0, radius, 0.1), Wheel(-axle, 0.0, radius, 0.1))
    return VehicleSpec(
        cls,
        body,
        length,
        width,
        1.7,
        colour,
        text,
        plate_colour,
        float(rng.uniform(9, 12) if motor else rng.uniform(5.5, 7.0)),
        2.0 if motor else 1.2,
        (frame, *riders),
        wheels,
        0.55,
    )


def _tricycle(rng: np.random.Generator, cls: str, body: str) -> VehicleSpec:
    length, width = float(rng.uniform(2.6, 3.0)), 1.1
    colour = _pick_colour(rng, _TRUCK_PAINT)
    front = Block(
        0.2,
        length / 2 - 0.2,
        -0.2,
        0.2,
        0.35,
        0.8,
        colour,
        inset_front=0.1,
        panels=(Panel("front", 0.3, 0.7, 0.55, 0.85, HEADLIGHT, "head"),),
    )
    cargo = Block(
        -length / 2,
        0.1,
        -width / 2,
        width / 2,
        0.45,
        1.15,
        colour,
        panels=(
            Panel("rear", 0.05, 0.18, 0.5, 0.7, TAILLIGHT, "tail"),
            Panel("rear", 0.82, 0.95, 0.5, 0.7, TAILLIGHT, "tail"),
            Panel("top", 0.05, 0.95, 0.08, 0.92, (60, 60, 62)),
        ),
    )
    riders = _rider(rng, 0.35, 0.82)
    wheels = (
        Wheel(length / 2 - 0.3, 0.0, 0.27, 0.1),
        Wheel(-length / 2 + 0.45, -width / 2 + 0.02, 0.27, 0.12),
        Wheel(-length / 2 + 0.45, width / 2 - 0.02, 0.27, 0.12),
    )
    return VehicleSpec(
        cls,
        body,
        length,
        width,
        1.75,
        colour,
        None,
        None,
        float(rng.uniform(5.0, 6.5)),
        1.0,
        (front, cargo, *riders),
        wheels,
        0.55,
    )


_BUILDERS = {
    "sedan": _car_like,
    "hatchback": _car_like,
    "suv": _car_like,
    "van": _car_like,
    "box_truck": _box_truck,
    "bus": _bus,
    "motorbike": _two_wheeler,
    "ebike": _two_wheeler,
    "tricycle": _tricycle,
}


def heading_vectors(heading: float) -> tuple[np.ndarray, np.ndarray]:
    """Forward and right unit vectors on the road of a heading (radians from +y towards +x)."""
    s, c = math.sin(heading), math.cos(heading)
    return np.array([s, c]), np.array([c, -s])
