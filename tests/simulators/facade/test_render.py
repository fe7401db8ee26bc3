"""Rendered frames show the thrown object where the ground truth says, and distractors as planned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulators.facade import make_scenario, truth_document
from simulators.facade.render import FacadeRenderer

SIZE = (480, 270)
FPS = 25.0


def _pair(scenario_kwargs: dict[str, object], seed: int) -> tuple[FacadeRenderer, FacadeRenderer]:
    """Renderers of a scenario and of the same scenario without its throws."""
    scenario = make_scenario(seed, **scenario_kwargs)  # type: ignore[arg-type]
    empty = dataclasses.replace(scenario, throws=[])
    return FacadeRenderer(scenario, SIZE, FPS), FacadeRenderer(empty, SIZE, FPS)


@pytest.mark.parametrize(
    ("seed", "kind", "time_of_day"), [(31, "flower_pot", "day"), (32, "rubbish_bag", "night")]
)
def test_a_thrown_object_shows_at_its_ground_truth_position(seed: int, kind: str, time_of_day: str) -> None:
    with_throw, without = _pair(
        {
            "duration_s": 12,
            "throws": 1,
            "object_kinds": (kind,),
            "time_of_day": time_of_day,
            "distractor_rate": 0,
        },
        seed,
    )
    throw = with_throw.scenario.throws[0]
    first, last = int(np.ceil(throw.start_s * FPS)), int(np.floor(throw.end_s * FPS))
    track = {
        round(t, 4): (u, v)
        for t, u, v in truth_document(with_throw.scenario, SIZE, FPS)["throws"][0]["track"]
    }
    assert len(track) >= 5
    checked = 0
    for index in range(0, last + 3):
        image, truth = with_throw.render(index)
        plain, _ = without.render(index)
        diff = np.abs(image.astype(np.int16) - plain.astype(np.int16)).max(axis=2)
        if index < first - 1 or index > last + 1:
            assert diff.max() == 0, f"frame {index}: something drawn outside the fall"
            continue
        if not truth.throws:
            continue
        ((ident, u, v),) = truth.throws
        assert ident == throw.id and track[truth.t] == pytest.approx((u, v), abs=0.01)
        x, y = round(u), round(v)
        near = diff[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
        assert near.max() > 25, f"frame {index}: no blob near the truth position ({u:.1f}, {v:.1f})"
        # Everything that changed is close to the object's path in this frame.
        ys, xs = np.nonzero(diff)
        assert np.hypot(xs - u, ys - v).max() < 40
        checked += 1
    assert checked >= 5


def test_a_cigarette_pack_high_up_still_leaves_a_trace() -> None:
    with_throw, without = _pair(
        {
            "duration_s": 12,
            "throws": 1,
            "object_kinds": ("cigarette_pack",),
            "time_of_day": "day",
            "distractor_rate": 0,
        },
        33,
    )
    throw = with_throw.scenario.throws[0]
    index = int(np.ceil(throw.start_s * FPS)) + 5
    image, truth = with_throw.render(index)
    plain, _ = without.render(index)
    ((_, u, v),) = truth.throws
    diff = np.abs(image.astype(np.int16) - plain.astype(np.int16)).sum(axis=2)
    x, y = round(u), round(v)
    assert diff[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].sum() > 30


def test_camera_shake_moves_the_whole_picture() -> None:
    scenario = make_scenario(
        34, duration_s=30, throws=0, weather="wind", distractor_rate=4, time_of_day="day"
    )
    assert scenario.shakes
    shake = scenario.shakes[0]
    renderer = FacadeRenderer(dataclasses.replace(scenario, movers=[], insects=[]), SIZE, FPS)
    still = FacadeRenderer(dataclasses.replace(scenario, movers=[], insects=[], shakes=[]), SIZE, FPS)
    moved = 0
    for index in range(int(shake.start_s * FPS), int(shake.end_s * FPS)):
        image, truth = renderer.render(index)
        reference, _ = still.render(index)
        if truth.shake_px != (0.0, 0.0):
            dx, dy = int(truth.shake_px[0]), int(truth.shake_px[1])
            # Shifting the still picture back by the truth's offset lines the two up.
            core = image[10 + dy : -10 + dy, 10 + dx : -10 + dx].astype(np.int16)
            assert np.abs(core - reference[10:-10, 10:-10]).mean() < 4
            moved += 1
    assert moved > 0


def test_window_lights_switch_at_night_only_in_their_window() -> None:
    scenario = make_scenario(35, duration_s=60, throws=0, time_of_day="night", distractor_rate=2)
    switch = scenario.light_switches[0]
    quiet = dataclasses.replace(scenario, movers=[], insects=[], shakes=[])
    renderer = FacadeRenderer(quiet, SIZE, FPS)
    before_index = int(switch.t * FPS)
    before, _ = renderer.render(before_index)
    background_before = renderer.background.copy()
    after, _ = renderer.render(before_index + 1)
    changed = np.abs(renderer.background.astype(np.int16) - background_before).max(axis=2) > 0
    assert changed.any()
    ys, xs = np.nonzero(changed)
    camera = scenario.camera(SIZE)
    x0, y0, x1, y1 = scenario.building.window_rect(switch.floor, switch.column)
    corners = camera.facade_to_pixels(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    assert xs.min() >= corners[:, 0].min() - 3 and xs.max() <= corners[:, 0].max() + 3
    assert ys.min() >= corners[:, 1].min() - 3 and ys.max() <= corners[:, 1].max() + 3
    brighter = after[changed].astype(int).sum() > before[changed].astype(int).sum()
    assert brighter == switch.on
