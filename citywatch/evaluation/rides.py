"""Event-level scoring of the e-bike guard on rides: simulated (default) or video files with ground truth.

Every ride runs through the same ``VisionPipeline`` the elevator agent runs (motion gate, detector,
tracker, zones, analyzer), fast-forward on the ride's own clock, so the latencies are in simulated
(or video) time and the figures do not depend on how busy the machine is. One detector is loaded per
worker process; every ride gets a fresh gate, tracker and analyzer.

Per ride: did the door get a provisional hold, was the ``ebike_in_elevator`` event raised, and when,
relative to the e-bike's first full appearance (``ebike_first_visible_s``: wholly inside the car and
in view, and at least half of it not hidden; see ``simulators.elevator.ride``). A hold or an
alarm before that moment (the detector saw a partly visible e-bike) counts as 0 s. The latencies from
the geometric instant alone (``ebike_first_full_s``, occlusion ignored) are reported beside them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.vision.config import CameraConfig, DetectorConfig, ElevatorConfig, SimulatorSourceConfig
from edge.vision.detector import Detector
from edge.vision.pipeline import FrameResult, VisionPipeline, detector_options
from edge.vision.types import Detection

DEFAULT_MODEL = Path("models/ebike-detector.onnx")
# Held-out seeds: training scenes use run_seed * 1,000,000 + i with run_seed < 90 and the model's
# held-out stills 90,000,000 + i (models/ebike/data.py); rides start beyond both.
DEFAULT_SEED = 95_000_000
DEFAULT_RIDES = 200
# Rides are rendered at 320x180 (720p / 4) to score 200 rides in minutes on 2 cores: the renderer's
# cost grows with pixels, and the detector letterboxes every frame to its small square input (256-320)
# anyway, so a 720p frame would be shrunk to about this before the model sees it.
DEFAULT_SIZE = (320, 180)
DEFAULT_FPS = 15.0
TARGETS = {
    "detection_rate_min": 0.95,
    "false_alarm_rate_max": 0.02,
    "hold_latency_s_max": 1.0,
    "confirm_latency_s_max": 3.0,
}


@dataclass(frozen=True, slots=True)
class RideScore:
    name: str
    ride_kind: str  # the simulator's ride kind, or "video"
    kinds: list[str]
    has_ebike: bool
    held: bool
    alarmed: bool
    hold_latency_s: float | None
    confirm_latency_s: float | None
    frames: int
    inferences: int
    ebike_first_full_s: float | None = None
    ebike_first_visible_s: float | None = None
    hold_t: float | None = None
    alarm_t: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class RideJob:
    """One ride to score: a simulator seed+kind, or a video file with its ground-truth JSON."""

    name: str
    seed: int | None = None
    kind: str | None = None
    video: str | None = None
    truth: str | None = None


@dataclass
class _Worker:
    config: ElevatorConfig
    size: tuple[int, int]
    fps: float
    oracle: bool = False
    detector: Detector | None = field(default=None)


_WORKER: _Worker | None = None


def _init_worker(config_json: str, size: tuple[int, int], fps: float, oracle: bool = False) -> None:
    global _WORKER
    config = ElevatorConfig.model_validate_json(config_json)
    _WORKER = _Worker(config=config, size=size, fps=fps, oracle=oracle)
    if not oracle:
        _WORKER.detector = Detector.load(detector_options(config))


class _OracleDetector:
    """The renderer's ground-truth boxes as detections (score 1): the analyzer's upper bound."""

    def __init__(self) -> None:
        self.truth: Any = None
        self.last_inference_ms = 0.0

    def detect(self, frame: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        boxes = self.truth.boxes if self.truth is not None else []
        return [Detection(b.cls, 1.0, b.x1, b.y1, b.x2, b.y2) for b in boxes]


class FrameProcessor(Protocol):
    """What scoring needs of a pipeline: the actions (and whether the model ran) per frame."""

    def process(self, t: float, image: Any) -> FrameResult: ...


def score_frames(
    frames: Iterable[tuple[float, Any]],
    *,
    pipeline: FrameProcessor,
    name: str,
    ride_kind: str,
    kinds: list[str],
    has_ebike: bool,
    ebike_first_full_s: float | None,
    ebike_first_visible_s: float | Callable[[], float | None] | None,
) -> RideScore:
    """Run one ride's frames through a fresh pipeline; note the first hold and the first alarm.

    A frame is whatever the pipeline takes: an image for ``VisionPipeline``, recorded detections for
    the threshold tuner's replay (``models.ebike.tune``). ``ebike_first_visible_s`` (the latency
    reference) may be a function, asked once the frames are done: a simulated ride finds it while
    it renders them."""
    started = time.perf_counter()
    hold_t = alarm_t = None
    count = inferences = 0
    for t, image in frames:
        result = pipeline.process(t, image)
        count += 1
        inferences += result.inference_ms is not None
        for action in result.actions:
            if action.kind == "hold_door" and hold_t is None:
                hold_t = action.t
            elif action.kind == "event_new" and alarm_t is None:
                alarm_t = action.t

    first_visible = ebike_first_visible_s() if callable(ebike_first_visible_s) else ebike_first_visible_s
    reference = first_visible if has_ebike else None

    return RideScore(
        name=name,
        ride_kind=ride_kind,
        kinds=kinds,
        has_ebike=has_ebike,
        held=hold_t is not None,
        alarmed=alarm_t is not None,
        hold_latency_s=_seconds_after(hold_t, reference),
        confirm_latency_s=_seconds_after(alarm_t, reference),
        frames=count,
        inferences=inferences,
        ebike_first_full_s=ebike_first_full_s,
        ebike_first_visible_s=first_visible,
        hold_t=hold_t,
        alarm_t=alarm_t,
        seconds=round(time.perf_counter() - started, 3),
    )


def _seconds_after(at: float | None, reference: float | None) -> float | None:
    """A latency: ``at`` minus ``reference``, 0 when ``at`` came first (the e-bike was recognised early)."""
    if at is None or reference is None:
        return None
    return round(max(0.0, at - reference), 3)


def _video_frames(path: str) -> Iterator[tuple[float, np.ndarray]]:
    from edge.vision.sources import OpenCvSource

    source = OpenCvSource(path, live=False)
    source.open()
    try:
        while (frame := source.read()) is not None:
            yield frame.t, frame.image
    finally:
        source.close()


def _score_job(job: RideJob) -> RideScore:
    assert _WORKER is not None, "worker not initialised"
    oracle = _OracleDetector() if _WORKER.oracle else None
    detector: Any = oracle or _WORKER.detector
    pipeline = VisionPipeline.from_config(_WORKER.config, detector=detector)
    if job.video is not None:
        if oracle is not None:
            raise ValueError("--oracle needs simulated rides (their per-frame truth)")
        from simulators.elevator import read_ride_truth

        truth = read_ride_truth(Path(job.truth or f"{job.video}.json"))
        frames: Iterable[tuple[float, np.ndarray]] = _video_frames(job.video)
        first_visible: float | Callable[[], float | None] | None = truth.ebike_first_visible_s
    else:
        from simulators.elevator import FirstVisibleWatch, iter_ride_frames, make_ride

        assert job.seed is not None, "a simulated ride needs a seed"
        ride = make_ride(job.seed, job.kind)
        truth = ride.truth
        size, fps = _WORKER.size, _WORKER.fps
        watch = FirstVisibleWatch(truth.ebike_first_full_s)

        def rendered() -> Iterator[tuple[float, np.ndarray]]:
            for t, image, frame_truth in iter_ride_frames(ride, fps=fps, size=size):
                watch.observe(frame_truth)
                if oracle is not None:
                    oracle.truth = frame_truth
                yield t, image

        def seen() -> float | None:
            return watch.seen_s  # known once the frames are rendered

        frames, first_visible = rendered(), seen
    return score_frames(
        frames,
        pipeline=pipeline,
        name=job.name,
        ride_kind=job.kind or ("video" if job.video else "random"),
        kinds=list(truth.kinds),
        has_ebike=bool(truth.has_ebike),
        ebike_first_full_s=truth.ebike_first_full_s,
        ebike_first_visible_s=first_visible,
    )


def simulated_jobs(rides: int, seed: int, kinds: list[str] | None = None) -> list[RideJob]:
    """``rides`` rides cycling through every ride kind (a balanced mix), seeds ``seed``, ``seed+1``..."""
    if kinds is None:
        from simulators.elevator import RIDE_KINDS

        kinds = list(RIDE_KINDS)
    return [RideJob(name=f"seed-{seed + i}", seed=seed + i, kind=kinds[i % len(kinds)]) for i in range(rides)]


def video_jobs(directory: Path) -> list[RideJob]:
    """Every video in ``directory`` with a ``<video>.json`` ground-truth file beside it."""
    videos = sorted(
        p for p in directory.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov") and p.is_file()
    )
    if not videos:
        raise FileNotFoundError(f"no video files (.mp4 .avi .mkv .mov) in {directory}")
    jobs = []
    for video in videos:
        truth = Path(f"{video}.json")
        if not truth.is_file():
            truth = video.with_suffix(".json")
        if not truth.is_file():
            raise FileNotFoundError(f"{video} has no ground truth ({video}.json, see docs/evaluation.md)")
        jobs.append(RideJob(name=video.name, video=str(video), truth=str(truth)))
    return jobs


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None, "count": 0}
    array = np.array(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "max": round(float(array.max()), 3),
        "count": len(values),
    }


def summarize(scores: list[RideScore]) -> dict[str, Any]:
    ebike = [s for s in scores if s.has_ebike]
    other = [s for s in scores if not s.has_ebike]
    detected = [s for s in ebike if s.alarmed]
    false_alarms = [s for s in other if s.alarmed]
    hold = [s.hold_latency_s for s in ebike if s.hold_latency_s is not None]
    confirm = [s.confirm_latency_s for s in ebike if s.confirm_latency_s is not None]
    by_kind: dict[str, dict[str, int]] = {}
    for score in scores:
        key = score.ride_kind if score.ride_kind != "video" else "+".join(sorted(set(score.kinds))) or "empty"
        entry = by_kind.setdefault(key, {"rides": 0, "holds": 0, "alarms": 0})
        entry["rides"] += 1
        entry["holds"] += score.held
        entry["alarms"] += score.alarmed
    detection_rate = len(detected) / len(ebike) if ebike else None
    false_alarm_rate = len(false_alarms) / len(other) if other else None
    hold_stats, confirm_stats = _percentiles(hold), _percentiles(confirm)
    geometric_hold = [_seconds_after(s.hold_t, s.ebike_first_full_s) for s in ebike]
    geometric_confirm = [_seconds_after(s.alarm_t, s.ebike_first_full_s) for s in ebike]
    frames = sum(s.frames for s in scores)
    summary: dict[str, Any] = {
        "rides": len(scores),
        "ebike_rides": len(ebike),
        "ebike_rides_detected": len(detected),
        "detection_rate": round(detection_rate, 4) if detection_rate is not None else None,
        "rides_without_ebike": len(other),
        "false_alarms": len(false_alarms),
        "false_alarm_rate": round(false_alarm_rate, 4) if false_alarm_rate is not None else None,
        "false_door_holds": sum(s.held for s in other),
        "hold_latency_s": hold_stats,
        "confirm_latency_s": confirm_stats,
        # Occlusion ignored: from the instant the whole e-bike is inside and in view, seen or hidden.
        "latency_from_whole_in_view_s": {
            "hold": _percentiles([v for v in geometric_hold if v is not None]),
            "confirm": _percentiles([v for v in geometric_confirm if v is not None]),
        },
        "never_half_visible": [s.name for s in ebike if s.ebike_first_visible_s is None],
        "by_kind": dict(sorted(by_kind.items())),
        "missed": [s.name for s in ebike if not s.alarmed],
        "false_alarm_rides": [s.name for s in false_alarms],
        "frames": frames,
        "inferences": sum(s.inferences for s in scores),
        "targets": TARGETS,
    }
    summary["meets_targets"] = bool(
        detection_rate is not None
        and detection_rate >= TARGETS["detection_rate_min"]
        and (false_alarm_rate or 0.0) <= TARGETS["false_alarm_rate_max"]
        and hold_stats["max"] is not None
        and hold_stats["max"] <= TARGETS["hold_latency_s_max"]
        and confirm_stats["max"] is not None
        and confirm_stats["max"] <= TARGETS["confirm_latency_s_max"]
    )
    return summary


def default_elevator_config(model: Path) -> ElevatorConfig:
    return ElevatorConfig(
        camera=CameraConfig(source=SimulatorSourceConfig(realtime=False)),
        detector=DetectorConfig(model=model),
    )


def evaluate_rides(
    jobs: list[RideJob],
    *,
    config: ElevatorConfig,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: float = DEFAULT_FPS,
    workers: int = 2,
    progress: Callable[[str], None] | None = None,
    scores_out: Path | None = None,
    oracle: bool = False,
) -> dict[str, Any]:
    """Score every job (in ``workers`` processes, one onnxruntime thread each) and summarize.

    ``oracle``: the renderer's truth boxes replace the detector, to score the analyzer alone.
    """
    if not oracle:
        Detector.load(detector_options(config))  # fail here, clearly, not in a worker
    say = progress or (lambda line: None)
    started = time.perf_counter()
    scores: list[RideScore] = []
    init_args = (config.model_dump_json(), size, fps, oracle)
    if workers <= 1:
        _init_worker(*init_args)
        results: Iterable[RideScore] = map(_score_job, jobs)
        pool = None
    else:
        # spawn: never fork a process that has onnxruntime/OpenCV thread pools loaded.
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=init_args
        )
        results = pool.map(_score_job, jobs)
    try:
        for index, score in enumerate(results, start=1):
            scores.append(score)
            outcome = "ALARM" if score.alarmed else ("hold" if score.held else "quiet")
            verdict = "ok" if score.alarmed == score.has_ebike else "WRONG"
            if verdict == "WRONG" or index % 10 == 0 or index == len(jobs):
                elapsed = time.perf_counter() - started
                say(
                    f"ride {index}/{len(jobs)} {score.name} {score.ride_kind}: {outcome} ({verdict}); "
                    f"{elapsed:.0f}s elapsed, ETA {elapsed / index * (len(jobs) - index):.0f}s"
                )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if scores_out is not None:
        scores_out.write_text(json.dumps([asdict(s) for s in scores], indent=1))
    summary = summarize(scores)
    elapsed = time.perf_counter() - started
    summary.update(
        {
            "model": "oracle (ground-truth boxes)" if oracle else str(config.detector.model),
            "model_bytes": 0 if oracle else os.path.getsize(config.detector.model),
            "render_size": f"{size[0]}x{size[1]}",
            "fps": fps,
            "workers": workers,
            "elapsed_s": round(elapsed, 1),
            "ms_per_frame": round(elapsed * 1000 * max(1, workers) / max(1, summary["frames"]), 2),
        }
    )
    return summary
