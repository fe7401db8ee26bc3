"""Vehicles and people placed on the street and projected: shared by the renderer and the visibility truth.

A ``Model`` flattens a vehicle's blocks, panels and wheels into one array of points in the vehicle's
frame, so placing it costs one matrix product and one projection. ``order_far_to_near`` sorts what is on
the street for the painter's algorithm: by the nearest point of each footprint, and where two overlap
in the picture, by which one a ray from the camera meets first.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from simulators.street.camera import NEAR_M, FloatArray, StreetCamera
from simulators.street.layout import FAR_Y_M
from simulators.street.people import Pedestrian
from simulators.street.traffic import Track
from simulators.street.vehicles import FACE_CORNERS, FACES, TYRE, Block, VehicleSpec, face_point

CIRCLE_SIDES = 14


@dataclass(frozen=True, eq=False)
class PanelRef:
    block: int
    face: int  # index into FACES
    row: int  # first of its four points in Model.points
    colour: tuple[int, int, int]
    role: str


@dataclass(frozen=True, eq=False)
class WheelRef:
    side: int  # +1 right, -1 left (drawn when that side faces the camera), 0: in the middle plane
    row: int  # tyre polygon (CIRCLE_SIDES points), then the rim (CIRCLE_SIDES points)


@dataclass(frozen=True, eq=False)
class Model:
    spec: VehicleSpec
    blocks: tuple[Block, ...]
    layers: tuple[int, ...]
    points: FloatArray  # (N, 3) in the vehicle frame: block corners (8 each) first
    normals: FloatArray  # (blocks, 5, 3) outward face normals, vehicle frame
    centres: FloatArray  # (blocks, 5, 3) face centres
    block_centres: FloatArray  # (blocks, 3)
    panels: tuple[PanelRef, ...]
    wheels: tuple[WheelRef, ...]
    face_rows: np.ndarray  # (blocks, 5, 4) rows of each face's corners in ``points``
    colours: np.ndarray  # (blocks, 3) paint

    @property
    def plates(self) -> tuple[PanelRef, ...]:
        return tuple(p for p in self.panels if p.role == "plate")

    @functools.cached_property
    def panels_by_block(self) -> tuple[tuple[PanelRef, ...], ...]:
        return tuple(tuple(p for p in self.panels if p.block == i) for i in range(len(self.blocks)))


@functools.lru_cache(maxsize=512)
def build_model(spec: VehicleSpec) -> Model:
    blocks: list[Block] = []
    for wheel in spec.wheels:
        if wheel.b == 0.0:
            continue
        r = wheel.radius
        b0, b1 = (wheel.b - wheel.width, wheel.b) if wheel.b > 0 else (wheel.b, wheel.b + wheel.width)
        blocks.append(
            Block(
                wheel.a - 0.92 * r,
                wheel.a + 0.92 * r,
                b0,
                b1,
                0.0,
                1.9 * r,
                TYRE,
                layer=-1,
                inset_front=0.45 * r,
                inset_rear=0.45 * r,
            )
        )
    blocks.extend(spec.blocks)
    points: list[np.ndarray] = []
    normals = np.zeros((len(blocks), len(FACES), 3))
    centres = np.zeros((len(blocks), len(FACES), 3))
    block_centres = np.zeros((len(blocks), 3))
    for i, block in enumerate(blocks):
        corners = block.corners()
        points.append(corners)
        middle = corners.mean(axis=0)
        block_centres[i] = middle
        for j, face in enumerate(FACES):
            quad = corners[list(FACE_CORNERS[face])]
            centre = quad.mean(axis=0)
            n = np.cross(quad[1] - quad[0], quad[3] - quad[0])
            if np.dot(n, centre - middle) < 0:
                n = -n
            normals[i, j] = n / (np.linalg.norm(n) or 1.0)
            centres[i, j] = centre
    row = 8 * len(blocks)
    panels: list[PanelRef] = []
    for i, block in enumerate(blocks):
        corners = block.corners()
        for panel in block.panels:
            panel_quad = [
                face_point(corners, panel.face, panel.s0, panel.t0),
                face_point(corners, panel.face, panel.s1, panel.t0),
                face_point(corners, panel.face, panel.s1, panel.t1),
                face_point(corners, panel.face, panel.s0, panel.t1),
            ]
            # Lift it off the face a little towards the outside, so it never sinks into the paint.
            lift = normals[i, FACES.index(panel.face)] * 0.004
            points.append(np.asarray(panel_quad) + lift)
            panels.append(PanelRef(i, FACES.index(panel.face), row, panel.colour, panel.role))
            row += 4
    wheels: list[WheelRef] = []
    angles = np.linspace(0, 2 * math.pi, CIRCLE_SIDES, endpoint=False)
    for wheel in spec.wheels:
        side = 0 if wheel.b == 0.0 else (1 if wheel.b > 0 else -1)
        b = wheel.b + 0.01 * side
        for radius in (wheel.radius, 0.58 * wheel.radius):
            ring = np.column_stack(
                [
                    wheel.a + radius * np.cos(angles),
                    np.full(CIRCLE_SIDES, b),
                    wheel.radius + radius * np.sin(angles),
                ]
            )
            points.append(ring)
        wheels.append(WheelRef(side, row))
        row += 2 * CIRCLE_SIDES
    return Model(
        spec,
        tuple(blocks),
        tuple(b.layer for b in blocks),
        np.concatenate(points).astype(np.float64),
        normals,
        centres,
        block_centres,
        tuple(panels),
        tuple(wheels),
        np.array(
            [[[8 * i + k for k in FACE_CORNERS[face]] for face in FACES] for i in range(len(blocks))],
            dtype=np.intp,
        ),
        np.array([b.colour for b in blocks], dtype=np.float64),
    )


def frame_matrix(heading: float) -> FloatArray:
    """Vehicle frame (a forward, b right, z up) to world directions."""
    s, c = math.sin(heading), math.cos(heading)
    return np.array([[s, c, 0.0], [c, -s, 0.0], [0.0, 0.0, 1.0]])  # rows: a, b, z in world terms


@dataclass(eq=False)
class Placed:
    """Something on the street at one instant, projected for one camera."""

    kind: str  # vehicle or pedestrian
    ident: int
    x: float
    y: float
    heading: float
    footprint: FloatArray  # (4, 2) world corners on the road
    uv: FloatArray  # projected points (vehicle: Model.points; pedestrian: its skeleton)
    depth: FloatArray
    cam: FloatArray  # the same points in camera coordinates (for clipping at the near plane)
    world: FloatArray
    bbox: tuple[float, float, float, float]
    model: Model | None = None
    pedestrian: Pedestrian | None = None
    phase: float = 0.0  # walking stride
    flags: int = 0
    speed: float = 0.0

    @functools.cached_property
    def crosses_near(self) -> bool:
        return bool((self.depth < NEAR_M).any())

    @functools.cached_property
    def behind(self) -> bool:
        return bool((self.depth < NEAR_M).all())


def place_vehicle(
    model: Model,
    ident: int,
    x: float,
    y: float,
    heading: float,
    camera: StreetCamera,
    *,
    flags: int = 0,
    speed: float = 0.0,
) -> Placed:
    rot = frame_matrix(heading)
    world = model.points @ rot + np.array([x, y, 0.0])
    cam = camera.to_camera(world)
    uv, depth = _project_cam(camera, cam)
    spec = model.spec
    half_l, half_w = spec.length_m / 2, spec.width_m / 2
    foot_local = np.array([[-half_l, -half_w], [half_l, -half_w], [half_l, half_w], [-half_l, half_w]])
    footprint = foot_local @ rot[:2, :2] + np.array([x, y])
    return Placed(
        "vehicle",
        ident,
        x,
        y,
        heading,
        footprint,
        uv,
        depth,
        cam,
        world,
        _bbox(uv[: 8 * len(model.blocks)], depth[: 8 * len(model.blocks)]),
        model=model,
        flags=flags,
        speed=speed,
    )


# Pedestrian skeleton points: 0 left foot, 1 right foot, 2 hips, 3 shoulders, 4 head centre,
# 5-8 a box around the body (for the silhouette), 9-12 its top.
_SKELETON_FWD = np.array(
    [1.0, -1.0, 0, 0, 0, -0.2, 0.2, 0.2, -0.2, -0.2, 0.2, 0.2, -0.2]
)  # times swing for feet
_SKELETON_SIDE = np.array([-0.1, 0.1, 0, 0, 0, -0.25, -0.25, 0.25, 0.25, -0.25, -0.25, 0.25, 0.25])
_SKELETON_UP = np.array([0.0, 0.0, 0.5, 0.8, 0.92, 0, 0, 0, 0, 1, 1, 1, 1])


def place_pedestrians(
    people: list[tuple[Pedestrian, float, float, float, float]], camera: StreetCamera
) -> list[Placed]:
    """Walkers ``(person, x, y, heading, stride phase)`` placed and projected all at once."""
    if not people:
        return []
    n = len(people)
    arr = np.array([(x, y, heading, phase, person.height_m) for person, x, y, heading, phase in people])
    x, y, heading, phase, h = arr.T
    fwd = np.stack([np.sin(heading), np.cos(heading)], axis=1)  # (n, 2)
    side = np.stack([np.cos(heading), -np.sin(heading)], axis=1)
    along = np.tile(_SKELETON_FWD, (n, 1))
    along[:, :2] *= (0.32 * np.sin(2 * np.pi * phase))[:, None]
    world = np.empty((n, 13, 3))
    world[..., :2] = (
        np.stack([x, y], axis=1)[:, None, :]
        + along[..., None] * fwd[:, None, :]
        + _SKELETON_SIDE[None, :, None] * side[:, None, :]
    )
    world[..., 2] = _SKELETON_UP[None, :] * h[:, None]
    cam = camera.to_camera(world.reshape(-1, 3))
    uv, depth = _project_cam(camera, cam)
    cam, uv, depth = cam.reshape(n, 13, 3), uv.reshape(n, 13, 2), depth.reshape(n, 13)
    out = []
    for k, (person, px, py, ph, pphase) in enumerate(people):
        out.append(
            Placed(
                "pedestrian",
                person.id,
                px,
                py,
                ph,
                world[k, 5:9, :2],
                uv[k],
                depth[k],
                cam[k],
                world[k],
                _bbox(uv[k, 5:], depth[k, 5:]),
                pedestrian=person,
                phase=pphase,
            )
        )
    return out


def place_pedestrian(
    person: Pedestrian, x: float, y: float, heading: float, phase: float, camera: StreetCamera
) -> Placed:
    return place_pedestrians([(person, x, y, heading, phase)], camera)[0]


def _project_cam(camera: StreetCamera, cam: FloatArray) -> tuple[FloatArray, FloatArray]:
    depth = cam[:, 2]
    safe = np.where(depth < NEAR_M, NEAR_M, depth)
    f = camera.focal
    uv = np.stack([f * cam[:, 0] / safe + camera.width / 2, f * cam[:, 1] / safe + camera.height / 2], axis=1)
    return uv, depth


def _bbox(uv: FloatArray, depth: FloatArray) -> tuple[float, float, float, float]:
    front = depth >= NEAR_M
    if not front.any():
        return (0.0, 0.0, -1.0, -1.0)
    p = uv[front]
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    return (float(x0), float(y0), float(x1), float(y1))


def face_visible(placed: Placed, camera: StreetCamera) -> np.ndarray:
    """(blocks, 5) booleans: the face looks towards the camera."""
    assert placed.model is not None
    rot = frame_matrix(placed.heading)
    normals = placed.model.normals @ rot
    centres = placed.model.centres @ rot + np.array([placed.x, placed.y, 0.0])
    return np.asarray(np.einsum("bfk,bfk->bf", normals, camera.position - centres) > 1e-6)


def block_order(placed: Placed, camera: StreetCamera) -> list[int]:
    """Block indices in drawing order: by layer, far to near within a layer."""
    assert placed.model is not None
    rot = frame_matrix(placed.heading)
    centres = placed.model.block_centres @ rot + np.array([placed.x, placed.y, 0.0])
    distance = np.linalg.norm(centres - camera.position, axis=1)
    return sorted(range(len(placed.model.blocks)), key=lambda i: (placed.model.layers[i], -distance[i]))  # type: ignore[union-attr]


@dataclass(frozen=True)
class Pose:
    """Where something on the street is at an instant, before it is projected."""

    kind: str  # vehicle or pedestrian
    index: int  # into Population.tracks or Population.people
    ident: int
    x: float
    y: float
    heading: float
    radius: float  # of a circle around its footprint
    phase: float = 0.0  # walking stride, or the sample index of a vehicle's track


class Population:
    """Who is on the street when: finds the vehicles and pedestrians present at an instant quickly."""

    def __init__(self, scenario: object) -> None:
        self.tracks: list[Track] = sorted(scenario.tracks, key=lambda tr: tr.t0)  # type: ignore[attr-defined]
        self.track_span = np.array([[tr.t0, tr.t1] for tr in self.tracks]).reshape(-1, 2)
        self.people: list[Pedestrian] = list(scenario.pedestrians)  # type: ignore[attr-defined]
        self.people_span = np.array([[p.start_s, p.end_s] for p in self.people]).reshape(-1, 2)
        self._models: dict[int, Model] = {}

    def model(self, track: Track) -> Model:
        model = self._models.get(track.id)
        if model is None:
            model = self._models[track.id] = build_model(track.spec)
        return model

    def poses(self, t: float, camera: StreetCamera) -> list[Pose]:
        """Everything on the street at ``t`` that is not behind the camera's pole or past the far end."""
        out: list[Pose] = []
        for i in np.flatnonzero((self.track_span[:, 0] <= t + 1e-9) & (self.track_span[:, 1] >= t - 1e-9)):
            track = self.tracks[int(i)]
            pose = track.at(t)
            if pose is None:
                continue
            x, y, heading = pose
            if y < camera.pose.y_m - 2 or y > FAR_Y_M - 5:
                continue
            k = min(max(round(track.index(t)), 0), len(track.speed) - 1)
            out.append(
                Pose(
                    "vehicle",
                    int(i),
                    track.id,
                    x,
                    y,
                    heading,
                    0.5 * math.hypot(track.spec.length_m, track.spec.width_m),
                    float(k),
                )
            )
        for i in np.flatnonzero((self.people_span[:, 0] <= t) & (self.people_span[:, 1] >= t)):
            person = self.people[int(i)]
            where = person.at(t)
            if where is not None and where[1] >= camera.pose.y_m - 1:
                out.append(
                    Pose("pedestrian", int(i), person.id, where[0], where[1], where[2], 0.35, where[3])
                )
        return out

    def place(self, poses: list[Pose], camera: StreetCamera) -> list[Placed]:
        """The poses projected; what is behind the camera or outside the picture left out."""
        out: list[Placed] = []
        width, height = camera.width, camera.height
        walkers = []
        for pose in poses:
            if pose.kind == "pedestrian":
                walkers.append((self.people[pose.index], pose.x, pose.y, pose.heading, pose.phase))
                continue
            track = self.tracks[pose.index]
            k = int(pose.phase)
            p = place_vehicle(
                self.model(track),
                track.id,
                pose.x,
                pose.y,
                pose.heading,
                camera,
                flags=int(track.flags[k]),
                speed=float(track.speed[k]),
            )
            if not p.behind and _in_picture(p.bbox, width, height):
                out.append(p)
        for p in place_pedestrians(walkers, camera):
            if not p.behind and _in_picture(p.bbox, width, height):
                out.append(p)
        return out

    def at(self, t: float, camera: StreetCamera) -> list[Placed]:
        return self.place(self.poses(t, camera), camera)


