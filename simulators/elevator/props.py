"""3-D props built from simple parts: people, e-bikes, e-scooters, bicycles, strollers, wheelchairs, bags.

Each prop is described in its own frame (``u`` forward, ``y`` up, ``v`` to its left, metres, origin on
the floor under its centre) as a list of ``Part``: capsules (limbs, tubes), boxes (bodies, batteries,
seats), rings and arcs (tyres, rims, mudguards), and flat polygons/discs (lights, hubs). The
renderer poses them on the floor, projects them with the camera and paints them far to near.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.elevator.camera import FloatArray

Colour = tuple[float, float, float]

# Detector classes; props of any other class (bags, trolleys) are unlabelled distractors.
LABELLED_CLASSES = ("person", "ebike", "bicycle", "stroller", "wheelchair")


@dataclass(frozen=True, eq=False)
class Part:
    """One drawable piece. ``kind``: capsule | box | ring | arc | poly | wirebox."""

    kind: str
    points: FloatArray
    colour: Colour
    radius: float = 0.0


@dataclass(eq=False)
class Prop:
    """A rigid or animated object. People override ``parts`` to animate their limbs."""

    cls: str
    variant: str
    length: float
    width: float
    height: float
    static_parts: list[Part] = field(default_factory=list)
    # Where a person pushing this prop stands (u, v) and holds it (two points, prop frame).
    push_offset: tuple[float, float] | None = None
    grips: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None

    def parts(self, phase: float = 0.0, hands: FloatArray | None = None, walking: float = 0.0) -> list[Part]:
        return self.static_parts


# ------------------------------------------------------------------------------------------ helpers


def capsule(
    a: tuple[float, float, float], b: tuple[float, float, float], radius: float, colour: Colour
) -> Part:
    return Part("capsule", np.array([a, b], dtype=np.float64), colour, radius)


def sphere(c: tuple[float, float, float], radius: float, colour: Colour) -> Part:
    return capsule(c, c, radius, colour)


def box(
    centre: tuple[float, float, float],
    half: tuple[float, float, float],
    colour: Colour,
    pitch: float = 0.0,
    wire: bool = False,
) -> Part:
    signs = np.array([[sx, sy, sv] for sx in (-1, 1) for sy in (-1, 1) for sv in (-1, 1)], dtype=np.float64)
    corners = signs * np.asarray(half)
    if pitch:
        c, s = np.cos(pitch), np.sin(pitch)
        u, y = corners[:, 0].copy(), corners[:, 1].copy()
        corners[:, 0], corners[:, 1] = c * u - s * y, s * u + c * y
    return Part("wirebox" if wire else "box", corners + np.asarray(centre), colour)


def circle(
    centre: tuple[float, float, float],
    radius: float,
    normal: str = "v",
    start: float = 0.0,
    stop: float = 2 * np.pi,
    count: int = 20,
) -> FloatArray:
    """Points of a circle (or arc) in the plane perpendicular to the prop's ``normal`` axis."""
    angles = np.linspace(start, stop, count)
    a, b = radius * np.cos(angles), radius * np.sin(angles)
    zeros = np.zeros_like(a)
    if normal == "v":
        offsets = np.stack([a, b, zeros], axis=1)
    elif normal == "u":
        offsets = np.stack([zeros, b, a], axis=1)
    else:
        offsets = np.stack([a, zeros, b], axis=1)
    return offsets + np.asarray(centre)


def ring(
    centre: tuple[float, float, float], radius: float, thickness: float, colour: Colour, normal: str = "v"
) -> Part:
    return Part("ring", circle(centre, radius, normal), colour, thickness)


def arc(
    centre: tuple[float, float, float],
    radius: float,
    start: float,
    stop: float,
    thickness: float,
    colour: Colour,
) -> Part:
    return Part("arc", circle(centre, radius, "v", start, stop, 10), colour, thickness)


def disc(centre: tuple[float, float, float], radius: float, colour: Colour, normal: str = "v") -> Part:
    return Part("poly", circle(centre, radius, normal, count=14), colour)


