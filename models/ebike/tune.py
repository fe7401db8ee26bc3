"""Tune the e-bike guard's thresholds on validation rides: ``python -m models.ebike.tune --model M``.

Running the detector is the slow part of scoring a ride, and it does not depend on the analyzer's
settings. So this renders validation rides once (seeds from 97,000,000: neither training stills nor the
held-out rides ``citywatch eval ebike`` scores by default), records the detector's output on every
frame at a low score threshold, then replays the tracker and the analyzer over a grid of settings in
milliseconds each. It prints the best settings by the issue's targets (false alarms within their
target first, then detection, then latency); confirm the winner with ``citywatch eval ebike
--config`` on the held-out rides.

An approximation, stated: the recording runs the detector on every full frame, where the agent's motion
gate skips idle frames and crops to the moving region, so the final figures come from ``citywatch eval``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

VALIDATION_SEED = 97_000_000
RECORD_THRESHOLD = 0.1
# Bump when RecordedRide changes (2: the latency reference ebike_first_visible_s).
RECORDING_FORMAT = 2

GRID: dict[str, list[Any]] = {
    "score_threshold": [0.25, 0.3, 0.35, 0.4, 0.45],
    "provisional_score": [0.45, 0.5, 0.55, 0.6, 0.65],
    "confirm_fraction": [0.5, 0.6, 0.7, 0.8],
    "window_s": [1.5, 2.0],
    "confirm_min_s": [1.0, 1.5],
    "confirm_min_frames": [3],
    "lookalike_iou": [0.5],
}


@dataclass(frozen=True)
class RecordedRide:
    seed: int
    kind: str
    has_ebike: bool
    ebike_first_full_s: float | None
    ebike_first_visible_s: float | None
    frames: list[tuple[float, list[tuple[str, float, float, float, float, float]]]]


def _record(job: tuple[str, int, str, float]) -> RecordedRide:
    from citywatch.evaluation.rides import DEFAULT_SIZE
    from edge.vision.detector import Detector, DetectorOptions
    from simulators.elevator import FirstVisibleWatch, iter_ride_frames, make_ride

    model, seed, kind, fps = job
    detector = _DETECTORS.get(model)
    if detector is None:
        detector = _DETECTORS[model] = Detector.load(
            DetectorOptions(model_path=Path(model), score_threshold=RECORD_THRESHOLD, threads=1)
        )
    ride = make_ride(seed, kind)
    watch = FirstVisibleWatch(ride.truth.ebike_first_full_s)
    frames = []
    for t, image, truth in iter_ride_frames(ride, fps=fps, size=DEFAULT_SIZE):
        watch.observe(truth)
        found = detector.detect(image)
        frames.append((t, [(d.label, d.score, d.x1, d.y1, d.x2, d.y2) for d in found]))
    return RecordedRide(
        seed, kind, bool(ride.truth.has_ebike), ride.truth.ebike_first_full_s, watch.seen_s, frames
    )


_DETECTORS: dict[str, Any] = {}


def record(model: Path, rides: int, seed: int, fps: float, workers: int) -> list[RecordedRide]:
    from simulators.elevator import RIDE_KINDS

    jobs = [(str(model), seed + i, RIDE_KINDS[i % len(RIDE_KINDS)], fps) for i in range(rides)]
    out: list[RecordedRide] = []
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for done, ride in enumerate(pool.map(_record, jobs), 1):
            out.append(ride)
            if done % 10 == 0 or done == rides:
                print(f"recorded {done}/{rides} rides ({time.monotonic() - started:.0f}s)", flush=True)
    return out


def recording_source(model: Path, *, rides: int, seed: int, fps: float) -> dict[str, Any]:
    """What a recording was made from: replaying one made with another model or rides would mislead."""
    import hashlib

    return {
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "rides": rides,
        "seed": seed,
        "fps": fps,
        "record_threshold": RECORD_THRESHOLD,
        "format": RECORDING_FORMAT,
    }


def save_recording(path: Path, rides: list[RecordedRide], source: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # plain dicts: the pickle must not name the module (``__main__`` when run with -m)
    path.write_bytes(pickle.dumps({"source": source, "rides": [asdict(ride) for ride in rides]}))


def load_recording(path: Path, source: dict[str, Any]) -> list[RecordedRide]:
    """The recorded rides, if ``path`` was recorded from ``source``; else a SystemExit saying what differs."""
    stored = pickle.loads(path.read_bytes())
    if not isinstance(stored, dict) or "source" not in stored:
        raise SystemExit(f"{path}: a recording without its source (older format); delete it to record again")
    differs = [
        f"{key} {stored['source'].get(key)!r} (now {value!r})"
        for key, value in source.items()
        if stored["source"].get(key) != value
    ]
    if differs:
        raise SystemExit(
            f"{path} was recorded with other settings: {', '.join(differs)}; delete it or pass another --recording"
        )
    return [RecordedRide(**fields) for fields in stored["rides"]]


def tracked(rides: list[RecordedRide], threshold: float) -> list[list[tuple[float, list[Any]]]]:
    """Detections at ``threshold`` through the tracker, per ride: independent of the analyzer's settings."""
    from edge.vision.tracker import IouTracker
    from edge.vision.types import Detection

    out = []
    for ride in rides:
        tracker = IouTracker()
        out.append(
            [
                (
                    t,
                    tracker.update(
                        t,
                        [
                            Detection(lb, sc, x1, y1, x2, y2)
                            for lb, sc, x1, y1, x2, y2 in found
                            if sc >= threshold
                        ],
                    ),
                )
                for t, found in ride.frames
            ]
        )
    return out