def _in_picture(bbox: tuple[float, float, float, float], width: int, height: int) -> bool:
    x0, y0, x1, y1 = bbox
    return x1 >= 0 and y1 >= 0 and x0 <= width and y0 <= height and x1 > x0


# ------------------------------------------------------------------------------------- ordering


def order_far_to_near(items: list[Placed], camera: StreetCamera) -> list[Placed]:
    if not items:
        return []
    eye = camera.position[:2]
    feet = np.stack([p.footprint for p in items])  # (n, 4, 2)
    nearest = _nearest_distances(feet, eye)
    angles = np.arctan2(feet[..., 0] - eye[0], feet[..., 1] - eye[1])
    keyed = {id(p): float(d) for p, d in zip(items, nearest, strict=True)}
    azimuths = {
        id(p): (float(lo), float(hi))
        for p, lo, hi in zip(items, angles.min(axis=1), angles.max(axis=1), strict=True)
    }

    def compare(a: Placed, b: Placed) -> int:
        """-1 when ``a`` is to be drawn first (it is behind ``b``)."""
        if _boxes_overlap(a.bbox, b.bbox):
            lo = max(azimuths[id(a)][0], azimuths[id(b)][0])
            hi = min(azimuths[id(a)][1], azimuths[id(b)][1])
            if lo < hi:
                mid = (lo + hi) / 2
                da = _ray_distance(eye, mid, a.footprint)
                db = _ray_distance(eye, mid, b.footprint)
                if math.isfinite(da) and math.isfinite(db) and abs(da - db) > 1e-6:
                    return -1 if da > db else 1
        ka, kb = keyed[id(a)], keyed[id(b)]
        return -1 if ka > kb else (1 if ka < kb else 0)

    ordered = sorted(items, key=lambda p: -keyed[id(p)])
    # An insertion sort with the pairwise test: the keys give a near-right order, so this is nearly linear.
    out: list[Placed] = []
    for item in ordered:
        position = len(out)
        while position > 0 and compare(item, out[position - 1]) < 0:
            position -= 1
        out.insert(position, item)
    return out