def _colour(rng: np.random.Generator, palette: list[Colour] | None = None) -> Colour:
    if palette and rng.random() < 0.7:
        base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=np.float64)
        base = np.clip(base * rng.uniform(0.8, 1.15) + rng.normal(0, 10, 3), 0, 255)
    else:
        base = rng.uniform(0, 255, 3)
    return (float(base[0]), float(base[1]), float(base[2]))


def _grey(rng: np.random.Generator, low: float, high: float) -> Colour:
    level = float(rng.uniform(low, high))
    return (level, level, level)


BODY_PALETTE: list[Colour] = [
    (240, 240, 240), (30, 30, 200), (200, 80, 20), (40, 160, 40), (180, 120, 230), (20, 20, 20),
    (0, 200, 230), (0, 120, 250), (130, 130, 130), (60, 60, 160), (200, 200, 60), (140, 40, 160),
]  # fmt: skip
CLOTHES_PALETTE: list[Colour] = [
    (30, 30, 30), (230, 230, 230), (120, 60, 20), (40, 40, 120), (60, 90, 60), (150, 150, 150),
    (50, 50, 200), (180, 130, 90), (100, 80, 160), (20, 60, 110), (200, 200, 200), (80, 40, 40),
]  # fmt: skip
SKIN_PALETTE: list[Colour] = [(150, 180, 225), (120, 150, 200), (90, 120, 170), (60, 85, 125)]
FABRIC_PALETTE: list[Colour] = [(40, 40, 40), (90, 60, 30), (160, 160, 160), (120, 90, 200), (200, 170, 140)]


def _wheel(
    parts: list[Part],
    rng: np.random.Generator,
    centre: tuple[float, float, float],
    radius: float,
    tyre: float,
    spokes: int,
    hub_colour: Colour,
    normal: str = "v",
) -> None:
    tyre_colour = _grey(rng, 15, 45)
    parts.append(ring(centre, radius - tyre / 2, tyre, tyre_colour, normal))
    rim = radius - tyre
    parts.append(ring(centre, rim, max(0.008, tyre * 0.3), _grey(rng, 120, 200), normal))
    for angle in np.linspace(0, np.pi, spokes, endpoint=False) + rng.uniform(0, np.pi):
        du, dy = rim * np.cos(angle), rim * np.sin(angle)
        if normal == "v":
            a = (centre[0] - du, centre[1] - dy, centre[2])
            b = (centre[0] + du, centre[1] + dy, centre[2])
        else:
            a = (centre[0], centre[1] - dy, centre[2] - du)
            b = (centre[0], centre[1] + dy, centre[2] + du)
        parts.append(capsule(a, b, 0.003 if spokes > 6 else 0.012, _grey(rng, 110, 190)))
    parts.append(disc(centre, min(rim * 0.5, 0.09 if spokes <= 6 else 0.03), hub_colour, normal))


# ------------------------------------------------------------------------------------------ people


