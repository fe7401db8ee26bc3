"""Frame-level image evaluation (Pascal VOC): matching, AP, file handling, and a run on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from citywatch.evaluation.images import (
    ImageScorer,
    LabelledBox,
    ScoredBox,
    average_precision,
    evaluate_images,
    find_voc_pairs,
    read_voc,
)
from simulators.elevator import render_still
from tests.edge.vision.onnx_builders import citywatch_model
from tests.support.paths import PROJECT_ROOT

SHIPPED_MODEL = PROJECT_ROOT / "models" / "ebike-detector.onnx"


def voc_xml(boxes: list[tuple[str, float, float, float, float]], difficult: bool = False) -> str:
    objects = "".join(
        f"<object><name>{name}</name><difficult>{int(difficult)}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, x1, y1, x2, y2 in boxes
    )
    return f"<annotation><size><width>400</width><height>300</height></size>{objects}</annotation>"


def test_average_precision_of_ranked_hits() -> None:
    assert average_precision([0.9, 0.8], [True, True], 2) == pytest.approx(1.0)
    assert average_precision([], [], 3) == 0.0
    assert average_precision([0.5], [False], 0) is None
    # Hit, miss, hit with 2 truths: precision envelope 1.0 up to recall 0.5, then 2/3 up to 1.0.
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_scorer_counts_hits_duplicates_wrong_class_and_difficult() -> None:
    scorer = ImageScorer(["ebike", "person"])
    truths = [
        LabelledBox("ebike", 0, 0, 100, 100),
        LabelledBox("person", 200, 0, 260, 150),
        LabelledBox("ebike", 300, 200, 340, 240, difficult=True),
    ]
    detections = [
        ScoredBox("ebike", 0.9, 5, 5, 100, 100),  # hit
        ScoredBox("ebike", 0.8, 0, 0, 95, 100),  # duplicate of the same e-bike: false positive
        ScoredBox("ebike", 0.7, 200, 0, 260, 150),  # a person called an e-bike: false positive
        ScoredBox("ebike", 0.6, 300, 200, 340, 240),  # the difficult one: ignored
        ScoredBox("person", 0.2, 200, 0, 260, 150),  # hit, but under the threshold
    ]
    scorer.add(detections, truths)
    summary = scorer.summary(score_threshold=0.35)
    assert summary["ebike"] | {"ap50": None} == {
        "truths": 1, "tp": 1, "fp": 2, "fn": 0, "precision": 0.3333, "recall": 1.0, "ap50": None,
    }  # fmt: skip
    assert summary["ebike"]["ap50"] == pytest.approx(1.0)
    assert (
        summary["person"]["tp"] == 0
        and summary["person"]["fn"] == 1
        and summary["person"]["precision"] is None
    )
    assert summary["person"]["ap50"] == pytest.approx(1.0)  # ranked list still finds it


def test_voc_reading_and_directory_layouts(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    (tmp_path / "flat" / "a.xml").write_text(voc_xml([("E-Bike", 1, 2, 30, 40)]))
    (tmp_path / "flat" / "b.jpg").write_bytes(b"")  # no annotation: skipped
    pairs = find_voc_pairs(tmp_path / "flat")
    assert [p[0].name for p in pairs] == ["a.png"]
    assert read_voc(pairs[0][1]) == [LabelledBox("ebike", 1, 2, 30, 40)]
    with pytest.raises(FileNotFoundError, match="no image with a Pascal VOC annotation"):
        find_voc_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        find_voc_pairs(tmp_path / "missing")


def test_malformed_annotations_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<annotation><object>")
    with pytest.raises(ValueError, match=r"broken\.xml: not a Pascal VOC XML file"):
        read_voc(broken)
    empty = tmp_path / "empty.xml"
    empty.write_text(voc_xml([("ebike", 50, 50, 10, 60)]))
    with pytest.raises(ValueError, match=r"empty\.xml: <bndbox> of 'ebike' is empty"):
        read_voc(empty)


@pytest.mark.slow
def test_evaluate_images_on_rendered_photos_with_voc_files(tmp_path: Path) -> None:
    if not SHIPPED_MODEL.is_file():
        pytest.skip("models/ebike-detector.onnx is not built yet (make models)")
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    written = {"ebike": 0, "person": 0}
    for seed in range(96_000_000, 96_000_006):
        image, boxes = render_still(seed, (400, 300))
        cv2.imwrite(str(tmp_path / "images" / f"{seed}.png"), image)
        kept = [(b.cls, b.x1, b.y1, b.x2, b.y2) for b in boxes if b.cls in written]
        for name, *_ in kept:
            written[name] += 1
        (tmp_path / "annotations" / f"{seed}.xml").write_text(voc_xml(kept))
    result = evaluate_images(tmp_path, SHIPPED_MODEL)
    assert result["images"] == 6
    assert result["classes"]["ebike"]["truths"] == written["ebike"]
    assert result["classes"]["person"]["truths"] == written["person"]
    for row in result["classes"].values():
        assert row["tp"] + row["fn"] == row["truths"]


def test_evaluate_images_refuses_a_model_without_the_classes(tmp_path: Path) -> None:
    model = citywatch_model(
        tmp_path / "other.onnx", np.array([[1, 1, 20, 20]], np.float32), np.array([[0.9, 0.1]], np.float32),
        size=64, labels=["cat", "dog"],
    )  # fmt: skip
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", render_still(1, (64, 48))[0])[1].tobytes())
    (tmp_path / "a.xml").write_text(voc_xml([("ebike", 1, 1, 20, 20)]))
    with pytest.raises(ValueError, match=r"has no class \['ebike', 'person'\]"):
        evaluate_images(tmp_path, model)


def test_real_elevator_photos_are_scored(shared_dir: Path) -> None:
    """The 28 real photos (evaluation only): every box is accounted for; figures go to the model card."""
    real = shared_dir / "data" / "ebike-real"
    if not SHIPPED_MODEL.is_file():
        pytest.skip("models/ebike-detector.onnx is not built yet (make models)")
    pairs = find_voc_pairs(real)
    truths = sum(1 for _, xml in pairs for box in read_voc(xml) if box.cls == "ebike")
    result = evaluate_images(real, SHIPPED_MODEL)
    assert result["images"] == len(pairs) == 28
    ebike = result["classes"]["ebike"]
    assert ebike["truths"] == truths > 0
    assert ebike["tp"] + ebike["fn"] == truths
    assert result["ebike_recall"] == round(ebike["tp"] / truths, 4)
