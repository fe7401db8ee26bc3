"""Pipeline benchmark: can one core keep up with a 720p 15 fps elevator camera?

``bench_pipeline()`` renders a simulated 720p ride clip once (to an MJPEG AVI in a temp dir, so
reading it costs a real decode as a camera stream would), then in a fresh process pinned to ONE CPU
(onnxruntime and OpenCV with one thread) measures:

- the reference: frames/s of bare decode + the per-frame resize every pipeline does (no detector),
- the whole pipeline (decode, motion gate, detector, tracker, analyzer): sustained frames/s and ms per
  stage per frame, detector ms per inference, share of frames the detector ran on,
- peak RSS of that process.

The integrator calls it from ``citywatch bench``; it returns a flat-ish dict of figures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from citywatch.bench.process import in_fresh_process, pin_to_one_cpu

DEFAULT_MODEL = Path("models/ebike-detector.onnx")


def render_clip(path: Path, *, frames: int, size: tuple[int, int], fps: float, seed: int, kind: str) -> Path:
    """The first ``frames`` frames of a rendered ride (door opens, an e-bike is wheeled in)."""
    import cv2

    from simulators.elevator import iter_ride_frames, make_ride

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    try:
        for index, (_t, image, _truth) in enumerate(
            iter_ride_frames(make_ride(seed, kind), fps=fps, size=size)
        ):
            if index >= frames:
                break
            writer.write(image)
    finally:
        writer.release()
    return path


def _measure(clip: str, model: str, repeats: int) -> dict[str, Any]:
    """Runs in a fresh process on one CPU."""
    cpu = pin_to_one_cpu()
    import cv2

    cv2.setNumThreads(1)
    from edge.vision.config import CameraConfig, DetectorConfig, ElevatorConfig, FileSourceConfig
    from edge.vision.health import peak_rss_mb
    from edge.vision.pipeline import STAGES, VisionPipeline
    from edge.vision.sources import OpenCvSource

    config = ElevatorConfig(
        camera=CameraConfig(source=FileSourceConfig(path=Path(clip), realtime=False)),
        detector=DetectorConfig(model=Path(model), threads=1),
    )

    # Reference: decode + the small grey resize every frame gets, nothing else.
    reference_s = []
    for _ in range(repeats):
        source = OpenCvSource(clip, live=False)
        source.open()
        started = time.perf_counter()
        count = 0
        while (frame := source.read()) is not None:
            cv2.resize(frame.image, (160, 90), interpolation=cv2.INTER_AREA)
            count += 1
        reference_s.append((time.perf_counter() - started) / count)
        source.close()

    stage_totals = {stage: 0.0 for stage in ("decode", *STAGES)}
    inference_ms: list[float] = []
    per_frame_s = []
    frames = 0
    inferred = 0
    for _ in range(repeats):
        pipeline = VisionPipeline.from_config(config)
        source = OpenCvSource(clip, live=False)
        source.open()
        started = time.perf_counter()
        count = 0
        while True:
            before = time.perf_counter()
            frame = source.read()
            if frame is None:
                break
            stage_totals["decode"] += (time.perf_counter() - before) * 1000
            result = pipeline.process(frame.t, frame.image)
            for stage, ms in result.stage_ms.items():
                stage_totals[stage] += ms
            if result.inference_ms is not None:
                inference_ms.append(result.inference_ms)
                inferred += 1
            count += 1
        per_frame_s.append((time.perf_counter() - started) / count)
        frames += count
        source.close()

    pipeline_fps = 1.0 / statistics.median(per_frame_s)
    ordered = sorted(inference_ms)
    return {
        "cpu_pinned": cpu,
        "frames_per_run": frames // repeats,
        "runs": repeats,
        "reference_decode_resize_fps": round(1.0 / statistics.median(reference_s), 1),
        "pipeline_fps": round(pipeline_fps, 1),
        "keeps_up_with_15fps": pipeline_fps >= 15.0,
        "ms_per_frame": {stage: round(total / frames, 2) for stage, total in stage_totals.items()},
        "detector_ms_per_inference": {
            "mean": round(statistics.fmean(ordered), 2) if ordered else None,
            "p50": round(ordered[len(ordered) // 2], 2) if ordered else None,
            "p95": round(ordered[int(len(ordered) * 0.95)], 2) if ordered else None,
        },
        "detector_ran_on_fraction": round(inferred / frames, 3) if frames else 0.0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_pipeline(
    *,
    model: Path = DEFAULT_MODEL,
    frames: int = 120,
    size: tuple[int, int] = (1280, 720),
    fps: float = 15.0,
    seed: int = 96_000_000,
    kind: str = "ebike",
    repeats: int = 2,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Figures for ``citywatch bench`` (see module docstring). Renders ``frames`` frames first."""
    if not Path(model).is_file():
        from edge.vision.detector import ModelError

        raise ModelError(f"model file {model} does not exist")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        started = time.perf_counter()
        clip = render_clip(Path(tmp) / "clip.avi", frames=frames, size=size, fps=fps, seed=seed, kind=kind)
        render_s = time.perf_counter() - started
        figures = in_fresh_process(_measure, str(clip), str(model), repeats)
    figures.update(
        {
            "stream": f"{size[0]}x{size[1]} @ {fps:g} fps (simulated ride {kind}, seed {seed}, MJPEG decode)",
            "model": str(model),
            "clip_render_s": round(render_s, 1),
        }
    )
    return figures