@dataclass(eq=False)
class Person(Prop):
    """A walking, standing or sitting person whose arms can hold something."""

    top: Colour = (0, 0, 0)
    trousers: Colour = (0, 0, 0)
    skin: Colour = (0, 0, 0)
    hair: Colour = (0, 0, 0)
    shoes: Colour = (0, 0, 0)
    build: float = 1.0
    sitting: bool = False
    long_coat: bool = False
    hat: Colour | None = None
    backpack: Colour | None = None

    def parts(self, phase: float = 0.0, hands: FloatArray | None = None, walking: float = 0.0) -> list[Part]:
        h = self.height
        s = h / 1.75
        b = self.build
        parts: list[Part] = []
        hip_y = 0.52 * h
        shoulder_y = 0.81 * h
        if self.sitting:
            hip_y = 0.55
            shoulder_y = 0.55 + 0.32 * h
            for side in (-1, 1):
                hip = (-0.05, hip_y, side * 0.09 * s)
                knee = (0.33, hip_y + 0.02, side * 0.1 * s)
                foot = (0.4, 0.14, side * 0.1 * s)
                parts.append(capsule(hip, knee, 0.07 * s, self.trousers))
                parts.append(capsule(knee, foot, 0.055 * s, self.trousers))
                parts.append(capsule(foot, (foot[0] + 0.12, 0.12, foot[2]), 0.045, self.shoes))
            pelvis = (-0.08, hip_y + 0.05, 0.0)
        else:
            stride = 0.3 * s * walking
            for side in (-1, 1):
                swing = np.sin(phase + (0 if side > 0 else np.pi))
                lift = 0.07 * walking * max(0.0, np.cos(phase + (0 if side > 0 else np.pi)))
                hip = (0.0, hip_y, side * 0.09 * s * b)
                foot = (stride * swing, 0.06 + lift, side * 0.1 * s * b)
                knee = (
                    (hip[0] + foot[0]) / 2 + 0.04 + 0.05 * lift,
                    (hip_y + foot[1]) / 2,
                    side * 0.095 * s * b,
                )
                parts.append(capsule(hip, knee, 0.075 * s * b, self.trousers))
                parts.append(capsule(knee, foot, 0.058 * s * b, self.trousers))
                parts.append(
                    capsule(
                        (foot[0] - 0.04, 0.04, foot[2]), (foot[0] + 0.13, 0.04, foot[2]), 0.045, self.shoes
                    )
                )
            pelvis = (0.0, hip_y + 0.04, 0.0)
        torso_top = (pelvis[0] - 0.02, shoulder_y - 0.06 * s, 0.0)
        coat_bottom = (pelvis[0], 0.3 * h if self.long_coat and not self.sitting else pelvis[1] - 0.04, 0.0)
        parts.append(capsule(coat_bottom, torso_top, 0.14 * s * b, self.top))
        for side in (-1, 1):
            parts.append(
                capsule(
                    (coat_bottom[0], coat_bottom[1] + 0.05, side * 0.08 * s * b),
                    (torso_top[0], torso_top[1], side * 0.09 * s * b),
                    0.11 * s * b,
                    self.top,
                )
            )
        if self.backpack is not None:
            parts.append(
                box(
                    (torso_top[0] - 0.2 * s, shoulder_y - 0.2 * s, 0),
                    (0.08, 0.2 * s, 0.15 * s),
                    self.backpack,
                )
            )
        shoulder_w = 0.19 * s * b
        for index, side in enumerate((-1, 1)):
            shoulder = (torso_top[0], shoulder_y - 0.03, side * shoulder_w)
            if hands is not None:
                hand = (float(hands[index][0]), float(hands[index][1]), float(hands[index][2]))
            elif self.sitting:
                hand = (0.15, hip_y + 0.12, side * (shoulder_w + 0.03))
            else:
                swing = -0.2 * s * walking * np.sin(phase + (0 if side > 0 else np.pi))
                hand = (swing, 0.45 * h, side * (shoulder_w + 0.04))
            elbow = (
                (shoulder[0] + hand[0]) / 2 - 0.05,
                (shoulder[1] + hand[1]) / 2 - 0.04,
                side * max(abs(shoulder[2]), abs(hand[2])) * 1.05,
            )
            parts.append(capsule(shoulder, elbow, 0.05 * s * b, self.top))
            parts.append(capsule(elbow, hand, 0.043 * s * b, self.top))
            parts.append(sphere(hand, 0.04 * s, self.skin))
        neck = (torso_top[0], shoulder_y + 0.02, 0.0)
        head = (torso_top[0] + 0.01, shoulder_y + 0.12 * s, 0.0)
        parts.append(capsule(torso_top, neck, 0.055 * s, self.skin))
        parts.append(sphere(head, 0.1 * s, self.skin))
        hair_colour = self.hat if self.hat is not None else self.hair
        parts.append(sphere((head[0] - 0.025, head[1] + 0.03, 0.0), 0.093 * s, hair_colour))
        return parts


