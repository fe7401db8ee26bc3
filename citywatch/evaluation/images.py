"""Frame-level scoring of a detector on still images with Pascal VOC boxes (``citywatch eval ebike --images``).

A directory holds either ``images/`` and ``annotations/`` side by side (the layout of
``../shared/data/ebike-real``) or images with their ``.xml`` files next to them. Each detection is
matched greedily, best score first, to the unmatched ground-truth box of its class with the highest
IoU; at IoU >= 0.5 it is a true positive, otherwise a false positive. Boxes marked ``difficult``
neither count as misses nor make a matching detection a false positive. Per class the result gives
precision and recall at the runtime's score threshold (per class where the detector config sets one)
and the all-point interpolated average precision at IoU 0.5 (VOC 2010+), which does not depend on any
threshold. The detector is the runtime's own (label map, input size, layout, decoding), so any model
the runtime can run is scored by the same command; empty-car crops of the same photos give false
positives per empty frame (citywatch.evaluation.empty).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from citywatch.evaluation.empty import EmptyFrameTally, EmptyRegionRule, empty_regions
from edge.vision.detector import DetectorOptions
from edge.vision.types import DEFAULT_SCORE_THRESHOLD

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_CLASSES = ("ebike", "person")
# E-bike precision, recall and false positives per empty frame are also given at these thresholds,
# to choose a runtime threshold for a model (e.g. a COCO model through a label map).
SWEEP_THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
RANKING_FLOOR = 0.05
# Other spellings of our class names found in public annotation sets.
LABEL_ALIASES = {
    "e-bike": "ebike",
    "electric_bicycle": "ebike",
    "electric-bicycle": "ebike",
    "escooter": "ebike",
    "e-scooter": "ebike",
    "pedestrian": "person",
}


@dataclass(frozen=True)
class LabelledBox:
    cls: str
    x1: float
    y1: float
    x2: float
    y2: float
    difficult: bool = False


@dataclass(frozen=True)
class ScoredBox:
    cls: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


class _Detection(Protocol):
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


def read_voc(path: Path) -> list[LabelledBox]:
    """Boxes of a Pascal VOC annotation file; a malformed file raises ValueError naming it."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not a Pascal VOC XML file ({exc})") from None
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip().lower()
        bndbox = obj.find("bndbox")
        if not name or bndbox is None:
            raise ValueError(f"{path}: an <object> needs a <name> and a <bndbox>")
        try:
            x1, y1, x2, y2 = (
                float(bndbox.findtext(tag) or "nan") for tag in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError:
            raise ValueError(f"{path}: <bndbox> of {name!r} has a non-numeric coordinate") from None
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"{path}: <bndbox> of {name!r} is empty or has NaN corners: {x1},{y1},{x2},{y2}")
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        boxes.append(LabelledBox(LABEL_ALIASES.get(name, name), x1, y1, x2, y2, difficult))
    return boxes


def find_voc_pairs(directory: Path) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs under ``directory``, sorted by name; images without XML are skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory of images with Pascal VOC annotations")
    image_dir = directory / "images" if (directory / "images").is_dir() else directory
    xml_dir = directory / "annotations" if (directory / "annotations").is_dir() else image_dir
    pairs = []
    for image in sorted(image_dir.iterdir()):
        if image.suffix.lower() in IMAGE_SUFFIXES:
            annotation = xml_dir / f"{image.stem}.xml"
            if annotation.is_file():
                pairs.append((image, annotation))
    if not pairs:
        raise FileNotFoundError(
            f"no image with a Pascal VOC annotation in {directory} (expected images/ + annotations/, "
            "or <name>.jpg|.png beside <name>.xml)"
        )
    return pairs


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix1, iy1, ix2, iy2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def average_precision(scores: Sequence[float], hits: Sequence[bool], truths: int) -> float | None:
    """All-point interpolated AP of ranked detections; None when the class has no ground truth."""
    if truths == 0:
        return None
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.asarray(hits, dtype=np.float64)[order]
    cum_tp = np.cumsum(tp)
    recall = cum_tp / truths
    precision = cum_tp / np.arange(1, len(tp) + 1)
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