def _boxes_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _nearest_distances(feet: FloatArray, eye: FloatArray) -> FloatArray:
    """Distance from ``eye`` to the nearest point of each footprint's outline, (n, 4, 2) -> (n,)."""
    p = feet
    d = np.roll(feet, -1, axis=1) - p
    u = np.clip(
        np.einsum("nkj,nkj->nk", eye - p, d) / np.maximum(np.einsum("nkj,nkj->nk", d, d), 1e-12), 0.0, 1.0
    )
    closest = p + d * u[..., None]
    return np.asarray(np.hypot(*(closest - eye).transpose(2, 0, 1)).min(axis=1))


def _ray_distance(eye: FloatArray, azimuth: float, poly: FloatArray) -> float:
    d = np.array([math.sin(azimuth), math.cos(azimuth)])
    best = math.inf
    for i in range(len(poly)):
        p, q = poly[i], poly[(i + 1) % len(poly)]
        e = q - p
        det = d[0] * (-e[1]) - d[1] * (-e[0])
        if abs(det) < 1e-12:
            continue
        w = p - eye
        t = (w[0] * (-e[1]) - w[1] * (-e[0])) / det
        u = (d[0] * w[1] - d[1] * w[0]) / det
        if t > 0 and -1e-9 <= u <= 1 + 1e-9:
            best = min(best, t)
    return best


