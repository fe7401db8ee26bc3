"""Rendering a scenario to frames, to a video file or a frame directory with its truth JSON, and reading that back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2

from simulators.street.render import FrameTruth, Image, StreetRenderer
from simulators.street.scenario import Scenario, StreetRules
from simulators.street.truth import TRUTH_FORMAT, frame_count, truth_document

DEFAULT_FPS = 10.0
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}


def iter_frames(
    scenario: Scenario,
    *,
    fps: float = DEFAULT_FPS,
    size: tuple[int, int] = (1920, 1080),
    speed: float = 1.0,
    visibility: bool = True,
) -> Iterator[tuple[float, Image, FrameTruth]]:
    """``(scenario seconds, BGR frame, FrameTruth)`` for frame ``k`` at ``k * speed / fps``, as fast as it renders.

    ``visibility=False`` leaves the per-frame share in sight out of the truth (a little faster)."""
    renderer = StreetRenderer(scenario, size, fps, speed=speed, visibility=visibility)
    for index in range(frame_count(scenario, fps, speed)):
        image, truth = renderer.render(index)
        yield truth.t, image, truth


def write_scenario_video(
    scenario: Scenario,
    path: str | Path,
    *,
    fps: float = DEFAULT_FPS,
    size: tuple[int, int] = (1920, 1080),
    speed: float = 1.0,
    rules: StreetRules | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``path`` (``.mp4``: mp4v, ``.avi``: MJPG; no suffix: a directory of JPEG frames
    ``000000.jpg``...) and the truth ``<stem>.json`` beside it; returns the JSON path.

    ``progress(frames_done, frames_total)`` is called every second of video."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    frames_dir = suffix == ""
    writer: cv2.VideoWriter | None = None
    if frames_dir:
        path.mkdir(exist_ok=True)
    elif suffix in VIDEO_SUFFIXES:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*VIDEO_SUFFIXES[suffix]), fps, size)
        if not writer.isOpened():
            raise OSError(
                f"OpenCV cannot write a video to {path}: use a .mp4 or .avi name in a writable directory"
            )
    else:
        raise ValueError(
            f"{path}: write a .mp4 or .avi video, or a frame directory (a name without a suffix)"
        )
    total = frame_count(scenario, fps, speed)
    step = max(1, round(fps))
    try:
        for _, image, truth in iter_frames(scenario, fps=fps, size=size, speed=speed, visibility=False):
            if writer is not None:
                writer.write(image)
            else:
                cv2.imwrite(str(path / f"{truth.index:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            done = truth.index + 1
            if progress is not None and (done % step == 0 or done == total):
                progress(done, total)
    finally:
        if writer is not None:
            writer.release()
    key = "frames_dir" if frames_dir else "video"
    document = {key: path.name, **truth_document(scenario, size, fps, speed=speed, rules=rules)}
    truth_path = path.with_suffix(".json") if not frames_dir else path.parent / f"{path.name}.json"
    truth_path.write_text(json.dumps(document, indent=1, ensure_ascii=False))
    return truth_path


def read_street_truth(path: str | Path) -> dict[str, Any]:
    """A ``citywatch-street-truth/1`` document (docs/evaluation.md), checked for what scoring needs."""
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or document.get("format") != TRUTH_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{path}: not a {TRUTH_FORMAT} ground-truth file (format={found!r})")
    missing = [key for key in ("fps", "width", "height", "zones", "stops") if key not in document]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    for index, zone in enumerate(document["zones"]):
        lacking = [key for key in ("name", "polygon") if key not in zone]
        if lacking:
            raise ValueError(f"{path}: zones[{index}] lacks {', '.join(lacking)}")
    for index, stop in enumerate(document["stops"]):
        lacking = [key for key in ("vehicle_id", "zone", "start_s", "end_s") if key not in stop]
        if lacking:
            raise ValueError(f"{path}: stops[{index}] lacks {', '.join(lacking)}")
    return document