def make_person(rng: np.random.Generator, *, sitting: bool = False, child: bool = False) -> Person:
    height = float(rng.uniform(1.05, 1.4) if child else rng.uniform(1.5, 1.9))
    return Person(
        cls="person",
        variant="sitting" if sitting else ("child" if child else "adult"),
        length=0.3,
        width=0.5 * height / 1.75,
        height=height,
        top=_colour(rng, CLOTHES_PALETTE),
        trousers=_colour(rng, CLOTHES_PALETTE),
        skin=_colour(rng, SKIN_PALETTE),
        hair=_grey(rng, 10, 60) if rng.random() < 0.85 else _colour(rng),
        shoes=_grey(rng, 10, 200),
        build=float(rng.uniform(0.85, 1.25)),
        sitting=sitting,
        long_coat=bool(rng.random() < 0.25),
        hat=_colour(rng) if rng.random() < 0.2 else None,
        backpack=_colour(rng) if rng.random() < 0.15 else None,
    )


# ------------------------------------------------------------------------------------------ vehicles


def make_ebike(rng: np.random.Generator, variant: str | None = None) -> Prop:
    """An e-bike: an electric bicycle (``city``), a moped-style e-scooter (``moped``) or a kick e-scooter."""
    variant = variant or str(rng.choice(["city", "city", "moped", "moped", "kick"]))
    builder = {"city": _city_ebike, "moped": _moped, "kick": _kick_scooter}[variant]
    return builder(rng)


def _city_ebike(rng: np.random.Generator) -> Prop:
    parts: list[Part] = []
    body = _colour(rng, BODY_PALETTE)
    dark = _grey(rng, 15, 60)
    radius = float(rng.uniform(0.2, 0.27))
    tyre = float(rng.uniform(0.045, 0.075))
    base = float(rng.uniform(1.02, 1.2))
    front, rear = (base / 2, radius, 0.0), (-base / 2, radius, 0.0)
    _wheel(parts, rng, front, radius, tyre, int(rng.choice([3, 5, 6, 12])), dark)
    _wheel(parts, rng, rear, radius, tyre, int(rng.choice([3, 5, 6])), _grey(rng, 30, 90))
    parts.append(disc(rear, 0.09, _grey(rng, 40, 120)))  # hub motor
    guard = body if rng.random() < 0.6 else _grey(rng, 20, 200)
    parts.append(arc(front, radius + 0.03, 0.3, 2.6, 0.04, guard))
    parts.append(arc(rear, radius + 0.03, 0.5, 2.9, 0.05, guard))
    head = (base / 2 - 0.12, 0.88, 0.0)
    for side in (-1, 1):
        parts.append(
            capsule(
                (front[0], front[1], side * 0.05), (head[0], 0.72, side * 0.04), 0.02, _grey(rng, 60, 190)
            )
        )
    low = (0.02, 0.32, 0.0)
    parts.append(capsule(head, low, 0.04, body))
    parts.append(capsule(low, (rear[0] + 0.08, radius + 0.06, 0.0), 0.035, body))
    seat = (-0.28, float(rng.uniform(0.78, 0.88)), 0.0)
    parts.append(capsule(low, (seat[0] + 0.05, seat[1] - 0.05, 0.0), 0.035, body))
    parts.append(box((-0.18, 0.5, 0.0), (0.16, 0.1, 0.075), dark if rng.random() < 0.6 else body))  # battery
    parts.append(box(seat, (0.15, 0.05, 0.1), _grey(rng, 10, 50)))
    if rng.random() < 0.6:
        parts.append(box((0.1, 0.56, 0.0), (0.06, 0.24, 0.16), body, pitch=-0.25))  # leg shield
    if rng.random() < 0.6:
        parts.append(box((0.0, 0.3, 0.0), (0.22, 0.025, 0.12), dark))  # footboard
    if rng.random() < 0.6:
        parts.append(box((rear[0] + 0.05, 0.75, 0.0), (0.2, 0.04, 0.11), _grey(rng, 10, 80)))  # rear seat
    bar_y = float(rng.uniform(0.98, 1.08))
    bar_u = head[0] - 0.05
    parts.append(capsule(head, (bar_u, bar_y, 0.0), 0.025, _grey(rng, 30, 150)))
    parts.append(capsule((bar_u, bar_y, -0.3), (bar_u, bar_y, 0.3), 0.016, _grey(rng, 30, 150)))
    for side in (-1, 1):
        parts.append(capsule((bar_u, bar_y, side * 0.22), (bar_u, bar_y, side * 0.32), 0.025, dark))
    if rng.random() < 0.4:
        for side in (-1, 1):
            parts.append(
                capsule((bar_u, bar_y, side * 0.25), (bar_u - 0.05, bar_y + 0.25, side * 0.3), 0.008, dark)
            )
            parts.append(disc((bar_u - 0.05, bar_y + 0.28, side * 0.3), 0.05, _grey(rng, 100, 220), "u"))
    parts.append(disc((head[0] + 0.08, 0.86, 0.0), 0.06, (200, 230, 240), "u"))
    if rng.random() < 0.75:
        parts.append(box((base / 2 + 0.03, 0.86, 0.0), (0.14, 0.12, 0.17), _grey(rng, 20, 220), wire=True))
    if rng.random() < 0.35:
        quilt = _colour(rng)
        parts.append(box((bar_u - 0.08, 0.62, 0.0), (0.06, 0.38, 0.32), quilt))  # winter handlebar quilt
        for side in (-1, 1):
            parts.append(capsule((bar_u, bar_y, side * 0.18), (bar_u, bar_y, side * 0.36), 0.08, quilt))
    return Prop(
        "ebike", "city", base + 2 * radius, 0.65, bar_y + 0.1, parts,
        push_offset=(bar_u - 0.25, 0.5), grips=((bar_u, bar_y, 0.3), (bar_u, bar_y, 0.3)),
    )  # fmt: skip


