"""The ground truth of a street scenario as JSON-ready data (``citywatch-street-truth/1``, docs/evaluation.md).

Geometry is given in pixels of one picture size, the way a device config writes it (zone polygons with
their names, the stop line), plus the camera's calibration; times are scenario seconds (frame ``k``
shows ``k * speed / fps``). Every stop is judged under the rules given (default: a warning after a
120 s dwell, a violation 600 s later): a vehicle standing in a no-parking zone of a class that zone does
not exempt gets a warning once it has stood ``dwell_s`` and a violation once it has stood ``dwell_s +
grace_s``; stops outside every zone (double parking in the lane, legal bays) never do, and neither
does traffic (a queue at the light, a jam, waiting behind a double parker), wherever it stands.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from simulators.street.camera import StreetCamera, _clip_plane, clip_near
from simulators.street.geometry import build_model, face_visible, place_vehicle
from simulators.street.layout import Zone
from simulators.street.scenario import Scenario, Stop, StreetRules
from simulators.street.traffic import DoublePark, Park
from simulators.street.visibility import OCCLUDED_BELOW, Occlusion, occlusions

TRUTH_FORMAT = "citywatch-street-truth/1"


def frame_count(scenario: Scenario, fps: float, speed: float = 1.0) -> int:
    return math.floor(scenario.duration_s * fps / speed + 1e-9)


def judge(stop: Stop, cls: str, zone: Zone | None, rules: StreetRules, duration_s: float) -> dict[str, Any]:
    """What the rules make of a stop: exempt, warning (and when), violation (and when), left in grace."""
    end = duration_s if stop.end_s is None else stop.end_s
    stood = float(end - stop.start_s)
    exempt = zone is not None and cls in zone.exempt_classes
    applies = zone is not None and not exempt and stop.parking  # traffic is not parking
    warning = bool(applies and stood >= rules.dwell_s)
    violation = bool(applies and stood >= rules.dwell_s + rules.grace_s)
    return {
        "exempt": exempt,
        "warning": warning,
        "warning_at_s": round(stop.start_s + rules.dwell_s, 3) if warning else None,
        "violation": violation,
        "violation_at_s": round(stop.start_s + rules.dwell_s + rules.grace_s, 3) if violation else None,
        "left_in_grace": warning and not violation and stop.end_s is not None,
    }


def zone_polygons(scenario: Scenario, size: tuple[int, int]) -> list[dict[str, Any]]:
    """The zones as a device config writes them: ``name``, ``polygon`` (pixels, inside the picture) and
    ``exempt_classes``, plus what only the truth has (``kind``, ``polygon_m`` in road metres).

    The painted rectangle is clipped to the part the picture shows (near plane, then the picture's
    edges) before it is projected, so every corner is a pixel of the frame, as a config needs; a zone
    the picture does not show (or shows as less than a pixel) is left out.
    """
    camera = scenario.camera(size)
    width, height = size
    out = []
    for zone in scenario.layout.zones:
        ground = np.asarray(zone.polygon_m, dtype=np.float64)
        cam = camera.to_camera(np.column_stack([ground, np.zeros(len(ground))]))
        px = _pixels_in_picture(camera, cam, width, height)
        if px is None:
            continue
        out.append(
            {
                "name": zone.name,
                "kind": zone.kind,
                "polygon": px,
                "polygon_m": [[round(x, 3), round(y, 3)] for x, y in zone.polygon_m],
                "exempt_classes": list(zone.exempt_classes),
            }
        )
    return out


def _pixels_in_picture(
    camera: StreetCamera, cam_points: np.ndarray, width: int, height: int
) -> list[list[float]] | None:
    """A polygon in camera coordinates as pixel corners inside ``width`` x ``height`` (rounded to 0.1 px,
    repeated corners dropped), or None when less than a pixel of it is in the picture."""
    f, cx, cy = camera.focal, width / 2, height / 2
    # Planes through the eye bounding the picture: u >= 0, u <= width, v >= 0, v <= height.
    planes = np.array([[f, 0.0, cx], [-f, 0.0, width - cx], [0.0, f, cy], [0.0, -f, height - cy]])
    poly = clip_near(cam_points)
    for normal in planes:
        if len(poly) < 3:
            return None
        poly = _clip_plane(poly, normal)
    if len(poly) < 3:
        return None
    corners: list[list[float]] = []
    for u, v in camera.pixels(poly):
        corner = [
            round(min(max(float(u), 0.0), float(width)), 1),
            round(min(max(float(v), 0.0), float(height)), 1),
        ]
        if corner not in corners:
            corners.append(corner)
    if len(corners) < 3 or _area(corners) < 1.0:
        return None
    return corners


def _area(corners: list[list[float]]) -> float:
    return abs(
        sum(
            corners[i][0] * corners[i - 1][1] - corners[i - 1][0] * corners[i][1] for i in range(len(corners))
        )
        / 2.0
    )


def calibration(scenario: Scenario, size: tuple[int, int]) -> dict[str, Any]:
    camera = scenario.camera(size)
    return {
        "image_size": [size[0], size[1]],
        "camera_matrix": [[round(float(v), 4) for v in row] for row in camera.camera_matrix],
        "dist_coeffs": [0.0, 0.0, 0.0, 0.0, 0.0],
        "rvec": [round(float(v), 6) for v in camera.rvec],
        "tvec": [round(float(v), 4) for v in camera.tvec],
        "pose": {k: round(v, 4) for k, v in dataclasses.asdict(camera.pose).items()},
        "homography_ground_to_px": [[float(f"{v:.8g}") for v in row] for row in camera.homography],
    }


def stop_view(scenario: Scenario, stop: Stop, camera: StreetCamera) -> dict[str, Any]:
    """Where a standing vehicle is in the picture: its box, and its plate's corners if the plate faces the camera."""
    track = scenario.track(stop.vehicle_id)
    model = build_model(track.spec)
    placed = place_vehicle(model, track.id, stop.x_m, stop.y_m, stop.heading, camera)
    x0, y0, x1, y1 = placed.bbox
    in_view = not placed.behind and x1 > 0 and y1 > 0 and x0 < camera.width and y0 < camera.height
    box = [
        round(max(0.0, x0), 1),
        round(max(0.0, y0), 1),
        round(min(float(camera.width), x1), 1),
        round(min(float(camera.height), y1), 1),
    ]
    plate_px = None
    plate_side = None
    if track.spec.plate_text is not None and not placed.crosses_near:
        seen = face_visible(placed, camera)
        for panel in model.plates:
            if seen[panel.block, panel.face]:
                quad = placed.uv[panel.row : panel.row + 4]
                corners = (
                    quad[3],
                    quad[2],
                    quad[1],
                    quad[0],
                )  # top-left, top-right, bottom-right, bottom-left
                plate_px = [[round(float(u), 2), round(float(v), 2)] for u, v in corners]
                plate_side = ("front", "rear", "left", "right", "top")[panel.face]
                break
    return {
        "in_view": in_view and not placed.crosses_near,
        "box_px": box if in_view else None,
        "plate_px": plate_px,
        "plate_side": plate_side,
    }


