"""The street fine-tuning's targets and losses (models/street/train.py) on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the optional 'train' extra (make models installs it)")

from models.street.data import LABELS  # noqa: E402
from models.street.train import STRIDE, focal_loss, giou_loss, person_loss, targets_for  # noqa: E402

CAR, BUS = LABELS.index("car"), LABELS.index("bus")


def _targets(
    boxes: list[tuple[float, float, float, float]], classes: list[int], learn: list[bool], size: int = 64
):
    return targets_for(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes), np.asarray(learn), size
    )


def test_a_learnt_box_peaks_at_its_centre_cell_and_teaches_its_box_around_it() -> None:
    heat, ignore, box_map, box_weight = _targets([(8, 16, 40, 40)], [CAR], [True])
    cy, cx = int(28 / STRIDE), int(24 / STRIDE)
    assert heat[CAR, cy, cx] == 1.0 and (heat[CAR] == 1.0).sum() == 1
    assert heat[BUS].max() == 0 and ignore.max() == 0
    assert box_weight[cy, cx] == pytest.approx(1.0)
    np.testing.assert_array_equal(box_map[:, cy, cx], [8, 16, 40, 40])
    assert box_weight[0, 0] == 0  # far from the car: no box to learn


def test_a_faint_box_is_ignored_not_taught_as_background() -> None:
    heat, ignore, _, box_weight = _targets([(8, 8, 24, 24)], [CAR], [False])
    assert heat.max() == 0 and box_weight.max() == 0
    assert ignore[2:6, 2:6].min() == 1.0 and ignore[10, 10] == 0


def test_the_smaller_box_keeps_a_shared_cell() -> None:
    _, _, box_map, _ = _targets([(0, 0, 64, 64), (24, 24, 40, 40)], [BUS, CAR], [True, True])
    np.testing.assert_array_equal(box_map[:, 8, 8], [24, 24, 40, 40])


def test_focal_loss_rewards_the_right_heatmap() -> None:
    heat, ignore, _, _ = _targets([(8, 16, 40, 40)], [CAR], [True])
    heat_t, ignore_t = torch.from_numpy(heat)[None], torch.from_numpy(ignore)[None]
    right = torch.logit(torch.from_numpy(heat).clamp(1e-3, 1 - 1e-3))[None]
    blank = torch.full_like(right, -4.0)
    assert focal_loss(right, heat_t, ignore_t) < 0.2 * focal_loss(blank, heat_t, ignore_t)
    # A confident detection inside an ignored box costs nothing.
    faint_heat, faint_ignore, _, _ = _targets([(8, 16, 40, 40)], [CAR], [False])
    loud = torch.full_like(right, -9.0)
    loud[0, CAR, 7, 6] = 5.0
    cost = focal_loss(loud, torch.from_numpy(faint_heat)[None], torch.from_numpy(faint_ignore)[None])
    assert float(cost) < 1e-3


def test_giou_loss_is_zero_for_the_exact_box_only() -> None:
    _, _, box_map, box_weight = _targets([(8, 16, 40, 40)], [CAR], [True])
    grid = box_map.shape[-1]
    points = np.arange(grid, dtype=np.float32) * STRIDE
    px, py = np.meshgrid(points, points)
    exact = np.stack([px - box_map[0], py - box_map[1], box_map[2] - px, box_map[3] - py])[None]
    maps, weights = torch.from_numpy(box_map)[None], torch.from_numpy(box_weight)[None]
    assert float(giou_loss(torch.from_numpy(exact), maps, weights)) == pytest.approx(0.0, abs=1e-5)
    assert float(giou_loss(torch.from_numpy(exact * 0.5), maps, weights)) > 0.3


def test_person_loss_is_zero_when_the_student_says_what_the_teacher_said() -> None:
    teacher = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(0.01, 0.99)
    assert float(person_loss(torch.logit(teacher), teacher)) == pytest.approx(0.0, abs=1e-4)
    assert float(person_loss(torch.zeros(2, 16, 16), teacher)) > 0.01
