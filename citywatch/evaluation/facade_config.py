"""The facade analyzer's config for a video with ``citywatch-facade-truth/1`` ground truth, calibrated as an
installer would: from what the truth's ``calibration`` says can be seen and measured on site.

* Four facade points clicked on a still (``facade_points``: their pixels as the picture shows them, lens
  and all, and their metres), else the floor base lines in view (``floor_lines``: a segment per floor).
* The building: floors and floor height; window column edges in facade metres (four points) or in image
  x where the floor lines are used.
* Where the camera stands (``pose``: distance to the facade, lens height, x along the facade), measured
  with a tape, for the parallax correction; left out when the truth has no pose (real footage).

Nothing here reads the simulator's camera model (the homography or the lens): the analyzer sees only
what the installer gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.facade.config import FacadeConfig

# Lines closer than this to the frame's edge are clipped inside it (the config refuses outside pixels).
EDGE_MARGIN_PX = 1.0


def analyzer_config_from_truth(
    truth: dict[str, Any],
    *,
    video: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> FacadeConfig:
    """A ``FacadeConfig`` for the truth document's camera (``video``: a file source, else the simulator).

    ``overrides``: sections (``detection``, ``tracking``, ``rules``) merged over the defaults.
    ValueError when the calibration gives neither four facade points nor two floor lines in view.
    """
    calibration = truth["calibration"]
    width, height = int(truth["width"]), int(truth["height"])
    floors = int(calibration.get("floors") or truth.get("building", {}).get("floors"))
    floor_height = float(calibration.get("floor_height_m") or truth["building"]["floor_height_m"])
    source: dict[str, Any] = (
        {"kind": "file", "path": str(video)}
        if video is not None
        else {"kind": "facade_simulator", "seed": int(truth.get("seed", 1)), "realtime": False}
    )
    raw: dict[str, Any] = {
        "camera": {"source": source, "fps": float(truth["fps"]), "width": width, "height": height},
        "building": {"floors": floors, "floor_height_m": floor_height, "ground_floor_number": 1},
    }
    points = calibration.get("facade_points") or []
    if len(points) == 4:
        raw["calibration"] = {
            "method": "four_points",
            "points": [{"pixel": _inside(p["px"], width, height), "facade": p["m"]} for p in points],
        }
        edges = _column_edges_m(calibration.get("window_columns") or [])
        if edges:
            raw["columns"] = {"x_m": edges}
    else:
        first_floor, lines = _floor_lines(calibration.get("floor_lines") or [], width, height)
        raw["calibration"] = {"method": "floor_lines", "first_floor": first_floor, "lines": lines}
    pose = calibration.get("pose")
    if pose and {"distance_m", "height_m", "x_m"} <= pose.keys():
        raw["parallax"] = {
            "camera_distance_m": float(pose["distance_m"]),
            "camera_height_m": float(pose["height_m"]),
            "camera_x_m": float(pose["x_m"]) if raw["calibration"]["method"] == "four_points" else None,
        }
    for section, values in (overrides or {}).items():
        raw[section] = {**raw.get(section, {}), **values}
    return FacadeConfig.model_validate(raw)


def _inside(pixel: list[float], width: int, height: int) -> list[float]:
    """A clicked point on the picture's border rounds into the frame."""
    return [min(max(float(pixel[0]), 0.0), width), min(max(float(pixel[1]), 0.0), height)]


def _column_edges_m(columns: list[dict[str, Any]]) -> list[float]:
    ordered = sorted(columns, key=lambda c: c["column"])
    if not ordered or any("left_m" not in c or "right_m" not in c for c in ordered):
        return []
    return [float(ordered[0]["left_m"])] + [float(c["right_m"]) for c in ordered]


def _floor_lines(lines: list[dict[str, Any]], width: int, height: int) -> tuple[int, list[list[list[float]]]]:
    """The longest run of consecutive floors whose base line crosses the picture, as in-frame segments."""
    segments: dict[int, list[list[float]]] = {}
    for line in lines:
        left, right = line.get("left_px"), line.get("right_px")
        if left is None or right is None or left[0] == right[0]:
            continue
        segment = _clip(left, right, width, height)
        if segment is not None:
            segments[int(line["floor"])] = segment
    best: list[int] = []
    run: list[int] = []
    for floor in sorted(segments):
        run = [*run, floor] if run and floor == run[-1] + 1 else [floor]
        if len(run) > len(best):
            best = run
    if len(best) < 2:
        raise ValueError("the calibration has neither four facade_points nor two floor_lines in view")
    return best[0], [segments[f] for f in best]


def _clip(a: list[float], b: list[float], width: int, height: int) -> list[list[float]] | None:
    """The part of the line through a and b with x inside the frame, if its y is inside there too."""
    slope = (b[1] - a[1]) / (b[0] - a[0])
    x0, x1 = EDGE_MARGIN_PX, width - EDGE_MARGIN_PX
    y0, y1 = a[1] + slope * (x0 - a[0]), a[1] + slope * (x1 - a[0])
    if not (0 <= y0 <= height and 0 <= y1 <= height):
        return None
    return [[round(x0, 2), round(y0, 2)], [round(x1, 2), round(y1, 2)]]