def truth_document(
    scenario: Scenario,
    size: tuple[int, int],
    fps: float,
    *,
    speed: float = 1.0,
    rules: StreetRules | None = None,
    occluded: list[Occlusion] | None = None,
) -> dict[str, Any]:
    """Everything that happened, in the ``citywatch-street-truth/1`` format (docs/evaluation.md)."""
    rules = rules or scenario.rules
    camera = scenario.camera(size)
    layout = scenario.layout
    zones = {zone.name: zone for zone in layout.zones}
    stops = []
    for stop in sorted(scenario.stops, key=lambda s: (s.start_s, s.vehicle_id)):
        spec = scenario.track(stop.vehicle_id).spec
        end = scenario.duration_s if stop.end_s is None else stop.end_s
        stops.append(
            {
                "vehicle_id": stop.vehicle_id,
                "class": spec.cls,
                "body": spec.body,
                "plate": spec.plate_text,
                "plate_colour": spec.plate_colour,
                "zone": stop.zone,
                "kind": stop.kind,
                "start_s": round(stop.start_s, 3),
                "end_s": None if stop.end_s is None else round(stop.end_s, 3),
                "duration_s": round(end - stop.start_s, 3),
                "ongoing": stop.end_s is None,
                **judge(
                    stop, spec.cls, zones.get(stop.zone) if stop.zone else None, rules, scenario.duration_s
                ),
                "position_m": [round(stop.x_m, 3), round(stop.y_m, 3)],
                **stop_view(scenario, stop, camera),
            }
        )
    vehicles = []
    for track in scenario.tracks:
        spec = track.spec
        action = track.trip.action
        script = None
        if isinstance(action, Park):
            script = {
                "action": "park",
                "kind": action.kind,
                "y_m": round(action.y, 3),
                "stay_s": round(action.stay_s, 3),
            }
        elif isinstance(action, DoublePark):
            script = {"action": "double_park", "y_m": round(action.y, 3), "stay_s": round(action.stay_s, 3)}
        if script is not None and track.trip.after is not None:
            script["after_vehicle"] = track.trip.after
        vehicles.append(
            {
                "id": track.id,
                "class": spec.cls,
                "body": spec.body,
                "coco_label": spec.coco_label,
                "plate": spec.plate_text,
                "plate_colour": spec.plate_colour,
                "colour_bgr": list(spec.colour),
                "size_m": [round(spec.length_m, 3), round(spec.width_m, 3), round(spec.height_m, 3)],
                "lane": track.trip.lane,
                "enters_s": round(track.t0, 3),
                "leaves_s": round(track.t1, 3) if track.t1 < scenario.duration_s - 1e-6 else None,
                "script": script,
                "abandoned": track.abandoned,
            }
        )
    if occluded is None:
        occluded = occlusions(scenario)
    stop_line = camera.ground_to_pixels(
        np.array([[layout.lane_out.x0, layout.stop_line_out_y], [layout.lane_out.x1, layout.stop_line_out_y]])
    )
    light = scenario.light
    return {
        "format": TRUTH_FORMAT,
        "fps": fps,
        "speed": speed,
        "frame_interval_s": round(speed / fps, 6),
        "width": size[0],
        "height": size[1],
        "seed": scenario.seed,
        "scenario": scenario.preset,
        "duration_s": scenario.duration_s,
        "frames": frame_count(scenario, fps, speed),
        "time_of_day": scenario.time_of_day,
        "weather": scenario.weather,
        "rules": {"dwell_s": rules.dwell_s, "grace_s": rules.grace_s},
        "camera": calibration(scenario, size),
        "zones": zone_polygons(scenario, size),
        "traffic_light": {
            "green_s": light.green_s,
            "amber_s": light.amber_s,
            "red_s": light.red_s,
            "stop_line_px": [[round(float(u), 1), round(float(v), 1)] for u, v in stop_line],
            "phases": [
                {"state": state, "start_s": a, "end_s": b}
                for state, a, b in light.phases(scenario.duration_s)
            ],
        },
        "jams": [[round(a, 3), round(b, 3)] for a, b in scenario.jam],
        "stops": stops,
        "occlusions": [
            {
                "vehicle_id": o.vehicle_id,
                "start_s": o.start_s,
                "end_s": o.end_s,
                "duration_s": round(o.end_s - o.start_s, 3),
                "min_visible": o.min_visible,
                "by": list(o.by),
            }
            for o in occluded
        ],
        "occluded_below": OCCLUDED_BELOW,
        "vehicles": vehicles,
        "pedestrians": [
            {
                "id": p.id,
                "start_s": round(max(p.start_s, 0.0), 3),
                "end_s": round(min(p.end_s, scenario.duration_s), 3),
            }
            for p in scenario.pedestrians
        ],
    }


__all__ = [
    "TRUTH_FORMAT",
    "calibration",
    "frame_count",
    "judge",
    "stop_view",
    "truth_document",
    "zone_polygons",
]
