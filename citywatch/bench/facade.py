"""Facade benchmark: can one core keep up with a 1920x1080 25 fps camera looking up a tower?

``bench_facade()`` renders a seeded facade scenario once (a busy facade with one throw) and encodes it
to MJPEG in a temp dir, so reading it costs a real decode as a camera stream would. Then, in a fresh
process pinned to ONE CPU with OpenCV on one thread, it measures in the same run:

- the reference: frames/s of a bare decode of the same stream,
- the analyzer (decode, then motion/background, blobs, tracking, fit): frames/s achieved, its ratio to
  the bare decode, ms per stage per frame, and whether it keeps up with 25 fps,

and in another fresh process the facade agent itself (file source, real MQTT uplink to a Mosquitto the
bench starts) on the same clip: its peak RSS against the 300 MB budget.

Stages are timed by wrapping the analyzer's own steps (edge/facade/detect.py) on the instance, so the
analyzer runs unchanged: motion/background is grey conversion + shake estimate + background model;
blobs is the rest of ``MotionDetector.detect`` (masks, foreground count, connected components); fit is
judging ended tracks; tracking is the remainder of ``FacadeAnalyzer.process``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from citywatch.bench.process import bare_decode_s_per_frame, in_fresh_process, pin_to_one_cpu

TARGET_FPS = 25.0
RSS_BUDGET_MB = 300.0
DEFAULT_SEED = 12  # a 23-floor tower; the throw falls inside the first 10 s
MIN_SCENARIO_S = 8.0  # a scenario with a throw needs a lead, the fall and a tail


def bench_scenario(seed: int, seconds: float) -> Any:
    """A busy clear day (birds, leaves, insects, clouds) with one object thrown."""
    from simulators.facade import make_scenario

    return make_scenario(
        seed,
        duration_s=max(seconds, MIN_SCENARIO_S),
        throws=1,
        time_of_day="day",
        weather="clear",
        distractor_rate=1.0,
    )


def facade_section(scenario: Any, size: tuple[int, int], fps: float, clip: Path) -> dict[str, Any]:
    """The device's ``facade`` config section for a simulated building, calibrated as an installer would
    (the one mapping ``citywatch eval throwing`` uses), reading ``clip`` as fast as it decodes."""
    from citywatch.evaluation.facade_config import analyzer_config_from_truth
    from simulators.facade import truth_document

    source = {"kind": "file", "path": str(clip), "realtime": False}
    config = analyzer_config_from_truth(
        truth_document(scenario, size, fps), video=clip, overrides={"camera": {"source": source}}
    )
    return config.model_dump(mode="json", exclude_none=True)


def render_clip(path: Path, scenario: Any, *, frames: int, size: tuple[int, int], fps: float) -> Path:
    """The first ``frames`` frames of ``scenario`` as an MJPEG AVI."""
    import cv2

    from simulators.facade import iter_frames

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPEG to {path}")
    try:
        for index, (_t, image, _truth) in enumerate(iter_frames(scenario, fps=fps, size=size)):
            if index >= frames:
                break
            writer.write(image)
    finally:
        writer.release()
    return path


class _StageClock:
    """Wraps the analyzer's steps on the instance and adds up their milliseconds."""

    def __init__(self, analyzer: Any) -> None:
        self.ms: dict[str, float] = dict.fromkeys(("grey", "shake", "background", "detect", "fit"), 0.0)
        detector = analyzer.detector
        detector._prepare = self._timed("grey", detector._prepare)
        detector._shake = self._timed("shake", detector._shake)
        detector.detect = self._timed("detect", detector.detect)
        analyzer._judge = self._timed("fit", analyzer._judge)
        make_background = detector._new_background
        detector._new_background = lambda: _TimedBackground(make_background(), self)
        detector._background = _TimedBackground(detector._background, self)

    def _timed(self, stage: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                self.ms[stage] += (time.perf_counter() - started) * 1000

        return timed


class _TimedBackground:
    """A background model (OpenCV's MOG2 or the project's Gaussian) whose ``apply`` is timed."""

    def __init__(self, model: Any, clock: _StageClock) -> None:
        self.model = model
        self.clock = clock

    def apply(self, grey: Any, learningRate: float = -1) -> Any:  # OpenCV's keyword name
        started = time.perf_counter()
        try:
            return self.model.apply(grey, learningRate=learningRate)
        finally:
            self.clock.ms["background"] += (time.perf_counter() - started) * 1000


def _measure_analyzer(clip: str, facade: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Runs in a fresh process on one CPU: bare decode, then decode + analyzer, ``repeats`` times each."""
    cpu = pin_to_one_cpu()
    import cv2

    cv2.setNumThreads(1)
    from edge.facade.analyzer import FacadeAnalyzer
    from edge.facade.config import FacadeConfig

    config = FacadeConfig.model_validate(facade)

    decode_s = [bare_decode_s_per_frame(clip) for _ in range(repeats)]

    stage_ms = dict.fromkeys(("decode", "motion_background", "blobs", "tracking", "fit"), 0.0)
    motion_parts = dict.fromkeys(("grey", "shake", "background"), 0.0)
    per_frame_s = []
    frames = 0
    throws: list[list[dict[str, Any]]] = []
    for _ in range(repeats):
        analyzer = FacadeAnalyzer(config)
        clock = _StageClock(analyzer)
        capture = cv2.VideoCapture(clip)
        process_ms = decode_ms = 0.0
        count = 0
        found_here: list[Any] = []
        started = time.perf_counter()
        while True:
            before = time.perf_counter()
            ok, image = capture.read()
            if not ok:
                break
            decoded = time.perf_counter()
            found = analyzer.process(count / config.camera.fps, image)
            process_ms += (time.perf_counter() - decoded) * 1000
            decode_ms += (decoded - before) * 1000
            found_here += found
            count += 1
        per_frame_s.append((time.perf_counter() - started) / count)
        capture.release()
        motion = clock.ms["grey"] + clock.ms["shake"] + clock.ms["background"]
        stage_ms["decode"] += decode_ms
        stage_ms["motion_background"] += motion
        stage_ms["blobs"] += clock.ms["detect"] - motion
        stage_ms["fit"] += clock.ms["fit"]
        stage_ms["tracking"] += process_ms - clock.ms["detect"] - clock.ms["fit"]
        for part in motion_parts:
            motion_parts[part] += clock.ms[part]
        frames += count
        found_here += analyzer.flush()  # after the figures: judging what the end of the file left open
        throws.append([{"floor": d.floor, "column": d.column} for d in found_here])

    decode_fps = 1.0 / statistics.median(decode_s)
    analyzer_fps = 1.0 / statistics.median(per_frame_s)
    return {
        "cpu_pinned": cpu,
        "frames_per_run": frames // repeats,
        "runs": repeats,
        "reference_decode_fps": round(decode_fps, 1),
        "analyzer_fps": round(analyzer_fps, 1),
        "analyzer_to_decode_ratio": round(analyzer_fps / decode_fps, 3),
        "keeps_up_with_25fps": analyzer_fps >= TARGET_FPS,
        "ms_per_frame": {stage: round(total / frames, 3) for stage, total in stage_ms.items()},
        "motion_background_ms_per_frame": {
            part: round(total / frames, 3) for part, total in motion_parts.items()
        },
        "throws_found": throws[0],  # every run sees the same frames
    }


def _measure_agent(facade: dict[str, Any], mqtt_url: str, outbox: str) -> dict[str, Any]:
    """Runs in a fresh process: the facade agent on the clip, fast-forwarded; its peak RSS."""
    from edge.config import FacadeAgentConfig, validate_config_dict
    from edge.facade.agent import FacadeAgent
    from edge.vision.health import peak_rss_mb

    config = validate_config_dict(
        {
            "kind": "facade",
            "device": {"id": "facade-bench-1", "site": "bench"},
            "mqtt": {"url": mqtt_url},
            "outbox": {"path": outbox},
            "facade": facade,  # its source: the clip, fast-forwarded (lossless)
        }
    )
    assert isinstance(config, FacadeAgentConfig)
    agent = FacadeAgent(config).start()
    try:
        if not agent.wait(600):
            raise RuntimeError("the facade agent did not finish the clip in 600 s")
    finally:
        agent.stop()
    return {
        "frames_processed": agent.frames_processed,
        "throws": len(agent.throws),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_facade(
    *,
    frames: int = 250,
    size: tuple[int, int] = (1920, 1080),
    fps: float = TARGET_FPS,
    seed: int = DEFAULT_SEED,
    repeats: int = 2,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Figures for ``citywatch bench`` (see module docstring). Renders ``frames`` frames first."""
    from citywatch.broker.mosquitto import MosquittoBroker

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        scenario = bench_scenario(seed, frames / fps)
        started = time.perf_counter()
        clip = render_clip(Path(tmp) / "facade.avi", scenario, frames=frames, size=size, fps=fps)
        render_s = time.perf_counter() - started
        facade = facade_section(scenario, size, fps, clip)
        figures = in_fresh_process(_measure_analyzer, str(clip), facade, repeats)
        broker = MosquittoBroker(data_dir=Path(tmp) / "broker").start()
        try:
            agent = in_fresh_process(_measure_agent, facade, broker.url, str(Path(tmp) / "outbox.sqlite3"))
        finally:
            broker.stop()
    in_clip = [t for t in scenario.throws if t.end_s <= frames / fps]
    figures.update(
        {
            "stream": f"{size[0]}x{size[1]} @ {fps:g} fps (simulated facade, seed {seed}, MJPEG decode)",
            "throws_in_clip": [{"floor": t.floor, "column": t.column} for t in in_clip],
            "clip_render_s": round(render_s, 1),
            "agent_peak_rss_mb": agent["peak_rss_mb"],
            "agent_frames_processed": agent["frames_processed"],
            "agent_throws": agent["throws"],
            "rss_budget_mb": RSS_BUDGET_MB,
            "within_rss_budget": agent["peak_rss_mb"] < RSS_BUDGET_MB,
        }
    )
    return figures
