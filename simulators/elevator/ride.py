"""Seeded elevator rides: the door opens, people walk in (some with e-bikes, bicycles, strollers,
wheelchairs or bags), the car travels, the door opens again, some leave or come in, the door closes.

``make_ride(seed, kind)`` plans a ride; ``iter_ride_frames`` renders it; ``write_ride_video`` stores it
as a video plus a ground-truth JSON file (format in docs/evaluation.md).

Truth times are in ride seconds. ``ebike_first_full_s``: the first instant the whole e-bike is past
the door line (inside the car) and all corners of its 3-D bounding box are in the camera's view
(in the reference 1280x720 view). ``ebike_first_visible_s``: the e-bike's first full appearance, the
reference the guard's latencies are measured from: the first rendered frame from
``ebike_first_full_s`` on in which at least half of the e-bike is not hidden behind people or things
(``FirstVisibleWatch``; None if that never happens). Geometry alone cannot tell it: an e-scooter
pushed in behind two people is wholly inside and in view, and no camera sees it. It needs the
rendered frames, so ``make_ride`` leaves it None and ``write_ride_video`` and the evaluation find it.
``ebike_left_s``: the first instant after ``ebike_first_full_s`` when the whole e-bike is back beyond
the door line, or None if it stays until the ride ends.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simulators.elevator.camera import Camera, CameraPose
from simulators.elevator.render import (
    Box,
    Look,
    Placement,
    SceneRenderer,
    random_camera_pose,
    random_look,
)
from simulators.elevator.room import Car, Image, random_car
from simulators.elevator.scenes import (
    MIN_BOX_PIXELS,
    MIN_VISIBLE_FRACTION,
    Group,
    bicycle_group,
    ebike_group,
    person_group,
    place_inside,
    stroller_group,
    wheelchair_group,
)

RIDE_KINDS = ("ebike", "escooter", "ebike_late", "bicycle", "stroller", "wheelchair", "people_only", "bags")
EBIKE_KINDS = frozenset({"ebike", "escooter", "ebike_late"})
# Random draws favour e-bike rides a little less than half of the time.
KIND_WEIGHTS = (0.18, 0.14, 0.12, 0.12, 0.1, 0.1, 0.14, 0.1)
DOOR_MOVE_S = 1.2
REFERENCE_SIZE = (1280, 720)
TRUTH_FORMAT = "citywatch-ride-truth/1"
TRUTH_STEP_S = 1 / 30
STRIDE_M = 1.4
# "First full appearance" needs at least this much of the e-bike unhidden (the renderer's visible
# fraction): half an e-bike is what a detector can be asked to recognise.
FULL_APPEARANCE_MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class RideTruth:
    has_ebike: bool
    ebike_first_full_s: float | None
    ebike_left_s: float | None
    kinds: list[str]
    # Found from rendered frames (``FirstVisibleWatch``): None in a plan from ``make_ride``.
    ebike_first_visible_s: float | None = None


@dataclass(frozen=True)
class FrameTruth:
    t: float
    boxes: list[Box]
    door_open: float


@dataclass(frozen=True)
class Keyframe:
    t: float
    x: float
    z: float
    yaw: float


@dataclass(eq=False)
class Actor:
    """A group following keyframes; present from the first keyframe, gone after the last if it left."""

    group: Group
    keyframes: list[Keyframe]
    first_id: int
    leaves: bool = False
    # When it reached its place in the car (entering actors).
    arrived_s: float | None = None

    def pose(self, t: float) -> tuple[float, float, float, float, float] | None:
        """(x, z, yaw, gait phase, walking 0..1) at ``t``, or None when absent."""
        frames = self.keyframes
        if t < frames[0].t or (self.leaves and t > frames[-1].t):
            return None
        distance = 0.0
        for a, b in itertools.pairwise(frames):
            step = math.hypot(b.x - a.x, b.z - a.z)
            if t <= b.t:
                span = max(b.t - a.t, 1e-6)
                f = (t - a.t) / span
                yaw = a.yaw + _angle_diff(b.yaw, a.yaw) * f
                moving = 1.0 if step / span > 0.05 else 0.0
                distance += step * f
                phase = distance * 2 * math.pi / STRIDE_M
                return a.x + (b.x - a.x) * f, a.z + (b.z - a.z) * f, yaw, phase, moving
            distance += step
        last = frames[-1]
        return last.x, last.z, last.yaw, distance * 2 * math.pi / STRIDE_M, 0.0


def _angle_diff(a: float, b: float) -> float:
    return (a - b + math.pi) % (2 * math.pi) - math.pi


@dataclass(eq=False)
class Ride:
    seed: int
    kind: str
    car: Car
    pose: CameraPose
    look: Look
    actors: list[Actor]
    # (opening starts, closing starts) per stop, seconds.
    doors: list[tuple[float, float]]
    duration_s: float
    truth: RideTruth = field(default_factory=lambda: RideTruth(False, None, None, []))

    def door_opening(self, t: float) -> float:
        for opens, closes in self.doors:
            if opens <= t < closes:
                return min(1.0, (t - opens) / DOOR_MOVE_S)
            if closes <= t < closes + DOOR_MOVE_S:
                return max(0.0, 1 - (t - closes) / DOOR_MOVE_S)
        return 0.0

    def placements(self, t: float) -> list[Placement]:
        out: list[Placement] = []
        for actor in self.actors:
            pose = actor.pose(t)
            if pose is not None:
                x, z, yaw, phase, walking = pose
                out += actor.group.placements(x, z, yaw, phase, walking, actor.first_id)
        return out


# ------------------------------------------------------------------------------------------ planning


class _Planner:
    def __init__(self, rng: np.random.Generator, car: Car, camera: Camera) -> None:
        self.rng = rng
        self.car = car
        self.camera = camera
        self.taken: list[tuple[float, float, float]] = []
        self.actors: list[Actor] = []
        self.next_id = 1

    def _actor(self, group: Group, keyframes: list[Keyframe]) -> Actor:
        actor = Actor(group, keyframes, self.next_id)
        self.next_id += len(group.members)
        self.actors.append(actor)
        return actor

    def _landing_point(self) -> tuple[float, float]:
        car = self.car
        return car.door_center_x + float(self.rng.uniform(-1.5, 1.5)), car.depth + float(
            self.rng.uniform(1.3, 2.0)
        )

    def standing(self, group: Group, t: float = 0.0) -> Actor:
        x, z, yaw = place_inside(self.rng, self.car, group, self.taken, self.camera)
        self.taken.append((x, z, group.radius))
        return self._actor(group, [Keyframe(t, x, z, yaw), Keyframe(t + 0.01, x, z, yaw)])

    def enter(self, group: Group, start: float) -> tuple[Actor, float]:
        """Walk in from the landing; returns the actor and when it is through the door."""
        rng, car = self.rng, self.car
        speed = float(rng.uniform(0.6, 0.9) if group.lead.cls != "person" else rng.uniform(0.8, 1.25))
        sx, sz = self._landing_point()
        door_x = car.door_center_x + float(rng.uniform(-0.12, 0.12)) * car.door_width
        fx, fz, final_yaw = place_inside(rng, car, group, self.taken, self.camera)
        self.taken.append((fx, fz, group.radius))
        points = [(sx, sz), (door_x, car.depth + 0.4), (door_x, car.depth - 0.5), (fx, fz)]
        keyframes: list[Keyframe] = []
        t = start
        for index, (x, z) in enumerate(points):
            if index > 0:
                px, pz = points[index - 1]
                t += math.hypot(x - px, z - pz) / speed
            nx, nz = points[min(index + 1, len(points) - 1)]
            px, pz = points[max(index - 1, 0)]
            heading = math.atan2(nz - pz, nx - px) if index < len(points) - 1 else keyframes[-1].yaw
            keyframes.append(Keyframe(t, x, z, heading))
        if group.lead.cls == "person":
            final_yaw = math.pi / 2 + float(rng.uniform(-0.6, 0.6))  # turn to face the door
        keyframes.append(Keyframe(t + 1.0, fx, fz, final_yaw))
        through = keyframes[2].t
        actor = self._actor(group, keyframes)
        actor.arrived_s = keyframes[3].t
        return actor, through

    def leave(self, actor: Actor, start: float) -> float:
        """Walk out to the landing from where the actor stands; returns when it is through the door."""
        rng, car = self.rng, self.car
        pose = actor.pose(start)
        assert pose is not None
        x, z, yaw, _, _ = pose
        speed = float(rng.uniform(0.6, 0.9) if actor.group.lead.cls != "person" else rng.uniform(0.8, 1.25))
        door_x = car.door_center_x + float(rng.uniform(-0.12, 0.12)) * car.door_width
        lx, lz = self._landing_point()
        # People walk out forwards; vehicles are backed out, front towards the camera.
        exit_yaw = math.pi / 2 if actor.group.lead.cls == "person" else -math.pi / 2
        keyframes = [kf for kf in actor.keyframes if kf.t < start]
        keyframes.append(Keyframe(start, x, z, yaw))
        keyframes.append(Keyframe(start + 0.8, x, z, exit_yaw))
        t = start + 0.8
        through = t
        for index, (px, pz) in enumerate([(door_x, car.depth - 0.5), (door_x, car.depth + 0.4), (lx, lz)]):
            previous = keyframes[-1]
            t += math.hypot(px - previous.x, pz - previous.z) / speed
            keyframes.append(Keyframe(t, px, pz, exit_yaw))
            if index == 1:
                through = t
        actor.keyframes = keyframes
        actor.leaves = True
        return through


def _main_group(rng: np.random.Generator, kind: str) -> Group | None:
    if kind in ("ebike", "ebike_late"):
        return ebike_group(rng, "city" if rng.random() < 0.7 else None)
    if kind == "escooter":
        return ebike_group(rng, str(rng.choice(["moped", "kick"])))
    if kind == "bicycle":
        return bicycle_group(rng)
    if kind == "stroller":
        return stroller_group(rng)
    if kind == "wheelchair":
        return wheelchair_group(rng)
    if kind == "bags":
        return person_group(rng, with_bag=True)
    return None


def make_ride(seed: int, kind: str | None = None) -> Ride:
    """Plan a seeded ride of ``kind`` (one of ``RIDE_KINDS``; None draws one from the seed)."""
    rng = np.random.default_rng(seed)
    if kind is None:
        kind = str(rng.choice(RIDE_KINDS, p=KIND_WEIGHTS))
    if kind not in RIDE_KINDS:
        raise ValueError(f"unknown ride kind {kind!r}: expected one of {', '.join(RIDE_KINDS)}")
    car = random_car(rng)
    pose = random_camera_pose(rng, car, facing_door=True)
    look = random_look(rng)
    planner = _Planner(rng, car, Camera(pose, *REFERENCE_SIZE))

    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        planner.standing(person_group(rng))

    main = _main_group(rng, kind)
    first_entrants: list[Group] = [person_group(rng) for _ in range(int(rng.choice([0, 1, 1, 2])))]
    if kind == "people_only":
        first_entrants.append(person_group(rng))
    late_main = kind == "ebike_late"
    if main is not None and not late_main:
        first_entrants.insert(int(rng.integers(0, len(first_entrants) + 1)), main)
    if kind == "bags" and rng.random() < 0.5:
        first_entrants.append(person_group(rng, with_bag=True))

    # Stop 1: the door opens and the first entrants come in one after another.
    open1 = float(rng.uniform(0.5, 1.5))
    start = open1 + 0.6
    through_times = [open1 + DOOR_MOVE_S]
    main_actor: Actor | None = None
    entered: list[Actor] = []
    for group in first_entrants:
        actor, through = planner.enter(group, start)
        entered.append(actor)
        if group is main:
            main_actor = actor
        through_times.append(through)
        start += float(rng.uniform(1.2, 2.5))
    close1 = max(through_times) + float(rng.uniform(1.0, 2.0))

    # Travel, then stop 2: some leave (the main group usually does), late entrants come in.
    open2 = close1 + DOOR_MOVE_S + float(rng.uniform(2.5, 5.0))
    leave_start = open2 + 0.6
    through_times = [open2 + DOOR_MOVE_S]
    for actor in planner.actors:
        leaves = (actor is main_actor and rng.random() < 0.85) or (
            actor is not main_actor and rng.random() < 0.35
        )
        if leaves:
            through_times.append(planner.leave(actor, leave_start))
            leave_start += float(rng.uniform(1.0, 2.0))
    enter_start = max(through_times) + 0.5
    if late_main and main is not None:
        main_actor, through = planner.enter(main, enter_start)
        through_times.append(through)
        enter_start += float(rng.uniform(1.2, 2.5))
    if rng.random() < 0.3 or (kind == "people_only" and not entered):
        _, through = planner.enter(person_group(rng), enter_start)
        through_times.append(through)
    close2 = max(through_times) + float(rng.uniform(1.0, 2.0))
    duration = close2 + DOOR_MOVE_S + float(rng.uniform(1.5, 3.0))

    ride = Ride(seed, kind, car, pose, look, planner.actors, [(open1, close1), (open2, close2)], duration)
    ride.truth = _truth(ride, main_actor if kind in EBIKE_KINDS else None)
    return ride


def _truth(ride: Ride, ebike_actor: Actor | None) -> RideTruth:
    kinds = sorted({m.prop.cls for a in ride.actors for m in a.group.members} | {ride.kind})
    if ebike_actor is None:
        return RideTruth(False, None, None, kinds)
    camera = Camera(ride.pose, *REFERENCE_SIZE)
    vehicle = ebike_actor.group.lead
    points = np.concatenate([p.points for p in vehicle.parts()])
    low, high = points.min(axis=0), points.max(axis=0)
    corners = np.array(
        [[x, y, v] for x in (low[0], high[0]) for y in (low[1], high[1]) for v in (low[2], high[2])]
    )
    first_full: float | None = None
    left: float | None = None
    for t in np.arange(0.0, ride.duration_s, TRUTH_STEP_S):
        pose = ebike_actor.pose(float(t))
        if pose is None:
            if first_full is not None and left is None:
                left = float(t)
            continue
        x, z, yaw, _, _ = pose
        c, s = math.cos(yaw), math.sin(yaw)
        world = np.stack(
            [
                x + corners[:, 0] * c - corners[:, 2] * s,
                corners[:, 1],
                z + corners[:, 0] * s + corners[:, 2] * c,
            ],
            axis=1,
        )
        inside = bool((world[:, 2] < ride.car.depth).all())
        beyond = bool((world[:, 2] > ride.car.depth).all())
        if first_full is None:
            uv, depth = camera.project(world)
            in_view = bool(
                (depth > 0.1).all()
                & (uv[:, 0] >= 0).all()
                & (uv[:, 0] < REFERENCE_SIZE[0]).all()
                & (uv[:, 1] >= 0).all()
                & (uv[:, 1] < REFERENCE_SIZE[1]).all()
            )
            if inside and in_view:
                first_full = float(t)
        elif left is None and beyond:
            left = float(t)
    if first_full is None:
        # Never wholly inside and in view (a tight car): fall back to when it reached its place.
        first_full = ebike_actor.arrived_s
    return RideTruth(True, _round(first_full), _round(left), kinds)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class FirstVisibleWatch:
    """Finds the e-bike's first full appearance while a ride's frames are rendered: feed it every
    ``FrameTruth``; ``seen_s`` is the first frame from ``whole_in_view_s`` on in which at least
    ``FULL_APPEARANCE_MIN_VISIBLE`` of an e-bike is visible."""

    whole_in_view_s: float | None
    seen_s: float | None = None

    def observe(self, truth: FrameTruth) -> None:
        if self.seen_s is not None or self.whole_in_view_s is None or truth.t < self.whole_in_view_s - 1e-3:
            return
        if any(b.cls == "ebike" and b.visible >= FULL_APPEARANCE_MIN_VISIBLE for b in truth.boxes):
            self.seen_s = truth.t


# ------------------------------------------------------------------------------------------ frames


def iter_ride_frames(
    ride: Ride, fps: float = 15, size: tuple[int, int] = REFERENCE_SIZE, *, artefacts: bool = True
) -> Iterator[tuple[float, Image, FrameTruth]]:
    """Render the ride: ``(t_seconds, BGR frame, FrameTruth)`` at ``fps`` for its whole duration."""
    renderer = SceneRenderer(ride.car, ride.pose, ride.look, size, ride.seed)
    frames = int(ride.duration_s * fps)
    for index in range(frames):
        t = index / fps
        opening = ride.door_opening(t)
        rendered = renderer.render(ride.placements(t), opening, artefacts=artefacts)
        boxes = [
            box
            for box in rendered.boxes
            if box.visible >= MIN_VISIBLE_FRACTION
            and box.x2 - box.x1 >= MIN_BOX_PIXELS
            and box.y2 - box.y1 >= MIN_BOX_PIXELS
        ]
        yield t, rendered.image, FrameTruth(round(t, 4), boxes, round(opening, 3))


def write_ride_video(
    ride: Ride, path: str | Path, *, fps: float = 15, size: tuple[int, int] = REFERENCE_SIZE
) -> Path:
    """Write the ride as a video (``.mp4``: mp4v, ``.avi``: MJPG) and ``<stem>.json``; returns the JSON path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise OSError(
            f"OpenCV cannot write a video to {path}: use a .mp4 or .avi name in a writable directory"
        )
    frames: list[dict[str, Any]] = []
    watch = FirstVisibleWatch(ride.truth.ebike_first_full_s)
    try:
        for t, image, truth in iter_ride_frames(ride, fps, size):
            writer.write(image)
            watch.observe(truth)
            frames.append(
                {"t": t, "door_open": truth.door_open, "boxes": [_box_json(b) for b in truth.boxes]}
            )
    finally:
        writer.release()
    document = {
        "format": TRUTH_FORMAT,
        "video": path.name,
        "fps": fps,
        "width": size[0],
        "height": size[1],
        "seed": ride.seed,
        "kind": ride.kind,
        "duration_s": round(ride.duration_s, 3),
        **asdict(ride.truth),
        "ebike_first_visible_s": watch.seen_s,
        "frames": frames,
    }
    truth_path = path.with_suffix(".json")
    truth_path.write_text(json.dumps(document, separators=(",", ":")))
    return truth_path


def _box_json(box: Box) -> dict[str, Any]:
    return {
        "cls": box.cls,
        "x1": box.x1,
        "y1": box.y1,
        "x2": box.x2,
        "y2": box.y2,
        "track_id": box.track_id,
        "visible": round(box.visible, 3),
    }


def read_ride_truth(path: str | Path) -> RideTruth:
    """The ride-level truth of a ground-truth JSON file (see docs/evaluation.md)."""
    document = json.loads(Path(path).read_text())
    if document.get("format") != TRUTH_FORMAT:
        raise ValueError(
            f"{path}: not a {TRUTH_FORMAT} ground-truth file (format={document.get('format')!r})"
        )
    first_full = document.get("ebike_first_full_s")
    return RideTruth(
        has_ebike=bool(document["has_ebike"]),
        ebike_first_full_s=first_full,
        ebike_left_s=document.get("ebike_left_s"),
        kinds=list(document.get("kinds", [])),
        # Absent (footage labelled with one instant): the latency reference is ebike_first_full_s.
        ebike_first_visible_s=document.get("ebike_first_visible_s", first_full),
    )