def _moped(rng: np.random.Generator) -> Prop:
    parts: list[Part] = []
    body = _colour(rng, BODY_PALETTE)
    dark = _grey(rng, 15, 60)
    radius = float(rng.uniform(0.2, 0.25))
    tyre = float(rng.uniform(0.08, 0.11))
    base = float(rng.uniform(1.1, 1.3))
    front, rear = (base / 2, radius, 0.0), (-base / 2, radius, 0.0)
    _wheel(parts, rng, front, radius, tyre, 5, dark)
    _wheel(parts, rng, rear, radius, tyre, 5, dark)
    parts.append(arc(front, radius + 0.03, 0.2, 2.7, 0.06, body))
    parts.append(box((0.0, 0.28, 0.0), (0.3, 0.05, 0.17), dark))  # footboard
    parts.append(box((base / 2 - 0.2, 0.62, 0.0), (0.1, 0.32, 0.2), body, pitch=-0.2))  # front fairing
    parts.append(box((rear[0] + 0.25, 0.52, 0.0), (0.34, 0.17, 0.18), body))  # rear body
    parts.append(box((rear[0] + 0.27, 0.73, 0.0), (0.32, 0.05, 0.15), _grey(rng, 10, 40)))  # seat
    if rng.random() < 0.4:
        parts.append(box((rear[0] - 0.05, 0.9, 0.0), (0.15, 0.13, 0.18), _colour(rng)))  # top box
    bar_y = float(rng.uniform(1.0, 1.12))
    bar_u = base / 2 - 0.25
    parts.append(box((bar_u, bar_y, 0.0), (0.08, 0.06, 0.2), body))
    for side in (-1, 1):
        parts.append(capsule((bar_u, bar_y, side * 0.18), (bar_u - 0.03, bar_y, side * 0.34), 0.025, dark))
        parts.append(
            capsule((bar_u, bar_y, side * 0.2), (bar_u - 0.05, bar_y + 0.22, side * 0.28), 0.008, dark)
        )
        parts.append(disc((bar_u - 0.05, bar_y + 0.25, side * 0.28), 0.05, _grey(rng, 60, 200), "u"))
    parts.append(disc((base / 2 - 0.09, 0.9, 0.0), 0.085, (210, 235, 245), "u"))
    parts.append(disc((rear[0] - 0.1, 0.6, 0.0), 0.04, (30, 30, 200), "u"))
    return Prop(
        "ebike", "moped", base + 2 * radius, 0.7, bar_y + 0.1, parts,
        push_offset=(bar_u - 0.25, 0.5), grips=((bar_u, bar_y, 0.32), (bar_u, bar_y, 0.32)),
    )  # fmt: skip


