"""Rendering a scenario to frames, to a video file with its ground-truth JSON, and reading that back."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2

from simulators.facade.render import FacadeRenderer, FrameTruth, Image
from simulators.facade.scenario import TRUTH_FORMAT, Scenario, truth_document

DEFAULT_FPS = 25.0


def frame_count(scenario: Scenario, fps: float) -> int:
    return math.floor(scenario.duration_s * fps + 1e-9)


def iter_frames(
    scenario: Scenario, *, fps: float = DEFAULT_FPS, size: tuple[int, int] = (1920, 1080)
) -> Iterator[tuple[float, Image, FrameTruth]]:
    """``(t_seconds, BGR frame, FrameTruth)`` for every frame ``i / fps`` of the scenario, as fast as it renders."""
    renderer = FacadeRenderer(scenario, size, fps)
    for index in range(frame_count(scenario, fps)):
        image, truth = renderer.render(index)
        yield truth.t, image, truth


def write_scenario_video(
    scenario: Scenario,
    path: str | Path,
    *,
    fps: float = DEFAULT_FPS,
    size: tuple[int, int] = (1920, 1080),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the video (``.mp4``: mp4v, ``.avi``: MJPG) and ``<stem>.json``; returns the JSON path.

    ``progress(frames_done, frames_total)`` is called every second of video.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise OSError(
            f"OpenCV cannot write a video to {path}: use a .mp4 or .avi name in a writable directory"
        )
    total = frame_count(scenario, fps)
    step = max(1, round(fps))
    try:
        for _, image, truth in iter_frames(scenario, fps=fps, size=size):
            writer.write(image)
            if progress is not None and ((truth.index + 1) % step == 0 or truth.index + 1 == total):
                progress(truth.index + 1, total)
    finally:
        writer.release()
    document = {"video": path.name, **truth_document(scenario, size, fps)}
    truth_path = path.with_suffix(".json")
    truth_path.write_text(json.dumps(document, indent=1))
    return truth_path


def read_facade_truth(path: str | Path) -> dict[str, Any]:
    """A ``citywatch-facade-truth/1`` document (docs/evaluation.md), checked for its required fields."""
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or document.get("format") != TRUTH_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{path}: not a {TRUTH_FORMAT} ground-truth file (format={found!r})")
    missing = [key for key in ("fps", "width", "height", "throws", "calibration") if key not in document]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    for index, throw in enumerate(document["throws"]):
        lacking = [key for key in ("floor", "start_s", "impact_s") if key not in throw]
        if lacking:
            raise ValueError(f"{path}: throws[{index}] lacks {', '.join(lacking)}")
    return document
