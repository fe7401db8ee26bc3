"""The held-out synthetic stills: where rendered stills are cached, and scoring a model on them.

Training scores each run here and ``python -m models.ebike.card --rescore-heldout`` scores a model
again; both import this module, which imports neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "models" / "work" / "cache"  # training and held-out


def evaluate_heldout(onnx_path: Path, samples: list[Any]) -> dict[str, Any]:
    """Per-class precision/recall at the runtime's default threshold and AP@0.5, by the runtime's own Detector."""
    from citywatch.evaluation.images import DEFAULT_SCORE_THRESHOLD, ImageScorer, LabelledBox, ScoredBox
    from edge.vision.detector import Detector, DetectorOptions
    from models.ebike import data

    detector = Detector.load(DetectorOptions(model_path=onnx_path, score_threshold=0.05, threads=1))
    scorer = ImageScorer(data.LABELS)
    for sample in samples:
        image = data.decode(sample)
        detections = [ScoredBox(d.label, d.score, d.x1, d.y1, d.x2, d.y2) for d in detector.detect(image)]
        truths = [
            LabelledBox(data.LABELS[int(row[0])], float(row[1]), float(row[2]), float(row[3]), float(row[4]))
            for row in sample.boxes
        ]
        scorer.add(detections, truths)
    per_class = scorer.summary(DEFAULT_SCORE_THRESHOLD)
    aps = [c["ap50"] for c in per_class.values() if c["ap50"] is not None]
    return {
        "images": len(samples),
        "score_threshold": DEFAULT_SCORE_THRESHOLD,
        "iou_threshold": 0.5,
        "classes": per_class,
        "map50": round(float(np.mean(aps)), 4) if aps else None,
    }
