"""Frame-level scoring of a detector on still images with Pascal VOC boxes (``citywatch eval ebike --images``).

A directory holds either ``images/`` and ``annotations/`` side by side (the layout of
``../shared/data/ebike-real``) or images with their ``.xml`` files next to them. Each detection is
matched greedily, best score first, to the unmatched ground-truth box of its class with the highest
IoU; at IoU >= 0.5 it is a true positive, otherwise a false positive. Boxes marked ``difficult``
neither count as misses nor make a matching detection a false positive. Per class the result gives
precision and recall at the score threshold (the runtime's default) and the all-point interpolated
average precision at IoU 0.5 (VOC 2010+), which does not depend on any threshold.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.vision.types import DEFAULT_SCORE_THRESHOLD

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_CLASSES = ("ebike", "person")
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

    def summary(self, score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, tally in self._tally.items():
            kept = [
                hit for score, hit in zip(tally.scores, tally.hits, strict=True) if score >= score_threshold
            ]
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


def evaluate_images(
    images_dir_or_root: str | Path,
    model_path: str | Path,
    *,
    classes: Sequence[str] = DEFAULT_CLASSES,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    iou_threshold: float = 0.5,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score the ONNX detector at ``model_path`` on every annotated image of a directory.

    Returns ``{"images", "model", "score_threshold", "iou_threshold", "classes": {name: {truths, tp,
    fp, fn, precision, recall, ap50}}, "ebike_precision", "ebike_recall", "ebike_ap50", "ms_per_image"}``.
    """
    import cv2

    from edge.vision.detector import Detector, DetectorOptions

    pairs = find_voc_pairs(Path(images_dir_or_root))
    # A low threshold keeps the ranked list AP needs; precision/recall use ``score_threshold``.
    detector = Detector.load(
        DetectorOptions(
            model_path=Path(model_path), score_threshold=min(0.05, score_threshold), threads=threads
        )
    )
    missing = [name for name in classes if name not in detector.labels]
    if missing:
        raise ValueError(f"{model_path} has no class {missing} (its labels: {list(detector.labels)})")
    scorer = ImageScorer(classes, iou_threshold)
    started = time.perf_counter()
    for index, (image_path, xml_path) in enumerate(pairs, start=1):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{image_path}: OpenCV cannot read this image")
        detections = [ScoredBox(d.label, d.score, d.x1, d.y1, d.x2, d.y2) for d in detector.detect(image)]
        scorer.add(detections, read_voc(xml_path))
        if progress is not None and (index % 10 == 0 or index == len(pairs)):
            progress(f"scored {index}/{len(pairs)} images")
    elapsed = time.perf_counter() - started
    per_class = scorer.summary(score_threshold)
    ebike = per_class.get("ebike", {})
    return {
        "images": len(pairs),
        "source": str(images_dir_or_root),
        "model": str(model_path),
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "classes": per_class,
        "ebike_precision": ebike.get("precision"),
        "ebike_recall": ebike.get("recall"),
        "ebike_ap50": ebike.get("ap50"),
        "ms_per_image": round(1000 * elapsed / len(pairs), 2),
    }
