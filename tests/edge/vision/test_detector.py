"""The onnxruntime detector: YOLO and citywatch layouts decoded, letterbox undone, NMS, clear load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.vision.config import DetectorConfig
from edge.vision.detector import Detector, DetectorOptions, ModelError, labels_problem, letterbox
from tests.edge.vision.onnx_builders import citywatch_model, yolo_model

SIZE = 320
# A 640x360 frame letterboxed into 320x320: scale 0.5, 70 grey rows above and below.
FRAME = np.full((360, 640, 3), 40, np.uint8)
SCALE, PAD_Y = 0.5, 70


def to_input(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    return (x1 * SCALE, y1 * SCALE + PAD_Y, x2 * SCALE, y2 * SCALE + PAD_Y)


def yolo_row(box: tuple[float, float, float, float], scores: list[float]) -> list[float]:
    x1, y1, x2, y2 = to_input(*box)
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *scores]


def test_letterbox_keeps_aspect_and_pads_evenly() -> None:
    canvas, box = letterbox(FRAME, SIZE)
    assert canvas.shape == (SIZE, SIZE, 3)
    assert (box.scale, box.pad_x, box.pad_y) == (SCALE, 0, PAD_Y)
    assert (canvas[: PAD_Y - 1] == 114).all() and (canvas[PAD_Y + 1 : SIZE - PAD_Y - 1] == 40).all()


def test_yolo_layout_decodes_known_boxes_after_nms(tmp_path: Path) -> None:
    ebike_box = (100.0, 50.0, 300.0, 250.0)
    rows = [
        yolo_row(ebike_box, [0.05, 0.90, 0.01]),  # the e-bike
        yolo_row((104.0, 54.0, 302.0, 252.0), [0.02, 0.60, 0.01]),  # a duplicate NMS must drop
        yolo_row((110.0, 40.0, 290.0, 240.0), [0.80, 0.05, 0.01]),  # a person on it: other class, kept
        yolo_row((500.0, 100.0, 600.0, 300.0), [0.10, 0.20, 0.30]),  # below the score threshold
    ]
    model = yolo_model(
        tmp_path / "yolo.onnx", np.array(rows), size=SIZE, names=["person", "ebike", "bicycle"]
    )
    detector = Detector.load(DetectorOptions(model_path=model, score_threshold=0.35))
    assert detector.layout == "yolo"
    assert detector.labels == ("person", "ebike", "bicycle")
    assert detector.input_size == SIZE

    found = detector.detect(FRAME)

    assert [(d.label, round(d.score, 2)) for d in found] == [("ebike", 0.90), ("person", 0.80)]
    ebike = found[0]
    assert (ebike.x1, ebike.y1, ebike.x2, ebike.y2) == pytest.approx(ebike_box, abs=0.5)
    person = found[1]
    assert (person.x1, person.y1, person.x2, person.y2) == pytest.approx((110, 40, 290, 240), abs=0.5)


def test_yolo_layout_chosen_by_config_with_labels_from_config(tmp_path: Path) -> None:
    rows = [yolo_row((10.0, 10.0, 60.0, 90.0), [0.7, 0.1])]
    model = yolo_model(tmp_path / "yolo.onnx", np.array(rows), size=SIZE, names=None)
    detector = Detector.load(DetectorOptions(model_path=model, layout="yolo", labels=("ebike", "person")))
    [only] = detector.detect(FRAME)
    assert only.label == "ebike"
    assert (only.x1, only.y1, only.x2, only.y2) == pytest.approx((10, 10, 60, 90), abs=0.5)


def test_roi_detections_come_back_in_frame_pixels(tmp_path: Path) -> None:
    # The crop (200..520, 0..320) is square, so the 320 input is the crop 1:1: input px + crop offset.
    rows = [[60.0, 100.0, 40.0, 80.0, 0.9]]
    model = yolo_model(tmp_path / "yolo.onnx", np.array(rows), size=SIZE, names=["ebike"])
    detector = Detector.load(DetectorOptions(model_path=model))
    [found] = detector.detect(FRAME, roi=(200, 0, 520, 320))
    assert (found.x1, found.y1, found.x2, found.y2) == pytest.approx((240, 60, 280, 140), abs=0.5)


def test_citywatch_layout_decodes_and_applies_class_thresholds(tmp_path: Path) -> None:
    boxes = np.array([to_input(100, 50, 300, 250), to_input(400, 100, 500, 300)])
    scores = np.array([[0.1, 0.95, 0.0], [0.5, 0.0, 0.1]])
    model = citywatch_model(
        tmp_path / "cw.onnx", boxes, scores, size=SIZE, labels=["person", "ebike", "bicycle"]
    )
    detector = Detector.load(
        DetectorOptions(model_path=model, score_threshold=0.3, class_thresholds={"person": 0.6})
    )
    assert detector.layout == "citywatch"
    [ebike] = detector.detect(FRAME)  # the person at 0.5 is under its own 0.6 threshold
    assert ebike.label == "ebike"
    assert (ebike.x1, ebike.y1, ebike.x2, ebike.y2) == pytest.approx((100, 50, 300, 250), abs=0.5)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist"):
        Detector.load(DetectorOptions(model_path=tmp_path / "nope.onnx"))


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf at all" * 10)
    with pytest.raises(ModelError, match=r"corrupt\.onnx is not a loadable ONNX model"):
        Detector.load(DetectorOptions(model_path=corrupt))


def test_truncated_model_is_a_clear_error(tmp_path: Path) -> None:
    good = yolo_model(tmp_path / "good.onnx", np.array([[1.0, 1.0, 1.0, 1.0, 0.5]]), size=SIZE, names=["a"])
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match=r"truncated\.onnx"):
        Detector.load(DetectorOptions(model_path=truncated))


def test_label_count_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    model = yolo_model(tmp_path / "y.onnx", np.array([[1.0, 1.0, 1.0, 1.0, 0.5, 0.1]]), size=SIZE, names=None)
    with pytest.raises(ModelError, match=r"scores 2 classes but 3 labels"):
        Detector.load(DetectorOptions(model_path=model, labels=("a", "b", "c")))


def test_wrong_layout_for_model_is_a_clear_error(tmp_path: Path) -> None:
    model = yolo_model(tmp_path / "y.onnx", np.array([[1.0, 1.0, 1.0, 1.0, 0.5]]), size=SIZE, names=["a"])
    with pytest.raises(ModelError, match=r"needs outputs 'boxes' and 'scores'"):
        Detector.load(DetectorOptions(model_path=model, layout="citywatch"))


def test_label_map_renames_and_keep_labels_filters(tmp_path: Path) -> None:
    # A generic 3-class YOLO export: map its "motorcycle" to our "ebike", keep only ebike and person.
    rows = [
        yolo_row((100.0, 50.0, 300.0, 250.0), [0.1, 0.9, 0.0]),
        yolo_row((400.0, 50.0, 500.0, 250.0), [0.8, 0.0, 0.0]),
        yolo_row((520.0, 50.0, 600.0, 250.0), [0.0, 0.0, 0.7]),
    ]
    model = yolo_model(
        tmp_path / "coco.onnx", np.array(rows), size=SIZE, names=["person", "motorcycle", "car"]
    )
    detector = Detector.load(
        DetectorOptions(
            model_path=model,
            label_map={"motorcycle": "ebike"},
            keep_labels=("ebike", "person"),
            class_thresholds={"ebike": 0.5},
        )
    )
    assert detector.labels == ("person", "ebike", "car")
    assert [d.label for d in detector.detect(FRAME)] == ["ebike", "person"]
    with pytest.raises(ModelError, match=r"label_map names \['scooter'\]"):
        Detector.load(DetectorOptions(model_path=model, label_map={"scooter": "ebike"}))


def two_wheeler_model(path: Path, rows: list[list[float]]) -> Path:
    """A COCO-like export whose motorcycle and bicycle both stand in for our e-bike."""
    return yolo_model(path, np.array(rows), size=SIZE, names=["person", "bicycle", "motorcycle"])


EBIKE_MAP = {"motorcycle": "ebike", "bicycle": "ebike"}


def test_a_threshold_on_a_mapped_label_applies_to_every_source_label(tmp_path: Path) -> None:
    # Two e-bikes, one scored as a bicycle and one as a motorcycle, both at 0.5: the e-bike threshold
    # 0.6 must drop both (before the fix it reached only the first source label, bicycle).
    rows = [
        yolo_row((20.0, 20.0, 200.0, 200.0), [0.0, 0.5, 0.0]),
        yolo_row((400.0, 20.0, 600.0, 200.0), [0.0, 0.0, 0.5]),
        yolo_row((250.0, 20.0, 350.0, 300.0), [0.5, 0.0, 0.0]),  # a person at 0.5: the default 0.3 keeps it
    ]
    model = two_wheeler_model(tmp_path / "coco.onnx", rows)
    strict = Detector.load(
        DetectorOptions(
            model_path=model, score_threshold=0.3, label_map=EBIKE_MAP, class_thresholds={"ebike": 0.6}
        )
    )
    assert [d.label for d in strict.detect(FRAME)] == ["person"]
    lenient = Detector.load(
        DetectorOptions(
            model_path=model, score_threshold=0.6, label_map=EBIKE_MAP, class_thresholds={"ebike": 0.4}
        )
    )
    # The person at 0.5 is under the default 0.6; both e-bikes are over their own 0.4.
    assert sorted((d.label, round(d.x1)) for d in lenient.detect(FRAME)) == [("ebike", 20), ("ebike", 400)]


def test_a_threshold_naming_a_renamed_source_label_is_refused(tmp_path: Path) -> None:
    model = two_wheeler_model(tmp_path / "coco.onnx", [yolo_row((20.0, 20.0, 200.0, 200.0), [0.0, 0.5, 0.0])])
    with pytest.raises(ModelError, match=r"class_thresholds names \['motorcycle'\].*label_map renames"):
        Detector.load(
            DetectorOptions(model_path=model, label_map=EBIKE_MAP, class_thresholds={"motorcycle": 0.4})
        )
    with pytest.raises(
        ModelError, match=r"class_thresholds names \['scooter'\], which the model does not report"
    ):
        Detector.load(
            DetectorOptions(model_path=model, label_map=EBIKE_MAP, class_thresholds={"scooter": 0.4})
        )


def test_overlap_removal_runs_on_mapped_labels_keeping_the_higher_score(tmp_path: Path) -> None:
    # One e-bike seen as a motorcycle (0.7) and as a bicycle (0.5) with nearly the same box: after
    # mapping both are e-bikes, so only the surer one may stay. A person on it is another label: kept.
    rows = [
        yolo_row((100.0, 50.0, 300.0, 250.0), [0.0, 0.5, 0.0]),
        yolo_row((104.0, 54.0, 302.0, 252.0), [0.0, 0.0, 0.7]),
        yolo_row((110.0, 40.0, 290.0, 240.0), [0.8, 0.0, 0.0]),
    ]
    model = two_wheeler_model(tmp_path / "coco.onnx", rows)
    mapped = Detector.load(DetectorOptions(model_path=model, label_map=EBIKE_MAP)).detect(FRAME)
    assert [(d.label, round(d.score, 2)) for d in mapped] == [("person", 0.8), ("ebike", 0.7)]
    assert (mapped[1].x1, mapped[1].y1) == pytest.approx((104, 54), abs=0.5)
    # Without the map they are two classes, and both stay.
    unmapped = Detector.load(DetectorOptions(model_path=model)).detect(FRAME)
    assert [d.label for d in unmapped] == ["person", "motorcycle", "bicycle"]


def test_device_config_refuses_a_threshold_on_a_renamed_label_and_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"class_thresholds names \['bicycle'\].*give it to \['ebike'\]"):
        DetectorConfig(model=Path("m.onnx"), label_map=EBIKE_MAP, class_thresholds={"bicycle": 0.4})
    accepted = DetectorConfig(model=Path("m.onnx"), label_map=EBIKE_MAP, class_thresholds={"ebike": 0.4})
    assert accepted.class_thresholds == {"ebike": 0.4}
    # A label that is renamed but also another label's new name is still reported: its threshold counts.
    swapped = {"motorcycle": "bicycle", "bicycle": "motorcycle"}
    assert DetectorConfig(model=Path("m.onnx"), label_map=swapped, class_thresholds={"bicycle": 0.4})


def test_retuned_keeps_the_session_and_applies_new_thresholds(tmp_path: Path) -> None:
    """A config applied live: other thresholds on the loaded model, no reload; a new model is refused."""
    from dataclasses import replace

    from tests.edge.vision.elevator_helpers import ebike_everywhere_model

    model = ebike_everywhere_model(tmp_path / "fixed.onnx")  # an e-bike (0.9) and a person (0.85)
    detector = Detector.load(DetectorOptions(model_path=model, score_threshold=0.95))
    image = np.zeros((180, 320, 3), np.uint8)
    assert detector.detect(image) == []
    lower = detector.retuned(
        replace(detector.options, score_threshold=0.5, class_thresholds={"person": 0.88})
    )
    assert lower._session is detector._session
    assert [d.label for d in lower.detect(image)] == ["ebike"]
    with pytest.raises(ModelError, match="does not report"):
        detector.retuned(replace(detector.options, class_thresholds={"scooter": 0.5}))
    with pytest.raises(ModelError, match="model_path cannot change on a loaded model"):
        detector.retuned(replace(detector.options, model_path=tmp_path / "other.onnx"))


def test_labels_problem_names_what_the_model_does_not_output_after_its_label_map(tmp_path: Path) -> None:
    """One check for a preflight and for a config applied live (street vehicle_classes, lift triggers)."""
    model = two_wheeler_model(tmp_path / "coco.onnx", [yolo_row((10.0, 10.0, 50.0, 50.0), [0.9, 0.0, 0.0])])
    detector = Detector.load(DetectorOptions(model_path=model, label_map=EBIKE_MAP))
    assert labels_problem("street.vehicle_classes", ["ebike", "person"], detector) is None
    problem = labels_problem("street.vehicle_classes", ["ebike", "lorry", "bicycle"], detector)
    assert problem == (
        "street.vehicle_classes: ['bicycle', 'lorry'] are not among the model's labels ['person', 'ebike']"
    )
