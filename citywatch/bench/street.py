"""Street benchmark: can one core keep up with a 1920x1080 10 fps camera over no-parking zones?

``bench_street()`` renders a seeded street scenario once (``busy_mixed``: through traffic both ways,
pedestrians, a car parking in the kerb zone; planned around a 10 s dwell and 20 s grace so its warning
and violation fall inside a short clip) and encodes it to MJPEG in a temp dir, so reading it costs a real
decode as a camera stream would. Then, in a fresh process pinned to ONE CPU with OpenCV and onnxruntime on
one thread each, it measures in the same run:

- the reference: frames/s of a bare decode of the same stream,
- the street agent's per-frame path (``StreetAgent.process``, the device's own, on the decoded frames:
  the COCO detector, colour histograms, the parking analyzer, plate reading, evidence photos): frames/s,
  its ratio to the bare decode, ms per stage per frame, and whether it keeps up with 10 fps,

and in another fresh process the street agent itself (file source, real MQTT uplink to a Mosquitto the
bench starts) on the same clip: its peak RSS against the 300 MB budget.

Stages are timed by wrapping the agent's own steps on the instance (and the colour histogram the agent
module calls), so the agent runs unchanged: ``detect`` is the detector (letterbox, inference, decoding,
NMS), ``appearance`` the vehicles' colour histograms, ``analyzer`` tracking and the cases, ``plates`` the
plate reader, ``evidence`` the photos (privacy blur, drawing, JPEG, cutting into parts); ``other`` is the
rest of ``process``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from citywatch.bench.facade import _in_fresh_process, _pin_to_one_cpu

TARGET_FPS = 10.0
RSS_BUDGET_MB = 300.0
DEFAULT_SEED = 1  # busy_mixed, a clear day: a car parks in the kerb zone 15 s in
DWELL_S, GRACE_S = 10.0, 20.0  # so the warning (25 s in) and violation (45 s in) fall in the clip
STAGES = ("decode", "detect", "appearance", "analyzer", "plates", "evidence", "other")


def bench_section(seed: int, duration_s: float) -> dict[str, Any]:
    """The simulator's source section for the bench's street."""
    return {
        "kind": "street_simulator",
        "seed": seed,
        "scenario": "busy_mixed",
        "duration_s": duration_s,
        "time_of_day": "day",
        "weather": "clear",
        "dwell_s": DWELL_S,
        "grace_s": GRACE_S,
        "realtime": False,
    }


def render_clip(path: Path, section: dict[str, Any], *, size: tuple[int, int], fps: float) -> dict[str, Any]:
    """The scenario as an MJPEG AVI; its ground truth."""
    from types import SimpleNamespace

    import cv2

    from simulators.street.frame_source import StreetSimulatorSource

    source = StreetSimulatorSource.from_config(
        section, SimpleNamespace(fps=fps, width=size[0], height=size[1])
    )
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPEG to {path}")
    source.open()
    try:
        while (frame := source.read()) is not None:
            writer.write(frame.image)
    finally:
        source.close()
        writer.release()
    return source.truth()


def street_section(truth: dict[str, Any], clip: Path, plate_reader: str) -> dict[str, Any]:
    """The device's ``street`` section for the simulated street (zones by the one mapping ``citywatch eval
    parking`` uses, the truth's 10 s dwell and 20 s grace), reading ``clip`` as fast as it decodes."""
    from citywatch.bench.runner import PROJECT_ROOT
    from citywatch.evaluation.street_config import analyzer_config_from_truth

    config = analyzer_config_from_truth(
        truth,
        video=clip,
        overrides={
            "detector": {"model": str(PROJECT_ROOT / "models" / "coco-centernet.onnx")},
            "plate": {"reader": plate_reader},
        },
    )
    return config.model_dump(mode="json", exclude_none=True)


def plate_reader_name() -> str:
    """The project's plate reader when its model files are there, else none (said in the figures)."""
    from edge.street.plates import LOCALISER_FILE, MODEL_DIR, RECOGNISER_FILE

    present = (MODEL_DIR / LOCALISER_FILE).is_file() and (MODEL_DIR / RECOGNISER_FILE).is_file()
    return "citywatch" if present else "none"


class _StageClock:
    """Wraps the agent's steps on the instance and adds up their milliseconds."""

    def __init__(self, agent: Any) -> None:
        import edge.street.agent as agent_module

        self.ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        agent.detector.detect = self._timed("detect", agent.detector.detect)
        agent.analyzer.update = self._timed("analyzer", agent.analyzer.update)
        agent.plate_reader.read = self._timed("plates", agent.plate_reader.read)
        agent._send_photo = self._timed("evidence", agent._send_photo)
        # The photo reads the plate's place in each vehicle: that is evidence, not plate reading.
        self._module = agent_module
        self._histogram = agent_module.colour_histogram
        agent_module.colour_histogram = self._timed("appearance", self._histogram)

    def restore(self) -> None:
        self._module.colour_histogram = self._histogram

    def _timed(self, stage: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                self.ms[stage] += (time.perf_counter() - started) * 1000

        return timed


class _Uplink:
    """Counts what the agent sends (the per-frame path without the network)."""

    queue_depth = 0
    refusals_received = 0

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, channel: Any, message: Any) -> None:
        name = str(getattr(channel, "value", channel))
        self.sent[name] = self.sent.get(name, 0) + 1


def _agent_config(street: dict[str, Any], mqtt_url: str, outbox: str) -> Any:
    from edge.config import StreetAgentConfig, validate_config_dict

    config = validate_config_dict(
        {
            "kind": "street",
            "device": {"id": "street-bench-1", "site": "bench"},
            "mqtt": {"url": mqtt_url},
            "outbox": {"path": outbox},
            "street": street,  # its source: the clip, fast-forwarded (lossless)
        }
    )
    assert isinstance(config, StreetAgentConfig)
    return config