class _AnalyzerReplay:
    """A ``FrameProcessor`` over recorded, already tracked detections: only the analyzer runs."""

    def __init__(self, config: Any) -> None:
        from edge.vision.ebike import EbikeAnalyzer
        from edge.vision.motion import GateDecision

        self.analyzer = EbikeAnalyzer(config)
        self.gate = GateDecision(run=True, reason="disabled")  # the recording ran the model on every frame

    def process(self, t: float, image: Any) -> Any:
        from edge.vision.pipeline import FrameResult

        detections = image  # a recorded frame: the tracked detections
        actions = self.analyzer.update(t, detections)
        return FrameResult(t=t, gate=self.gate, detections=detections, actions=actions, inference_ms=None)


def replay(
    rides: list[RecordedRide], frames: list[list[tuple[float, list[Any]]]], settings: dict[str, Any]
) -> dict[str, Any]:
    """Score one setting over every recorded ride, with the evaluation's own scoring and summary."""
    from citywatch.evaluation.rides import score_frames, summarize
    from edge.vision.config import EbikeAnalyzerConfig

    config = EbikeAnalyzerConfig(**{k: v for k, v in settings.items() if k != "score_threshold"})
    scores = [
        score_frames(
            ride_frames,
            pipeline=_AnalyzerReplay(config),
            name=f"seed-{ride.seed}",
            ride_kind=ride.kind,
            kinds=[ride.kind],
            has_ebike=ride.has_ebike,
            ebike_first_full_s=ride.ebike_first_full_s,
            ebike_first_visible_s=ride.ebike_first_visible_s,
        )
        for ride, ride_frames in zip(rides, frames, strict=True)
    ]
    summary = summarize(scores)
    return {
        **settings,
        "detection_rate": summary["detection_rate"],
        "false_alarm_rate": summary["false_alarm_rate"],
        "hold_p95_s": summary["hold_latency_s"]["p95"],
        "hold_max_s": summary["hold_latency_s"]["max"],
        "alarm_p95_s": summary["confirm_latency_s"]["p95"],
        "alarm_max_s": summary["confirm_latency_s"]["max"],
    }


def rank_key(result: dict[str, Any]) -> tuple[float, ...]:
    """Targets first: false alarms within the target, then the most rides detected, then the fastest alarm."""
    from citywatch.evaluation.rides import TARGETS

    over_budget = max(0.0, (result["false_alarm_rate"] or 0.0) - TARGETS["false_alarm_rate_max"])
    alarm_p95 = result["alarm_p95_s"] if result["alarm_p95_s"] is not None else float("inf")
    return (over_budget, -(result["detection_rate"] or 0.0), result["false_alarm_rate"] or 0.0, alarm_p95)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.ebike.tune", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=Path("models/ebike-detector.onnx"),
        help="ONNX detector (default: %(default)s)",
    )
    parser.add_argument("--rides", type=int, default=160, help="validation rides (default: %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=VALIDATION_SEED, help="first validation seed (default: %(default)s)"
    )
    parser.add_argument("--fps", type=float, default=15.0, help="simulated frame rate (default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes recording rides, one onnxruntime thread each"
    )
    parser.add_argument(
        "--recording",
        type=Path,
        default=None,
        help="recorded detections: replayed when the file exists (same model and rides), else written",
    )
    parser.add_argument("--top", type=int, default=10, help="settings to print (default: %(default)s)")
    args = parser.parse_args(argv)
    if 95_000_000 <= args.seed < 95_000_000 + 10_000:
        parser.error("seeds 95,000,000.. are the held-out rides: tune on other seeds")

    source = recording_source(args.model, rides=args.rides, seed=args.seed, fps=args.fps)
    if args.recording is not None and args.recording.is_file():
        rides = load_recording(args.recording, source)
        print(f"reusing {len(rides)} recorded rides from {args.recording}", flush=True)
    else:
        rides = record(args.model, args.rides, args.seed, args.fps, args.workers)
        if args.recording is not None:
            save_recording(args.recording, rides, source)
    names = list(GRID)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*GRID.values())]
    combos = [c for c in combos if c["provisional_score"] >= c["score_threshold"]]
    started = time.monotonic()
    results = []
    by_threshold = {threshold: tracked(rides, threshold) for threshold in GRID["score_threshold"]}
    for done, settings in enumerate(combos, 1):
        results.append(replay(rides, by_threshold[settings["score_threshold"]], settings))
        if done % 100 == 0:
            print(f"replayed {done}/{len(combos)} settings ({time.monotonic() - started:.0f}s)", flush=True)
    results.sort(key=rank_key)
    for result in results[: args.top]:
        print(json.dumps(result))
    print(json.dumps({"rides": len(rides), "settings_tried": len(results), "best": results[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
