"""The shipped e-bike detector and the training pipeline that makes it (render -> train -> export -> card)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.vision.detector import Detector, DetectorOptions
from simulators.elevator import LABELLED_CLASSES, render_still
from tests.support.paths import PROJECT_ROOT

SHIPPED_MODEL = PROJECT_ROOT / "models" / "ebike-detector.onnx"
SHIPPED_CARD = PROJECT_ROOT / "models" / "ebike-detector.md"
SHIPPED_METRICS = PROJECT_ROOT / "models" / "ebike-detector.metrics.json"


def _metadata(path: Path) -> dict[str, str]:
    return {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}


def _check_citywatch_layout(path: Path) -> None:
    metadata = _metadata(path)
    assert metadata["layout"] == "citywatch"
    labels = json.loads(metadata["labels"])
    assert set(LABELLED_CLASSES) <= set(labels)
    size = int(metadata["input_size"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.name == "images" and model_input.shape == [1, 3, size, size]
    boxes, scores = session.run(["boxes", "scores"], {"images": np.zeros((1, 3, size, size), np.float32)})
    assert boxes.shape[0] == 1 and boxes.shape[2] == 4
    assert scores.shape == (1, boxes.shape[1], len(labels))
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0


@pytest.fixture(scope="module")
def shipped_model() -> Path:
    if not SHIPPED_MODEL.is_file():
        pytest.skip("models/ebike-detector.onnx is not built yet (make models)")
    return SHIPPED_MODEL


def test_shipped_model_has_the_citywatch_layout_and_fits_the_size_budget(shipped_model: Path) -> None:
    assert shipped_model.stat().st_size <= 5 * 1024 * 1024
    _check_citywatch_layout(shipped_model)


@pytest.mark.slow
def test_shipped_model_finds_an_ebike_in_a_rendered_scene(shipped_model: Path) -> None:
    """Held-out seeds (never trained on): the detector finds most labelled e-bikes at the runtime threshold."""
    detector = Detector.load(DetectorOptions(model_path=shipped_model, threads=1))
    found = total = 0
    for seed in range(95_500_000, 95_500_040):
        image, boxes = render_still(seed, (480, 320))
        ebikes = [b for b in boxes if b.cls == "ebike" and b.visible > 0.6]
        if not ebikes:
            continue
        detections = [d for d in detector.detect(image) if d.label == "ebike"]
        for truth in ebikes:
            total += 1
            found += any(
                min(d.x2, truth.x2) > max(d.x1, truth.x1) and min(d.y2, truth.y2) > max(d.y1, truth.y1)
                for d in detections
            )
    assert total >= 5
    assert found / total >= 0.5, f"found {found} of {total} clearly visible e-bikes"


def test_card_reports_the_measured_figures_of_the_shipped_model(shipped_model: Path) -> None:
    card = SHIPPED_CARD.read_text()
    size_mb = f"{shipped_model.stat().st_size / 1e6:.2f} MB"
    assert size_mb in card, "the card must state the size of the committed file"
    assert "not** fit for service" in card and "Real elevator photos" in card
    # The empty-car check: false positives per empty frame, measured on the real photos.
    assert re.search(r"\*\*[0-9.]+ e-bikes per empty frame\*\*", card)
    assert re.search(r"median \*\*[0-9.]+ ms\*\*", card)


def test_card_is_rendered_from_the_measured_metrics_of_this_file(shipped_model: Path) -> None:
    """No hand-typed figures: the committed card is exactly what the metrics of this very file render to."""
    import hashlib

    from models.ebike.card import render_card

    metrics = json.loads(SHIPPED_METRICS.read_text())
    assert metrics["sha256"] == hashlib.sha256(shipped_model.read_bytes()).hexdigest()
    assert metrics["size_bytes"] == shipped_model.stat().st_size
    assert render_card(metrics) == SHIPPED_CARD.read_text()
    rides = metrics["rides"]  # the event-level figures of the held-out rides are in the card
    assert rides["rides"] == 200 and rides["seeds"] == "95000000..95000199"
    assert rides["settings"]["model"].endswith("ebike-detector.onnx")


def test_card_lists_every_run_a_fine_tuned_model_descends_from() -> None:
    from models.ebike.card import _lineage

    def run(sha: str, seeds: str, parent: dict[str, object] | None = None) -> dict[str, object]:
        training = {"steps": 10, "batch": 32, "epochs_completed": 1.0, "lr": 0.001, "train_minutes": 1.0}
        entry = {
            "sha256": sha * 16,
            "data": {"train_images": 8, "train_scene_seeds": seeds},
            "training": training,
            "run": {"argv": ["--seed", seeds[0]]},
        }
        return entry | ({"init_from": parent} if parent else {})

    # The newer run kept its input size; the older entry predates the field (runs at the default 224).
    lines = _lineage(run("b", "2..3", run("a", "1..2")) | {"input_size": 320})
    assert len(lines) == 2
    assert "bbbb" in lines[0] and "2..3" in lines[0] and "Fine-tuned" in lines[0] and "input 320" in lines[0]
    assert (
        "aaaa" in lines[1]
        and "1..2" in lines[1]
        and "itself fine-tuned" in lines[1]
        and "input 224" in lines[1]
    )
    assert lines[1].endswith("random weights.") and not lines[0].endswith("random weights.")
    assert _lineage(None) == []


def test_an_exported_model_loads_back_for_fine_tuning(shipped_model: Path) -> None:
    """The ONNX file (batch norms folded) rebuilt as the torch network computes the same outputs."""
    torch = pytest.importorskip(
        "torch", reason="torch is the optional 'train' extra (make models installs it)"
    )
    from models.ebike.net import ExportWrapper, TinyDetector, load_onnx_weights

    model = TinyDetector(len(json.loads(_metadata(shipped_model)["labels"])))
    load_onnx_weights(model, str(shipped_model))
    size = int(_metadata(shipped_model)["input_size"])
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        boxes, scores = ExportWrapper(model.eval(), size).eval()(images)
    session = ort.InferenceSession(str(shipped_model), providers=["CPUExecutionProvider"])
    onnx_boxes, onnx_scores = session.run(["boxes", "scores"], {"images": images.numpy()})
    assert np.abs(boxes.numpy() - onnx_boxes).max() < 1e-2  # pixels
    assert np.abs(scores.numpy() - onnx_scores).max() < 1e-4


def test_runtime_code_never_imports_torch() -> None:
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "citywatch").rglob("*.py")
        if re.search(r"^\s*(import torch|from torch)", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []


@pytest.mark.slow
def test_smoke_training_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch is the optional 'train' extra (make models installs it)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "models.ebike.train",
            "--smoke",
            "--out",
            str(tmp_path),
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "epoch 1/1" in result.stdout and "exported" in result.stdout
    model = tmp_path / "ebike-detector.onnx"
    _check_citywatch_layout(model)
    card = (tmp_path / "ebike-detector.md").read_text()
    assert "--smoke" in card and "Held-out synthetic stills" in card
    # bfloat16 only where the CPU has it natively (emulated it is ~10x slower than float32).
    precision = json.loads((tmp_path / "ebike-detector.metrics.json").read_text())["training"]["precision"]
    assert f"precision {precision}" in result.stdout
    assert ("float32 on the CPU" if precision == "fp32" else "bfloat16 autocast on the CPU") in card
    # The rendered dataset is cached, not re-rendered, on the next run.
    assert (tmp_path / "cache" / "train-smoke-32" / "labels.json").is_file()
    # Fine-tuning starts from an exported model (its batch norms folded, so kept fixed) and from a
    # checkpoint, which carries that choice on: training folded norms on batch statistics would undo them.
    import torch

    assert (
        torch.load(tmp_path / "ebike-detector.pt", weights_only=True)["frozen_batch_norm_statistics"] is False
    )

    def fine_tune(init: Path, out: Path) -> str:
        again = subprocess.run(
            [sys.executable, "-m", "models.ebike.train", "--smoke", "--out", str(out), "--cache",
             str(tmp_path / "cache"), "--init", str(init)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert "reusing 32 rendered images" in again.stdout and f"starting from {init}" in again.stdout
        return again.stdout

    assert "batch-norm statistics frozen" in fine_tune(
        tmp_path / "ebike-detector.onnx", tmp_path / "from-onnx"
    )
    tuned = tmp_path / "tuned"
    assert "frozen, as in the run that saved it" in fine_tune(
        tmp_path / "from-onnx" / "ebike-detector.pt", tuned
    )
    _check_citywatch_layout(tuned / "ebike-detector.onnx")