@dataclass
class _ClassTally:
    truths: int = 0
    scores: list[float] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)


class ImageScorer:
    """Accumulates matched detections image by image; ``summary`` gives per-class figures."""

    def __init__(self, classes: Sequence[str], iou_threshold: float = 0.5) -> None:
        self.classes = tuple(classes)
        self.iou_threshold = iou_threshold
        self.images = 0
        self._tally = {name: _ClassTally() for name in self.classes}

    def add(self, detections: Iterable[ScoredBox], truths: Iterable[LabelledBox]) -> None:
        self.images += 1
        truths = list(truths)
        detections = list(detections)
        for name in self.classes:
            tally = self._tally[name]
            gts = [t for t in truths if t.cls == name]
            tally.truths += sum(1 for t in gts if not t.difficult)
            taken = [False] * len(gts)
            for det in sorted((d for d in detections if d.cls == name), key=lambda d: -d.score):
                best, best_iou = -1, self.iou_threshold
                for index, gt in enumerate(gts):
                    if taken[index]:
                        continue
                    overlap = box_iou((det.x1, det.y1, det.x2, det.y2), (gt.x1, gt.y1, gt.x2, gt.y2))
                    if overlap >= best_iou:
                        best, best_iou = index, overlap
                if best >= 0 and gts[best].difficult:
                    taken[best] = True
                    continue  # neither a hit nor a false alarm
                if best >= 0:
                    taken[best] = True
                tally.scores.append(det.score)
                tally.hits.append(best >= 0)

    def summary(
        self,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        class_thresholds: Mapping[str, float] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Per-class figures; precision and recall at ``class_thresholds[name]``, else ``score_threshold``."""
        out: dict[str, dict[str, Any]] = {}
        for name, tally in self._tally.items():
            threshold = (class_thresholds or {}).get(name, score_threshold)
            kept = [hit for score, hit in zip(tally.scores, tally.hits, strict=True) if score >= threshold]
            tp = sum(kept)
            fp = len(kept) - tp
            fn = tally.truths - tp
            ap = average_precision(tally.scores, tally.hits, tally.truths)
            out[name] = {
                "truths": tally.truths,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                "recall": round(tp / tally.truths, 4) if tally.truths else None,
                "ap50": None if ap is None else round(ap, 4),
            }
        return out


def parse_label_map(text: str) -> dict[str, str]:
    """``"motorcycle=ebike,bicycle=ebike"`` -> ``{"motorcycle": "ebike", "bicycle": "ebike"}``."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = (side.strip() for side in item.partition("="))
        if not sep or not source or not target:
            raise ValueError(
                f"label map entry {item!r} must look like model_label=our_label, e.g. motorcycle=ebike"
            )
        if source in mapping and mapping[source] != target:
            raise ValueError(f"label map names {source!r} twice: {mapping[source]!r} and {target!r}")
        mapping[source] = target
    if not mapping:
        raise ValueError("label map is empty: give model_label=our_label pairs separated by commas")
    return mapping


def evaluate_images(
    images_dir_or_root: str | Path,
    model: str | Path | DetectorOptions,
    *,
    classes: Sequence[str] = DEFAULT_CLASSES,
    iou_threshold: float = 0.5,
    empty_rule: EmptyRegionRule | None = EmptyRegionRule(),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score an ONNX detector on every annotated image of a directory, as the runtime would run it.

    ``model`` is a path (the runtime's defaults) or the runtime's full ``DetectorOptions`` (label map,
    layout, input size, thresholds): the detector decodes as in service, and precision/recall are
    taken at its score threshold (per class where ``class_thresholds`` sets one). AP uses every
    detection down to 0.05. With ``empty_rule``, empty-car crops of each photo (see
    :mod:`citywatch.evaluation.empty`) count e-bikes and bicycles reported where nothing is.

    Returns ``{"images", "model", "label_map", "input_size", "score_threshold", "classes": {name:
    {truths, tp, fp, fn, precision, recall, ap50}}, "ebike_precision", "ebike_recall", "ebike_ap50",
    "empty_frames", "ebike_fp_per_empty_frame", "ms_per_image", "ms_per_inference_median", ...}``; a model without an ``ebike``
    class (after the label map) raises ValueError saying which labels it has.
    """
    import cv2

    from edge.vision.detector import Detector

    options = model if isinstance(model, DetectorOptions) else DetectorOptions(model_path=Path(model))
    pairs = find_voc_pairs(Path(images_dir_or_root))
    # One pass down to the ranking floor for AP; the runtime thresholds apply afterwards, per class
    # (greedy NMS keeps the same boxes above a threshold whether or not lower ones took part).
    floor = min(RANKING_FLOOR, options.score_threshold, *options.class_thresholds.values())
    ranking = Detector.load(replace(options, score_threshold=floor, class_thresholds={}))
    if "ebike" in classes and "ebike" not in ranking.labels:
        raise ValueError(
            f"{options.model_path} has no 'ebike' class (its labels: {_short(ranking.labels)}): "
            "map the model's own classes with --label-map, e.g. motorcycle=ebike,bicycle=ebike"
        )
    scored = tuple(name for name in classes if name in ranking.labels)
    thresholds = {name: options.class_thresholds.get(name, options.score_threshold) for name in scored}
    scorer = ImageScorer(scored, iou_threshold)
    empty = EmptyFrameTally()
    inference_ms: list[float] = []
    detect_ms: list[float] = []
    for index, (image_path, xml_path) in enumerate(pairs, start=1):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{image_path}: OpenCV cannot read this image")
        truths = read_voc(xml_path)
        started = time.perf_counter()
        found = ranking.detect(image)
        detect_ms.append((time.perf_counter() - started) * 1000.0)
        inference_ms.append(ranking.last_inference_ms)
        scorer.add([ScoredBox(d.label, d.score, d.x1, d.y1, d.x2, d.y2) for d in found], truths)
        if empty_rule is not None:
            height, width = image.shape[:2]
            boxes = [(t.x1, t.y1, t.x2, t.y2) for t in truths]
            for region in empty_regions(boxes, width, height, empty_rule):
                empty.add((d.label, d.score) for d in ranking.detect(image, roi=region))
        if progress is not None and (index % 10 == 0 or index == len(pairs)):
            progress(f"scored {index}/{len(pairs)} images, {len(empty.found)} empty-car crops")
    per_class = scorer.summary(options.score_threshold, thresholds)
    ebike = per_class.get("ebike", {})
    empty_summary = empty.summary(options.score_threshold, options.class_thresholds) if empty_rule else None
    sweep = {}
    if "ebike" in scored:
        for threshold in SWEEP_THRESHOLDS:
            row = scorer.summary(threshold)["ebike"]
            sweep[str(threshold)] = {
                "precision": row["precision"],
                "recall": row["recall"],
                "fp_per_empty_frame": empty.per_frame("ebike", threshold) if empty_rule else None,
            }
    return {
        "images": len(pairs),
        "source": str(images_dir_or_root),
        "model": str(options.model_path),
        "label_map": dict(options.label_map),
        "input_size": ranking.input_size,
        "layout": ranking.layout,
        "score_threshold": options.score_threshold,
        "class_thresholds": thresholds,
        "iou_threshold": iou_threshold,
        "classes": per_class,
        "missing_classes": [name for name in classes if name not in scored],
        "ebike_precision": ebike.get("precision"),
        "ebike_recall": ebike.get("recall"),
        "ebike_ap50": ebike.get("ap50"),
        "ebike_by_threshold": sweep,
        "empty_frames": empty_summary,
        "ebike_fp_per_empty_frame": None if empty_summary is None else empty_summary["fp_per_frame"]["ebike"],
        "ms_per_image": round(float(np.mean(detect_ms)), 2),
        "ms_per_inference_median": round(float(np.median(inference_ms)), 2),
    }


def _short(labels: Sequence[str], shown: int = 12) -> str:
    head = ", ".join(labels[:shown])
    return f"{head}, … ({len(labels)} in all)" if len(labels) > shown else head