def _kick_scooter(rng: np.random.Generator) -> Prop:
    parts: list[Part] = []
    body = _colour(rng, [(20, 20, 20), (60, 60, 60), (200, 200, 200), (0, 120, 250)])
    radius = float(rng.uniform(0.09, 0.12))
    base = float(rng.uniform(0.8, 0.95))
    front, rear = (base / 2, radius, 0.0), (-base / 2, radius, 0.0)
    _wheel(parts, rng, front, radius, 0.05, 5, body)
    _wheel(parts, rng, rear, radius, 0.05, 5, body)
    parts.append(box((0.0, 0.12, 0.0), (base / 2 - 0.05, 0.035, 0.08), body))
    parts.append(arc(rear, radius + 0.02, 0.3, 2.5, 0.03, body))
    top = float(rng.uniform(1.0, 1.15))
    parts.append(capsule(front, (base / 2 - 0.06, top, 0.0), 0.025, body))
    parts.append(capsule((base / 2 - 0.06, top, -0.24), (base / 2 - 0.06, top, 0.24), 0.018, body))
    parts.append(box((base / 2 - 0.06, top - 0.05, 0.0), (0.03, 0.03, 0.05), _grey(rng, 150, 250)))
    return Prop(
        "ebike", "kick", base + 2 * radius, 0.5, top + 0.05, parts,
        push_offset=(base / 2 - 0.3, 0.4), grips=((base / 2 - 0.06, top, 0.22), (base / 2 - 0.06, top, 0.22)),
    )  # fmt: skip