def _measure_agent_path(clip: str, street: dict[str, Any], repeats: int, outbox: str) -> dict[str, Any]:
    """Runs in a fresh process on one CPU: bare decode, then decode + the agent's per-frame path."""
    cpu = _pin_to_one_cpu()
    import cv2

    cv2.setNumThreads(1)
    from edge.street.agent import StreetAgent
    from edge.vision.sources import OpenCvSource

    config = _agent_config(street, "mqtt://127.0.0.1:1", outbox)

    def decode_only() -> float:
        capture = cv2.VideoCapture(clip)
        started, count = time.perf_counter(), 0
        while capture.read()[0]:
            count += 1
        elapsed = time.perf_counter() - started
        capture.release()
        if count == 0:
            raise RuntimeError(f"OpenCV decoded no frame of {clip}")
        return elapsed / count

    decode_s = [decode_only() for _ in range(repeats)]
    stage_ms = dict.fromkeys(STAGES, 0.0)
    per_frame_s = []
    frames = 0
    sent: dict[str, int] = {}
    stages_seen: list[list[str]] = []
    for _ in range(repeats):
        source = OpenCvSource(clip, live=False, fps=config.street.camera.fps)
        uplink = _Uplink()
        agent = StreetAgent(config, uplink=uplink, source=source)
        clock = _StageClock(agent)
        process_ms = decode_ms = 0.0
        count = 0
        source.open()
        started = time.perf_counter()
        try:
            while True:
                before = time.perf_counter()
                frame = source.read()
                if frame is None:
                    break
                decoded = time.perf_counter()
                agent.process(frame)
                process_ms += (time.perf_counter() - decoded) * 1000
                decode_ms += (decoded - before) * 1000
                count += 1
        finally:
            source.close()
            clock.restore()
        per_frame_s.append((time.perf_counter() - started) / count)
        named = sum(clock.ms[s] for s in ("detect", "appearance", "analyzer", "plates", "evidence"))
        for stage in ("detect", "appearance", "analyzer", "plates", "evidence"):
            stage_ms[stage] += clock.ms[stage]
        stage_ms["decode"] += decode_ms
        stage_ms["other"] += process_ms - named
        frames += count
        sent = uplink.sent
        stages_seen.append([a.stage for a in agent.actions])
    decode_fps = 1.0 / statistics.median(decode_s)
    agent_fps = 1.0 / statistics.median(per_frame_s)
    return {
        "cpu_pinned": cpu,
        "frames_per_run": frames // repeats,
        "runs": repeats,
        "reference_decode_fps": round(decode_fps, 1),
        "agent_path_fps": round(agent_fps, 1),
        "agent_path_to_decode_ratio": round(agent_fps / decode_fps, 3),
        "keeps_up_with_10fps": agent_fps >= TARGET_FPS,
        "ms_per_frame": {stage: round(total / frames, 3) for stage, total in stage_ms.items()},
        "cases": stages_seen[0],  # every run sees the same frames
        "messages_sent": sent,
    }


def _measure_agent(street: dict[str, Any], mqtt_url: str, outbox: str) -> dict[str, Any]:
    """Runs in a fresh process: the street agent on the clip, fast-forwarded; its peak RSS."""
    from edge.street.agent import StreetAgent
    from edge.vision.health import peak_rss_mb

    agent = StreetAgent(_agent_config(street, mqtt_url, outbox)).start()
    try:
        if not agent.wait(600):
            raise RuntimeError("the street agent did not finish the clip in 600 s")
    finally:
        agent.stop()
    return {
        "frames_processed": agent.frames_processed,
        "cases": [a.stage for a in agent.actions],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_street(
    *,
    seconds: float = 50.0,
    size: tuple[int, int] = (1920, 1080),
    fps: float = TARGET_FPS,
    seed: int = DEFAULT_SEED,
    repeats: int = 2,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Figures for ``citywatch bench`` (see module docstring). Renders ``seconds`` of street first."""
    from citywatch.broker.mosquitto import MosquittoBroker

    reader = plate_reader_name()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        section = bench_section(seed, seconds)
        started = time.perf_counter()
        clip = Path(tmp) / "street.avi"
        truth = render_clip(clip, section, size=size, fps=fps)
        render_s = time.perf_counter() - started
        street = street_section(truth, clip, reader)
        figures = _in_fresh_process(
            _measure_agent_path, str(clip), street, repeats, str(Path(tmp) / "path-outbox.sqlite3")
        )
        broker = MosquittoBroker(data_dir=Path(tmp) / "broker").start()
        try:
            agent = _in_fresh_process(_measure_agent, street, broker.url, str(Path(tmp) / "outbox.sqlite3"))
        finally:
            broker.stop()
    due = [
        (s["warning_at_s"], s["violation_at_s"])
        for s in truth["stops"]
        if s["warning"] and s["warning_at_s"] <= seconds
    ]
    figures.update(
        {
            "stream": f"{size[0]}x{size[1]} @ {fps:g} fps (simulated street, busy_mixed seed {seed}, MJPEG decode)",
            "detector": str(street["detector"]["model"]),
            "plate_reader": reader,
            "truth_warnings_in_clip": [{"warning_at_s": w, "violation_at_s": v} for w, v in due],
            "clip_render_s": round(render_s, 1),
            "agent_peak_rss_mb": agent["peak_rss_mb"],
            "agent_frames_processed": agent["frames_processed"],
            "agent_cases": agent["cases"],
            "rss_budget_mb": RSS_BUDGET_MB,
            "within_rss_budget": agent["peak_rss_mb"] < RSS_BUDGET_MB,
        }
    )
    return figures
