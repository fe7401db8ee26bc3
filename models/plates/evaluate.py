"""Score a plate reader on held-out rendered vehicle crops: ``python -m models.plates.evaluate``.

For each plate height (pixels, before the camera's elevation squeezes it) it renders crops from seeds
no training run uses, day and night mixed as in training, and counts per crop: read exactly (text and
colour), misread (a reading returned, but wrong: the costly error, a notice to the wrong owner), or not
read. Crops without a plate count readings that should not exist. Speed is the time of one ``read``
on one onnxruntime thread. The last line printed is the metrics JSON, also written to
``models/plates/plate-reader.metrics.json`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.street.plates import MODEL_DIR, make_plate_reader

HELDOUT_SEED_BASE = 900_000
HEIGHTS = (12, 16, 20, 30, 45, 70)
# The street config's default plate.min_confidence: readings under it never reach an event.
AGENT_MIN_CONFIDENCE = 0.5
METRICS_FILE = MODEL_DIR / "plate-reader.metrics.json"


def evaluate_reader(
    reader: Any, *, heights: tuple[int, ...] = HEIGHTS, per_height: int = 300, negatives: int = 200
) -> dict[str, Any]:
    from models.plates.synth import make_scene

    by_height: dict[str, Any] = {}
    times: list[float] = []
    for height in heights:
        counts = {"exact": 0, "text_only": 0, "misread": 0, "unread": 0, "exact_conf": 0, "misread_conf": 0}
        by_colour: dict[str, list[int]] = {}
        night = [0, 0]
        for i in range(per_height):
            rng = np.random.default_rng([HELDOUT_SEED_BASE, height, i])
            scene = make_scene(rng, height)
            start = time.perf_counter()
            reading = reader.read(scene.image)
            times.append((time.perf_counter() - start) * 1000)
            exact = reading is not None and reading.text == scene.text and reading.colour == scene.colour
            confident = reading is not None and reading.confidence >= AGENT_MIN_CONFIDENCE
            counts["exact_conf"] += int(exact and confident)
            counts["misread_conf"] += int(
                confident and not exact and reading is not None and reading.text != scene.text
            )
            if reading is None:
                counts["unread"] += 1
            elif exact:
                counts["exact"] += 1
            elif reading.text == scene.text:
                counts["text_only"] += 1
            else:
                counts["misread"] += 1
            tally = by_colour.setdefault(scene.colour, [0, 0])
            tally[0] += int(exact)
            tally[1] += 1
            if scene.night:
                night[0] += int(exact)
                night[1] += 1
        by_height[str(height)] = {
            "crops": per_height,
            "exact_rate": round(counts["exact"] / per_height, 4),
            "misread_rate": round(counts["misread"] / per_height, 4),
            "unread_rate": round(counts["unread"] / per_height, 4),
            "text_right_colour_wrong": counts["text_only"],
            "exact_rate_confident": round(counts["exact_conf"] / per_height, 4),
            "misread_rate_confident": round(counts["misread_conf"] / per_height, 4),
            "exact_rate_by_colour": {c: round(k / n, 4) for c, (k, n) in sorted(by_colour.items())},
            "night_crops": night[1],
            "exact_rate_night": round(night[0] / night[1], 4) if night[1] else None,
        }
    false_reads = 0
    for i in range(negatives):
        rng = np.random.default_rng([HELDOUT_SEED_BASE, 1, i])
        scene = make_scene(rng, int(rng.integers(20, 71)), with_plate=False)
        false_reads += int(reader.read(scene.image) is not None)
    return {
        "agent_min_confidence": AGENT_MIN_CONFIDENCE,
        "by_height": by_height,
        "no_plate_crops": negatives,
        "no_plate_false_read_rate": round(false_reads / max(1, negatives), 4),
        "ms_per_read": {
            "median": round(statistics.median(times), 2),
            "p95": round(float(np.percentile(times, 95)), 2),
            "threads": 1,
            "cpu": platform.processor() or platform.machine(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.plates.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--reader", default="citywatch", help="registered reader name (default: %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--per-height", type=int, default=300, help="crops per plate height")
    parser.add_argument("--negatives", type=int, default=200, help="crops without a plate")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    options = {"model_dir": args.model_dir, "threads": 1} if args.reader == "citywatch" else {}
    reader = make_plate_reader(args.reader, **options)
    metrics = {
        "reader": args.reader,
        **evaluate_reader(reader, per_height=args.per_height, negatives=args.negatives),
    }
    for height, row in metrics["by_height"].items():
        print(
            f"{height:>3} px: exact {row['exact_rate']:.1%}  misread {row['misread_rate']:.1%}  "
            f"unread {row['unread_rate']:.1%}  | confidence >= {AGENT_MIN_CONFIDENCE}: exact "
            f"{row['exact_rate_confident']:.1%} misread {row['misread_rate_confident']:.1%}  "
            f"by colour {row['exact_rate_by_colour']}"
        )
    if not args.no_write and args.model_dir.resolve() == MODEL_DIR.resolve():
        METRICS_FILE.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(metrics, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