def make_bicycle(rng: np.random.Generator) -> Prop:
    parts: list[Part] = []
    frame = _colour(rng, BODY_PALETTE)
    radius = float(rng.uniform(0.3, 0.35))
    tyre = float(rng.uniform(0.02, 0.035))
    base = float(rng.uniform(0.98, 1.08))
    front, rear = (base / 2, radius, 0.0), (-base / 2, radius, 0.0)
    hub = _grey(rng, 120, 200)
    _wheel(parts, rng, front, radius, tyre, 12, hub)
    _wheel(parts, rng, rear, radius, tyre, 12, hub)
    tube = float(rng.uniform(0.016, 0.024))
    bracket = (0.0, 0.3, 0.0)
    seat_cluster = (-0.15, 0.78, 0.0)
    head_top = (base / 2 - 0.13, 0.84, 0.0)
    head_bottom = (base / 2 - 0.09, 0.7, 0.0)
    step_through = rng.random() < 0.25
    parts.append(
        capsule(
            head_top if not step_through else head_bottom,
            seat_cluster if not step_through else (-0.08, 0.45, 0.0),
            tube,
            frame,
        )
    )
    parts.append(capsule(bracket, head_bottom, tube * 1.2, frame))
    parts.append(capsule(bracket, seat_cluster, tube, frame))
    for side in (-1, 1):
        parts.append(capsule(bracket, (rear[0], rear[1], side * 0.05), tube * 0.8, frame))
        parts.append(capsule(seat_cluster, (rear[0], rear[1], side * 0.05), tube * 0.8, frame))
        parts.append(capsule(head_bottom, (front[0], front[1], side * 0.05), tube * 0.8, frame))
    parts.append(capsule(head_top, head_bottom, tube * 1.3, frame))
    saddle_y = float(rng.uniform(0.88, 0.98))
    parts.append(capsule(seat_cluster, (-0.18, saddle_y, 0.0), 0.012, _grey(rng, 100, 200)))
    parts.append(capsule((-0.27, saddle_y, 0.0), (-0.1, saddle_y, 0.0), 0.035, _grey(rng, 10, 60)))
    parts.append(ring((0.0, 0.3, 0.06), 0.1, 0.012, _grey(rng, 120, 220)))  # chainring
    parts.append(capsule((0.0, 0.3, 0.07), (0.1, 0.18, 0.08), 0.012, _grey(rng, 40, 160)))
    parts.append(capsule((0.0, 0.3, -0.07), (-0.1, 0.42, -0.08), 0.012, _grey(rng, 40, 160)))
    parts.append(capsule((0.0, 0.3, 0.06), (rear[0], rear[1], 0.06), 0.006, _grey(rng, 40, 90)))  # chain
    bar_y = float(rng.uniform(0.98, 1.08))
    bar_u = head_top[0] - 0.05
    parts.append(capsule(head_top, (bar_u, bar_y, 0.0), 0.015, _grey(rng, 60, 200)))
    parts.append(capsule((bar_u, bar_y, -0.29), (bar_u, bar_y, 0.29), 0.013, _grey(rng, 40, 200)))
    if rng.random() < 0.3:
        parts.append(arc(front, radius + 0.02, 0.3, 2.6, 0.025, frame))
        parts.append(arc(rear, radius + 0.02, 0.5, 2.9, 0.025, frame))
    if rng.random() < 0.12:
        parts.append(box((base / 2 + 0.05, 0.88, 0.0), (0.12, 0.1, 0.15), _grey(rng, 20, 200), wire=True))
    if rng.random() < 0.25:
        parts.append(box((rear[0] + 0.05, radius + 0.42, 0.0), (0.18, 0.015, 0.08), _grey(rng, 20, 120)))
    return Prop(
        "bicycle", "step_through" if step_through else "diamond", base + 2 * radius, 0.6, bar_y + 0.05, parts,
        push_offset=(bar_u - 0.3, 0.45), grips=((bar_u, bar_y, 0.27), (bar_u, bar_y, 0.27)),
    )  # fmt: skip


def make_stroller(rng: np.random.Generator) -> Prop:
    parts: list[Part] = []
    fabric = _colour(rng, FABRIC_PALETTE)
    metal = _grey(rng, 30, 200)
    radius = float(rng.uniform(0.07, 0.12))
    for u in (-0.28, 0.28):
        for side in (-1, 1):
            centre = (u, radius, side * 0.23)
            _wheel(parts, rng, centre, radius, 0.035, 5, metal)
            parts.append(capsule(centre, (0.05 if u > 0 else -0.2, 0.55, side * 0.2), 0.013, metal))
    parts.append(box((0.0, 0.58, 0.0), (0.3, 0.13, 0.2), fabric))
    parts.append(box((-0.15, 0.85, 0.0), (0.14, 0.17, 0.21), tuple(c * 0.75 for c in fabric), pitch=0.3))  # type: ignore[arg-type]
    if rng.random() < 0.6:
        parts.append(box((0.0, 0.25, 0.0), (0.2, 0.06, 0.15), _grey(rng, 10, 60), wire=True))
    handle_y = float(rng.uniform(0.95, 1.08))
    for side in (-1, 1):
        parts.append(capsule((-0.2, 0.55, side * 0.2), (-0.38, handle_y, side * 0.2), 0.014, metal))
    parts.append(capsule((-0.38, handle_y, -0.22), (-0.38, handle_y, 0.22), 0.022, _grey(rng, 10, 50)))
    return Prop(
        "stroller", "pram", 0.9, 0.55, handle_y, parts,
        push_offset=(-0.72, 0.0), grips=((-0.38, handle_y, 0.18), (-0.38, handle_y, 0.18)),
    )  # fmt: skip


