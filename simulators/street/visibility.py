"""How much of each vehicle the camera sees: an id picture of outlines painted far to near.

Outlines are painted at a fixed small size (``PROBE_WIDTH`` pixels wide), whatever size the frames are,
so the occlusion truth of a scenario is the same at every output size. A vehicle's share in sight is
the pixels that still carry its id over the pixels its own outline covers inside the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from simulators.street.camera import StreetCamera
from simulators.street.geometry import Placed, Population, order_far_to_near, silhouettes
from simulators.street.scenario import Scenario, Stop

PROBE_WIDTH = 480
OCCLUDED_BELOW = 0.5  # a vehicle with less than this share of itself in sight is occluded
SAMPLE_S = 0.5


@dataclass(frozen=True)
class Occlusion:
    vehicle_id: int
    start_s: float
    end_s: float
    min_visible: float
    by: tuple[int, ...]  # what hid it (vehicle ids; pedestrians from 50000)


def probe_camera(scenario: Scenario, aspect: float = 16 / 9) -> StreetCamera:
    return scenario.camera((PROBE_WIDTH, max(1, round(PROBE_WIDTH / aspect))))


class VisibilityProbe:
    """Shares in sight of everything a renderer drew, from an id picture ``PROBE_WIDTH`` wide."""

    def __init__(self, scenario: Scenario, size: tuple[int, int]) -> None:
        self.scenario = scenario
        self.camera = probe_camera(scenario, size[0] / size[1])
        self.scale = self.camera.width / size[0]

    def shares(self, ordered: list[Placed]) -> dict[int, tuple[float, float]]:
        """Vehicle id -> (share in sight, share inside the picture), for things already ordered far to near."""
        ids, own, _ = _paint(ordered, self.camera, None, self.scale)
        counts = np.bincount(ids.ravel(), minlength=len(ordered) + 1)
        out: dict[int, tuple[float, float]] = {}
        for k, p in enumerate(ordered, start=1):
            if p.kind != "vehicle":
                continue
            inside, total = own[k]
            if inside <= 0:
                out[p.ident] = (0.0, 0.0)
                continue
            out[p.ident] = (round(min(1.0, float(counts[k]) / inside), 3), round(inside / max(total, 1), 3))
        return out


def _paint(
    ordered: list[Placed], camera: StreetCamera, target: int | None, scale: float = 1.0
) -> tuple[np.ndarray, dict[int, tuple[int, int]], set[int]]:
    """The id picture, each thing's own outline area (inside the picture, in all), and what covers
    ``target`` (an index into ``ordered``, 1-based)."""
    width, height = camera.width, camera.height
    ids = np.zeros((height, width), dtype=np.uint16)
    own: dict[int, tuple[int, int]] = {}
    mine: tuple[np.ndarray, int, int] | None = None
    for k, p in enumerate(ordered, start=1):
        hulls = silhouettes(p, camera, scale)
        if not hulls:
            own[k] = (0, 0)
            continue
        allpts = np.concatenate(hulls)
        x0, y0 = np.floor(allpts.min(axis=0)).astype(int)
        x1, y1 = np.ceil(allpts.max(axis=0)).astype(int) + 1
        scratch = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        for hull in hulls:
            points = np.round(hull).astype(np.int32)
            cv2.fillConvexPoly(scratch, points - (x0, y0), 1, cv2.LINE_8)
            cv2.fillConvexPoly(ids, points, k, cv2.LINE_8)
        total = int(np.count_nonzero(scratch))
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        inside = 0
        if cx1 > cx0 and cy1 > cy0:
            clipped = scratch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            inside = int(np.count_nonzero(clipped))
            if k == target:
                mine = (clipped, cx0, cy0)
        own[k] = (inside, total)
    covering: set[int] = set()
    if mine is not None:
        mask, cx0, cy0 = mine
        region = ids[cy0 : cy0 + mask.shape[0], cx0 : cx0 + mask.shape[1]]
        assert target is not None
        covering = {ordered[int(k) - 1].ident for k in np.unique(region[mask > 0]) if k > target}
    return ids, own, covering


def occlusions(
    scenario: Scenario, stops: list[Stop] | None = None, *, step_s: float = SAMPLE_S
) -> list[Occlusion]:
    """Every interval in which a watched stop's vehicle had less than ``OCCLUDED_BELOW`` of itself in sight.

    Sampled every ``step_s`` of scenario time during each stop; a sample is re-painted only when what
    overlaps the vehicle in the picture has moved since the last one.
    """
    camera = probe_camera(scenario)
    watched = [s for s in (stops if stops is not None else scenario.stops) if s.parking]
    if not watched:
        return []
    population = Population(scenario)
    samples: dict[int, list[tuple[float, float, tuple[int, ...]]]] = {id(s): [] for s in watched}
    memo: dict[int, tuple[tuple[object, ...], float, tuple[int, ...]]] = {}
    eye = camera.position[:2]
    first = min(s.start_s for s in watched)
    last = max(scenario.duration_s if s.end_s is None else s.end_s for s in watched)
    for k in range(math.floor(first / step_s), math.ceil(last / step_s) + 1):
        t = k * step_s
        active = [
            s for s in watched if s.start_s <= t <= (scenario.duration_s if s.end_s is None else s.end_s)
        ]
        if not active:
            continue
        poses = population.poses(t, camera)
        for stop in active:
            own = next((p for p in poses if p.kind == "vehicle" and p.ident == stop.vehicle_id), None)
            if own is None:
                continue
            # Only what stands nearer to the camera, in about the same direction, can hide it.
            reach = math.hypot(own.x - eye[0], own.y - eye[1]) + own.radius
            bearing = math.atan2(own.x - eye[0], own.y - eye[1])
            spread = math.asin(min(1.0, own.radius / max(reach - own.radius, own.radius)))
            near = []
            for pose in poses:
                if pose is own:
                    continue
                distance = math.hypot(pose.x - eye[0], pose.y - eye[1])
                if distance - pose.radius > reach or distance < 1e-6:
                    continue
                off = abs(math.remainder(math.atan2(pose.x - eye[0], pose.y - eye[1]) - bearing, 2 * math.pi))
                if off - math.asin(min(1.0, pose.radius / distance)) > spread + 0.02:
                    continue
                near.append(pose)
            key = tuple((p.ident, round(p.x, 2), round(p.y, 2), round(p.heading, 3)) for p in near)
            cached = memo.get(id(stop))
            if cached is not None and cached[0] == key:
                share, by = cached[1], cached[2]
            else:
                placed = population.place([own, *near], camera)
                target = next((p for p in placed if p.kind == "vehicle" and p.ident == stop.vehicle_id), None)
                if target is None:
                    continue
                ordered = order_far_to_near(placed, camera)
                index = ordered.index(target) + 1
                ids, areas, covering = _paint(ordered, camera, index)
                inside = areas[index][0]
                shown = int((ids == index).sum())
                share = 1.0 if inside <= 0 else min(1.0, shown / inside)
                by = tuple(sorted(covering))
                memo[id(stop)] = (key, share, by)
            samples[id(stop)].append((t, share, by))
    out: list[Occlusion] = []
    for stop in watched:
        out.extend(_intervals(stop.vehicle_id, samples[id(stop)], step_s))
    out.sort(key=lambda o: (o.start_s, o.vehicle_id))
    return out


def _intervals(
    vehicle_id: int, series: list[tuple[float, float, tuple[int, ...]]], step_s: float
) -> list[Occlusion]:
    out: list[Occlusion] = []
    current: list[tuple[float, float, tuple[int, ...]]] = []
    for sample in [*series, (math.inf, 1.0, ())]:
        t, share, _ = sample
        if share < OCCLUDED_BELOW and (not current or t - current[-1][0] <= step_s + 1e-6):
            current.append(sample)
            continue
        if current:
            by = sorted({i for _, _, b in current for i in b})
            out.append(
                Occlusion(
                    vehicle_id,
                    round(current[0][0], 3),
                    round(current[-1][0], 3),
                    round(min(s for _, s, _ in current), 3),
                    tuple(by),
                )
            )
            current = []
        if share < OCCLUDED_BELOW and t != math.inf:
            current.append(sample)
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
