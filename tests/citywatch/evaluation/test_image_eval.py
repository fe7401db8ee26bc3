"""Frame-level image evaluation (Pascal VOC): matching, AP, file handling, and a run on real photos."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from citywatch.cli import main
from citywatch.evaluation.empty import EmptyFrameTally, EmptyRegionRule, empty_regions
from citywatch.evaluation.images import (
    ImageScorer,
    LabelledBox,
    ScoredBox,
    average_precision,
    box_iou,
    evaluate_images,
    find_voc_pairs,
    parse_label_map,
    read_voc,
)
from edge.vision.detector import DetectorOptions
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


def test_evaluate_images_refuses_a_model_without_an_ebike_class(tmp_path: Path) -> None:
    model = citywatch_model(
        tmp_path / "other.onnx", np.array([[1, 1, 20, 20]], np.float32), np.array([[0.9, 0.1]], np.float32),
        size=64, labels=["cat", "dog"],
    )  # fmt: skip
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", render_still(1, (64, 48))[0])[1].tobytes())
    (tmp_path / "a.xml").write_text(voc_xml([("ebike", 1, 1, 20, 20)]))
    with pytest.raises(ValueError, match=r"has no 'ebike' class \(its labels: cat, dog\).*--label-map"):
        evaluate_images(tmp_path, model)


def coco_like_photos(tmp_path: Path) -> tuple[Path, Path]:
    """A COCO-labelled fixed-output model (input 64) and one 128 x 128 photo with two e-bikes.

    The model reports, in its 64-pixel input: a motorcycle 0.9 on the first e-bike, a bicycle 0.2
    on the second (ranked for AP, under the runtime threshold 0.3) and a person 0.8 where nobody is.
    """
    model = citywatch_model(
        tmp_path / "coco-like.onnx",
        np.array([[4, 4, 28, 28], [36, 36, 60, 60], [36, 4, 60, 28]], np.float32),
        np.array([[0.0, 0.9, 0.0], [0.0, 0.0, 0.2], [0.8, 0.0, 0.0]], np.float32),
        size=64,
        labels=["person", "motorcycle", "bicycle"],
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "car.png"), np.full((128, 128, 3), 90, np.uint8))
    (photos / "car.xml").write_text(voc_xml([("ebike", 8, 8, 56, 56), ("e-bike", 72, 72, 120, 120)]))
    return model, photos


def test_a_coco_model_is_scored_through_its_label_map_with_empty_frames(tmp_path: Path) -> None:
    model, photos = coco_like_photos(tmp_path)
    options = DetectorOptions(model_path=model, label_map=parse_label_map("motorcycle=ebike, bicycle=ebike"))
    result = evaluate_images(photos, options)
    ebike = result["classes"]["ebike"]
    assert (ebike["truths"], ebike["tp"], ebike["fp"], ebike["fn"]) == (2, 1, 0, 1)
    assert ebike["ap50"] == pytest.approx(1.0)  # the 0.2 bicycle ranks as a hit below the threshold
    assert result["classes"]["person"] | {"ap50": None} == {
        "truths": 0, "tp": 0, "fp": 1, "fn": 0, "precision": 0.0, "recall": None, "ap50": None,
    }  # fmt: skip
    assert result["input_size"] == 64 and result["label_map"] == {"motorcycle": "ebike", "bicycle": "ebike"}
    # Every empty crop still gets the fixed motorcycle: one e-bike false positive per empty frame.
    crops = empty_regions([(8, 8, 56, 56), (72, 72, 120, 120)], 128, 128)
    assert crops == [(0, 60, 68, 128)]  # the top-right corner, as large, would overlap it
    empty = result["empty_frames"]
    assert empty["frames"] == 1 and empty["frames_with_ebike_or_bicycle"] == 1
    assert empty["fp_per_frame"] == {"ebike": 1.0, "bicycle": 0.0}
    assert result["ebike_fp_per_empty_frame"] == 1.0
    # A per-class runtime threshold above the motorcycle's score leaves no e-bike at all.
    strict = evaluate_images(photos, replace(options, class_thresholds={"ebike": 0.95}))
    assert strict["classes"]["ebike"]["tp"] == 0 and strict["classes"]["ebike"]["ap50"] == pytest.approx(1.0)
    assert strict["ebike_fp_per_empty_frame"] == 0.0
    # The sweep gives the same figures at the default threshold, and more e-bikes lower down.
    assert result["ebike_by_threshold"]["0.3"] == {"precision": 1.0, "recall": 0.5, "fp_per_empty_frame": 1.0}
    assert result["ebike_by_threshold"]["0.15"]["recall"] == 1.0


def test_eval_cli_takes_a_label_map_and_refuses_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, photos = coco_like_photos(tmp_path)
    command = ["eval", "ebike", "--images", str(photos), "--model", str(model)]
    assert main(command) == 2
    assert "has no 'ebike' class" in capsys.readouterr().err
    assert main([*command, "--label-map", "motorcycle:ebike"]) == 2
    assert "must look like model_label=our_label" in capsys.readouterr().err
    assert main([*command, "--label-map", "scooter=ebike"]) == 2
    assert "label_map names ['scooter'], which the model does not have" in capsys.readouterr().err
    assert main([*command, "--label-map", "motorcycle=ebike", "--score-threshold", "1.5"]) == 2
    assert "score_threshold" in capsys.readouterr().err
    assert main([*command, "--label-map", "motorcycle=ebike", "--score-threshold", "0.1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["classes"]["ebike"]["tp"] == 1 and result["score_threshold"] == 0.1
    assert result["label_map"] == {"motorcycle": "ebike"}
    assert result["empty_frames"]["frames"] == 1


def test_label_maps_are_parsed_or_refused() -> None:
    assert parse_label_map(" motorcycle=ebike,bicycle = ebike ,") == {
        "motorcycle": "ebike",
        "bicycle": "ebike",
    }
    for bad, message in [
        ("", "label map is empty"),
        ("motorcycle", "must look like"),
        ("=ebike", "must look like"),
        ("motorcycle=ebike,motorcycle=bicycle", "names 'motorcycle' twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_label_map(bad)


def test_empty_regions_keep_clear_of_every_object() -> None:
    # One object on the left: the only empty region is the right side, beyond a 3% margin (12 px).
    assert empty_regions([(0, 0, 200, 300)], 400, 300) == [(212, 0, 400, 300)]
    # Nothing annotated in a wide strip: crops are trimmed to 3:1, centre first, then the left.
    assert empty_regions([], 900, 100) == [(300, 0, 600, 100), (0, 0, 300, 100)]
    # No room anywhere: no crop rather than a sliver.
    assert empty_regions([(10, 10, 390, 290)], 400, 300) == []
    rng = np.random.default_rng(7)
    rule = EmptyRegionRule()
    for _ in range(50):
        width, height = (int(v) for v in rng.integers(200, 1000, 2))
        boxes = []
        for _ in range(int(rng.integers(1, 5))):
            x1, y1 = rng.uniform(0, width - 20), rng.uniform(0, height - 20)
            boxes.append((x1, y1, rng.uniform(x1 + 10, width), rng.uniform(y1 + 10, height)))
        regions = empty_regions(boxes, width, height, rule)
        margin = rule.margin_fraction * max(width, height)
        min_side = max(rule.min_side_px, rule.min_side_fraction * min(width, height))
        assert len(regions) <= rule.max_regions
        for index, (x1, y1, x2, y2) in enumerate(regions):
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert (
                min(x2 - x1, y2 - y1) >= min_side * 0.99
                and max(x2 - x1, y2 - y1) <= 3 * min(x2 - x1, y2 - y1) + 1
            )
            for bx1, by1, bx2, by2 in boxes:
                assert (
                    x2 <= bx1 - margin + 1
                    or x1 >= bx2 + margin - 1
                    or y2 <= by1 - margin + 1
                    or y1 >= by2 + margin - 1
                )
            for other in regions[index + 1 :]:
                assert box_iou((x1, y1, x2, y2), other) == 0.0


def test_empty_frame_tally_counts_alarm_labels_per_frame_at_any_threshold() -> None:
    tally = EmptyFrameTally()
    frames = (
        [("person", 0.9), ("ebike", 0.35)],
        [("ebike", 0.1)],
        [("bicycle", 0.5), ("ebike", 0.6), ("ebike", 0.31)],
        [("tv", 0.4)],
    )
    for frame in frames:
        tally.add(frame)
    assert tally.summary(0.3) == {
        "frames": 4,
        "fp_per_frame": {"ebike": 0.75, "bicycle": 0.25},
        "frames_with_ebike_or_bicycle": 2,
        "detections": {"bicycle": 1, "ebike": 3, "person": 1, "tv": 1},
    }
    strict = tally.summary(0.3, {"ebike": 0.5})
    assert strict["fp_per_frame"] == {"ebike": 0.25, "bicycle": 0.25}
    assert strict["frames_with_ebike_or_bicycle"] == 1
    assert tally.per_frame("ebike", 0.05) == 1.0 and tally.per_frame("ebike", 0.7) == 0.0
    assert EmptyFrameTally().per_frame("ebike", 0.3) is None


COCO_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"


@pytest.mark.parametrize(
    ("model", "label_map"),
    [(SHIPPED_MODEL, {}), (COCO_MODEL, {"motorcycle": "ebike", "bicycle": "ebike"})],
    ids=["ebike-detector", "coco-centernet"],
)
def test_real_elevator_photos_are_scored(shared_dir: Path, model: Path, label_map: dict[str, str]) -> None:
    """The 28 real photos (evaluation only): every box is accounted for; figures go to the model cards.

    Reports, does not gate: the thresholds the issue sets are read off the cards.
    """
    real = shared_dir / "data" / "ebike-real"
    if not model.is_file():
        pytest.skip(f"{model} is not built yet (make models)")
    pairs = find_voc_pairs(real)
    truths = sum(1 for _, xml in pairs for box in read_voc(xml) if box.cls == "ebike")
    result = evaluate_images(real, DetectorOptions(model_path=model, label_map=label_map))
    assert result["images"] == len(pairs) == 28
    ebike = result["classes"]["ebike"]
    assert ebike["truths"] == truths > 0
    assert ebike["tp"] + ebike["fn"] == truths
    assert result["ebike_recall"] == round(ebike["tp"] / truths, 4)
    empty = result["empty_frames"]
    assert empty["frames"] >= len(pairs)  # most photos leave room for at least one empty crop
    assert result["ebike_fp_per_empty_frame"] == round(
        empty["detections"].get("ebike", 0) / empty["frames"], 4
    )
    print(
        f"{model.name}: e-bike AP@0.5 {ebike['ap50']}, P {ebike['precision']} R {ebike['recall']}, "
        f"e-bikes per empty frame {result['ebike_fp_per_empty_frame']}"
    )