def make_wheelchair(rng: np.random.Generator) -> Prop:
    parts: list[Part] = []
    metal = _grey(rng, 60, 210)
    seat_colour = _colour(rng, [(20, 20, 20), (120, 40, 20), (30, 30, 90)])
    for side in (-1, 1):
        _wheel(parts, rng, (-0.05, 0.3, side * 0.3), 0.3, 0.03, 12, metal)
        parts.append(ring((-0.05, 0.3, side * 0.34), 0.27, 0.012, metal))  # hand rim
        _wheel(parts, rng, (0.3, 0.07, side * 0.21), 0.07, 0.03, 3, metal)
        parts.append(capsule((0.3, 0.07, side * 0.21), (0.25, 0.5, side * 0.22), 0.014, metal))
        parts.append(capsule((-0.18, 0.45, side * 0.23), (-0.22, 0.95, side * 0.23), 0.014, metal))
        parts.append(
            capsule((-0.22, 0.95, side * 0.23), (-0.34, 0.95, side * 0.23), 0.02, _grey(rng, 10, 40))
        )
        parts.append(capsule((0.25, 0.48, side * 0.2), (0.38, 0.12, side * 0.12), 0.013, metal))
        parts.append(box((0.4, 0.11, side * 0.1), (0.07, 0.01, 0.06), _grey(rng, 10, 60)))
    parts.append(box((0.04, 0.5, 0.0), (0.22, 0.03, 0.22), seat_colour))
    parts.append(box((-0.2, 0.75, 0.0), (0.02, 0.22, 0.22), seat_colour))
    return Prop(
        "wheelchair", "manual", 0.95, 0.68, 0.95, parts,
        push_offset=(-0.8, 0.0), grips=((-0.33, 0.95, 0.23), (-0.33, 0.95, 0.23)),
    )  # fmt: skip


def make_bag(rng: np.random.Generator, variant: str | None = None) -> Prop:
    """Unlabelled luggage and carts that a detector must not mistake for anything."""
    variant = variant or str(rng.choice(["suitcase", "shopping", "carton", "trolley"]))
    parts: list[Part] = []
    colour = _colour(rng)
    if variant == "suitcase":
        height = float(rng.uniform(0.45, 0.75))
        parts.append(box((0.0, height / 2 + 0.04, 0.0), (0.12, height / 2, 0.22), colour))
        parts.append(
            capsule((-0.05, height + 0.04, 0.0), (-0.05, height + 0.35, 0.0), 0.012, _grey(rng, 20, 120))
        )
        for side in (-1, 1):
            parts.append(sphere((-0.1, 0.03, side * 0.18), 0.03, _grey(rng, 10, 40)))
        return Prop("bag", variant, 0.25, 0.45, height + 0.35, parts)
    if variant == "shopping":
        height = float(rng.uniform(0.3, 0.45))
        parts.append(box((0.0, height / 2, 0.0), (0.08, height / 2, 0.18), colour))
        parts.append(Part("arc", circle((0.0, height, 0.0), 0.08, "u", 0.0, np.pi, 8), colour, 0.01))
        return Prop("bag", variant, 0.2, 0.4, height + 0.1, parts)
    if variant == "carton":
        size = float(rng.uniform(0.2, 0.35))
        brown = _colour(rng, [(70, 130, 180), (90, 150, 200)])
        parts.append(box((0.0, size, 0.0), (size, size, size * 0.8), brown))
        parts.append(box((0.0, 2 * size + 0.002, 0.0), (size, 0.002, 0.04), (150, 170, 180)))
        return Prop("bag", variant, 2 * size, 1.6 * size, 2 * size, parts)
    metal = _grey(rng, 60, 200)
    for u in (-0.3, 0.3):
        for side in (-1, 1):
            parts.append(sphere((u, 0.06, side * 0.2), 0.06, _grey(rng, 10, 40)))
    parts.append(box((0.0, 0.6, 0.0), (0.35, 0.22, 0.24), metal, wire=True))
    parts.append(capsule((-0.4, 0.95, -0.24), (-0.4, 0.95, 0.24), 0.02, colour))
    return Prop("bag", variant, 0.8, 0.5, 0.95, parts)
