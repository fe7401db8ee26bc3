"""The pole's PTZ camera in the street simulator: aimed at a box it centres it and zooms as asked, and a
close-up of a parked car shows the plate that the fixed view shows a few pixels high large enough to read."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge.street.closeup import CloseUpSource, source_can_zoom, vehicle_cut
from edge.street.plates import make_plate_reader
from simulators.street import StreetRenderer, make_scenario, truth_document
from simulators.street.frame_source import StreetSimulatorSource

SIZE = (1920, 1080)


def test_an_aimed_camera_centres_the_box_and_zooms_to_the_fill_asked() -> None:
    camera = make_scenario(1, "overstay").camera(SIZE)
    point = np.array([[3.1, 42.0, 0.8]])  # a vehicle's middle, well away from the picture's centre
    (uv,), _ = camera.project(point)
    box = (uv[0] - 60, uv[1] - 30, uv[0] + 60, uv[1] + 30)
    aimed = camera.aimed_at(box, fill=0.5, max_zoom=30)
    (centre,), _ = aimed.project(point)
    assert centre == pytest.approx([SIZE[0] / 2, SIZE[1] / 2], abs=1.0)
    assert aimed.pose.roll_deg == 0.0 and aimed.pose.x_m == camera.pose.x_m  # same pole, no roll
    # The box's 120 px become half the width (small angles: the focal lengths' ratio).
    assert 120 * aimed.focal / camera.focal == pytest.approx(0.5 * SIZE[0], rel=0.02)
    # The lens stops at its longest zoom.
    tiny = camera.aimed_at((uv[0] - 1, uv[1] - 1, uv[0] + 1, uv[1] + 1), fill=0.85, max_zoom=30)
    assert tiny.focal / camera.focal == pytest.approx(30.0, rel=1e-6)


def test_the_simulator_source_can_zoom_and_the_file_source_cannot() -> None:
    from edge.street.agent import STREET_CAMERAS

    assert source_can_zoom(StreetSimulatorSource.from_config)
    assert source_can_zoom(STREET_CAMERAS.get("street_simulator"))
    assert not source_can_zoom(STREET_CAMERAS.get("file"))
    assert not source_can_zoom(STREET_CAMERAS.get("stream"))


@pytest.mark.slow
def test_a_closeup_shows_a_plate_the_fixed_view_cannot_read() -> None:
    source = StreetSimulatorSource.from_config(
        {"kind": "street_simulator", "seed": 1, "scenario": "overstay", "realtime": False},
        SimpleNamespace(fps=2.0, width=SIZE[0], height=SIZE[1]),
    )
    assert isinstance(source, CloseUpSource)
    stop = next(s for s in truth_document(source.scenario, SIZE, 2.0)["stops"] if s["kind"] == "parked")
    quad = np.asarray(stop["plate_px"])
    fixed_height = float(quad[:, 1].max() - quad[:, 1].min())
    assert fixed_height < 16, "the scenario should show the plate small in the fixed view"
    t = (stop["start_s"] + stop["end_s"]) / 2
    shot = source.closeup(tuple(stop["box_px"]), t, fill=0.85, max_zoom=30, frames=3)
    frames = list(shot.frames)
    assert len(frames) == 3 and all(f.shape[:2] == (SIZE[1], SIZE[0]) for f in frames)
    assert not np.array_equal(frames[0], frames[1]), "each frame has its own sensor noise"
    assert shot.zoom > 3
    # The vehicle's expected box is centred and spans the fill asked in one direction.
    x1, y1, x2, y2 = shot.box
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((SIZE[0] / 2, SIZE[1] / 2), abs=1)
    assert max((x2 - x1) / SIZE[0], (y2 - y1) / SIZE[1]) == pytest.approx(0.85, rel=0.05)
    reader = make_plate_reader("citywatch")
    x1, y1, x2, y2 = (int(v) for v in stop["box_px"])
    frame, _ = StreetRenderer(source.scenario, SIZE, 2.0).render(round(t * 2.0))
    assert reader.read(frame[y1:y2, x1:x2]) is None, "the fixed view should be too coarse"
    texts = [getattr(reader.read(vehicle_cut(frame, shot.box)), "text", None) for frame in frames]
    assert texts.count(stop["plate"]) >= 2, texts
