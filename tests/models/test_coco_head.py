"""The e-bike type head on the COCO detector's features (models.ebike.coco_head), on the committed COCO file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.vision.detector import Detector, DetectorOptions, letterbox
from models.ebike.coco_head import LABELS, TYPES, build, collect, confusion, train_softmax, with_features
from simulators.elevator.scenes import render_stills
from tests.support.paths import PROJECT_ROOT

COCO_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"


@pytest.fixture(scope="module")
def coco() -> onnx.ModelProto:
    if not COCO_MODEL.is_file():
        pytest.skip("models/coco-centernet.onnx is not built (make models-coco)")
    return onnx.load(COCO_MODEL)


def _peaks(heat: np.ndarray) -> np.ndarray:
    """CenterNet's peak picking on one [H, W] map, flattened row-major like the model's outputs."""
    return np.where(heat == cv2.dilate(heat, np.ones((3, 3), np.uint8)), heat, 0.0).reshape(-1)


def test_head_scores_are_the_two_wheeler_heatmap_shared_by_type(
    coco: onnx.ModelProto, tmp_path: Path
) -> None:
    features = 128 * 2 + with_features_channels(coco)
    weights = np.zeros((len(TYPES), features), np.float32)
    bias = np.array([6.0, 0.0, 0.0, 0.0, 0.0], np.float32)  # every point: an e-bike, surely
    model = build(coco, weights, bias)
    assert json.loads({p.key: p.value for p in model.metadata_props}["labels"]) == list(LABELS)
    image = render_stills(95_700_000, 1)[0][0]
    canvas, _ = letterbox(image, 320)
    blob = cv2.dnn.blobFromImage(canvas, scalefactor=1.0 / 255.0, swapRB=True)
    ours = ort.InferenceSession(model.SerializeToString()).run(["scores"], {"images": blob})[0][0]
    heat = ort.InferenceSession(with_features(coco).SerializeToString()).run(["keypoints"], {"images": blob})[
        0
    ][0]
    labels = json.loads({p.key: p.value for p in coco.metadata_props}["labels"])
    two_wheeler = np.maximum(heat[labels.index("bicycle")], heat[labels.index("motorcycle")])
    np.testing.assert_allclose(ours[:, 0], _peaks(heat[labels.index("person")]), atol=1e-6)
    np.testing.assert_allclose(ours[:, 1], _peaks(two_wheeler), atol=1e-6)  # the winner keeps COCO's score
    runner_up = np.exp(-6.0)  # the other types, relative to the winner
    assert np.abs(ours[:, 2:] - _peaks(two_wheeler * np.float32(runner_up))[:, None]).max() < 1e-6
    path = tmp_path / "head.onnx"
    onnx.save(model, path)
    detector = Detector.load(DetectorOptions(model_path=path))
    assert detector.layout == "citywatch" and detector.labels == LABELS


def with_features_channels(coco: onnx.ModelProto) -> int:
    session = ort.InferenceSession(with_features(coco).SerializeToString())
    out = session.run(["head/features"], {"images": np.zeros((1, 3, 320, 320), np.float32)})[0]
    assert out.shape[2:] == (80, 80)
    return int(out.shape[1]) - 256


def test_rendered_vehicles_give_one_vector_each(coco: onnx.ModelProto) -> None:
    x, y = collect(coco, 95_700_000, 8, 320)
    vehicles = sum(1 for _, boxes in render_stills(95_700_000, 8) for b in boxes if b.cls in TYPES)
    assert len(x) == len(y) >= vehicles > 0  # plus any "none" peaks away from vehicles
    assert np.bincount(y, minlength=len(TYPES))[: len(TYPES) - 1].sum() == vehicles
    assert x.shape[1] == 256 + with_features_channels(coco)


def test_softmax_fits_separable_types_on_raw_features() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(TYPES), 600)
    centres = rng.normal(scale=4.0, size=(len(TYPES), 6))
    x = (centres[y] + rng.normal(size=(600, 6))) * 50 + 300  # far from standardised: folding must undo it
    weights, bias = train_softmax(x.astype(np.float32), y, l2=1e-4)
    result = confusion(x.astype(np.float32), y, weights, bias)
    assert result["accuracy"] > 0.95
    assert sum(sum(row) for row in result["rows_truth_columns_predicted"].values()) == 600