# ----------------------------------------------------------------------------------- silhouettes


def silhouettes(placed: Placed, camera: StreetCamera, scale: float = 1.0) -> list[FloatArray]:
    """Convex outlines (pixels of ``camera``) whose union is what the thing covers in the picture.

    ``scale``: ``camera``'s width over the width of the camera ``placed`` was projected with (the
    same pose, so its pixels only scale)."""
    if placed.kind == "vehicle":
        assert placed.model is not None
        groups = [slice(8 * i, 8 * i + 8) for i in range(len(placed.model.blocks))]
    else:
        groups = [slice(5, 13)]
    if placed.crosses_near:
        out = [_hull_pixels(placed.cam[g], camera) for g in groups]
        return [h for h in out if len(h) >= 3]
    uv = (placed.uv * scale).astype(np.float32)
    return [np.asarray(cv2.convexHull(uv[g]).reshape(-1, 2), dtype=np.float64) for g in groups]


def _hull_pixels(cam_points: FloatArray, camera: StreetCamera) -> FloatArray:
    """The outline of a set of points (a box's corners) as the camera sees it, clipped at the near plane."""
    if (cam_points[:, 2] >= NEAR_M).all():
        pts = cam_points
    else:
        # Clip the box's edges: keep points in front and where edges cross the near plane.
        kept = [p for p in cam_points if p[2] >= NEAR_M]
        for i in range(len(cam_points)):
            for j in range(i + 1, len(cam_points)):
                a, b = cam_points[i], cam_points[j]
                if (a[2] - NEAR_M) * (b[2] - NEAR_M) < 0:
                    f = (NEAR_M - a[2]) / (b[2] - a[2])
                    kept.append(a + (b - a) * f)
        if len(kept) < 3:
            return np.zeros((0, 2))
        pts = np.asarray(kept)
    f = camera.focal
    uv = np.stack(
        [f * pts[:, 0] / pts[:, 2] + camera.width / 2, f * pts[:, 1] / pts[:, 2] + camera.height / 2], axis=1
    )
    limit = 4 * max(camera.width, camera.height)
    uv = np.clip(uv, -limit, limit)
    hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2)
    return np.asarray(hull, dtype=np.float64)
