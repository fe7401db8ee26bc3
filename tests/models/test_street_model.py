"""The shipped street detector (models/street-detector.onnx): the file its card describes, and what it finds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edge.street.config import STREET_MODEL, StreetConfig
from edge.vision.detector import Detector, DetectorOptions
from models.street.card import render_card

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL = PROJECT_ROOT / STREET_MODEL
COCO_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"
METRICS = PROJECT_ROOT / "models" / "street-detector.metrics.json"
CARD = PROJECT_ROOT / "models" / "street-detector.md"
# A held-out parking scene (the evaluation's seeds, never trained on): the overstay story at 200 s.
SEED, PRESET, AT_S = 1_000_002, "overstay", 200.0


def test_committed_model_is_the_file_its_card_and_metrics_describe() -> None:
    metrics = json.loads(METRICS.read_text())
    assert metrics["model"]["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert metrics["model"]["bytes"] == MODEL.stat().st_size <= 10_000_000  # the 10 MB
    assert render_card(metrics) == CARD.read_text(), "re-render: python -m models.street.card render"


def test_the_runtime_reads_it_with_the_street_configs_label_map() -> None:
    defaults = StreetConfig.model_validate(
        {
            "camera": {"source": {"kind": "usb"}},
            "zones": [{"name": "kerb", "polygon": [[0, 0], [10, 0], [10, 10]]}],
        }
    ).detector
    assert defaults.model == STREET_MODEL
    detector = Detector.load(DetectorOptions(model_path=MODEL, label_map=dict(defaults.label_map)))
    assert detector.input_size == 512
    assert {"car", "truck", "bus", "motorbike", "ebike", "person"} <= set(detector.labels)


def _standing_vehicles_found(model: Path) -> tuple[int, int]:
    from simulators.street import StreetRenderer, make_scenario

    scenario = make_scenario(SEED, PRESET, time_of_day="day", weather="clear")
    renderer = StreetRenderer(scenario, (1920, 1080), 10.0)
    image, truth = renderer.render(int(AT_S * 10))
    detector = Detector.load(DetectorOptions(model_path=model, score_threshold=0.3))
    found = detector.detect(image)
    seen = [
        v
        for v in truth.vehicles
        if (v.visible or 0) >= 0.5 and (v.in_picture or 0) >= 0.9 and v.box[3] - v.box[1] >= 24
    ]
    hits = 0
    for vehicle in seen:
        x1, y1, x2, y2 = vehicle.box
        for d in found:
            inter = max(0.0, min(x2, d.x2) - max(x1, d.x1)) * max(0.0, min(y2, d.y2) - max(y1, d.y1))
            union = (x2 - x1) * (y2 - y1) + (d.x2 - d.x1) * (d.y2 - d.y1) - inter
            if union > 0 and inter / union >= 0.5:
                hits += 1
                break
    return hits, len(seen)


def test_it_finds_the_vehicles_of_a_held_out_street_scene() -> None:
    hits, seen = _standing_vehicles_found(MODEL)
    assert seen >= 3, "the scene should show a few vehicles"
    assert hits >= 0.8 * seen, f"found {hits} of {seen} vehicles"


@pytest.mark.slow
def test_the_coco_original_finds_fewer_there() -> None:
    """The reason the file exists: measured on the same frame, not assumed."""
    hits, seen = _standing_vehicles_found(MODEL)
    coco_hits, _ = _standing_vehicles_found(COCO_MODEL)
    assert coco_hits < hits, f"COCO found {coco_hits}, the street detector {hits} of {seen}"
