"""What the camera bench suites share: a fresh process pinned to one CPU, and the bare-decode reference."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


def pin_to_one_cpu() -> int | None:
    """Pin this process to one CPU (the budget is one core of the device); the CPU, or None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def in_fresh_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``function`` in a spawned process: its peak RSS is its own, not the renderer's or the bench's."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def bare_decode_s_per_frame(clip: str) -> float:
    """Seconds per frame of decoding ``clip`` with OpenCV and nothing else: the reference of a run."""
    import cv2

    capture = cv2.VideoCapture(clip)
    started, count = time.perf_counter(), 0
    while capture.read()[0]:
        count += 1
    elapsed = time.perf_counter() - started
    capture.release()
    if count == 0:
        raise RuntimeError(f"OpenCV decoded no frame of {clip}")
    return elapsed / count
