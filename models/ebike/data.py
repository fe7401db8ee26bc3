"""Rendering the synthetic still dataset once to a cache, and loading it with augmentation.

Scenes are seeded: training scene ``i`` of run seed ``s`` uses seed ``s * 1_000_000 + i``; held-out
scene ``i`` uses ``HELDOUT_SEED + i`` (90,000,000+), which no training seed below 90 can reach. Every
scene renders ``STILLS_PER_SCENE`` pictures of one car from one camera pose.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from simulators.elevator import LABELLED_CLASSES
from simulators.elevator.scenes import render_stills

LABELS: tuple[str, ...] = LABELLED_CLASSES
STILLS_PER_SCENE = 8
HELDOUT_SEED = 90_000_000
RENDER_VERSION = 4  # bump when the renderer or the still mix changes so caches are rebuilt
LETTERBOX_PAD = 114  # as the runtime's letterbox (edge.vision.detector)


@dataclass(frozen=True)
class Sample:
    jpeg: bytes
    # [M, 5]: class index, x1, y1, x2, y2 in the image's pixels.
    boxes: np.ndarray


def _render_scene(job: tuple[int, int]) -> list[tuple[bytes, list[list[float]]]]:
    seed, count = job
    out = []
    for image, boxes in render_stills(seed, count):
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        rows = [[float(LABELS.index(b.cls)), b.x1, b.y1, b.x2, b.y2] for b in boxes]
        out.append((encoded.tobytes(), rows))
    return out


def render_dataset(
    directory: Path,
    scene_seeds: list[int],
    images: int,
    *,
    workers: int,
    say: Callable[[str], None],
) -> list[Sample]:
    """Render (or reuse from ``directory``) ``images`` stills from ``scene_seeds``."""
    index_path = directory / "labels.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        if index.get("render_version") == RENDER_VERSION and len(index["items"]) == images:
            say(f"reusing {images} rendered images in {directory}")
            return [
                Sample(
                    (directory / item["file"]).read_bytes(),
                    np.asarray(item["boxes"], np.float32).reshape(-1, 5),
                )
                for item in index["items"]
            ]
    directory.mkdir(parents=True, exist_ok=True)
    jobs = []
    remaining = images
    for seed in scene_seeds:
        if remaining <= 0:
            break
        count = min(STILLS_PER_SCENE, remaining)
        jobs.append((seed, count))
        remaining -= count
    items: list[dict[str, object]] = []
    samples = []
    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=max(1, workers)) as pool:
        for results in pool.imap(_render_scene, jobs, chunksize=1):
            for jpeg, rows in results:
                name = f"{len(items):06d}.jpg"
                (directory / name).write_bytes(jpeg)
                items.append({"file": name, "boxes": rows})
                samples.append(Sample(jpeg, np.asarray(rows, np.float32).reshape(-1, 5)))
            done = len(items)
            if done % 400 < STILLS_PER_SCENE or done == images:
                elapsed = time.monotonic() - started
                eta = elapsed / done * (images - done)
                say(f"rendered {done}/{images} images ({elapsed:.0f}s, ETA {eta:.0f}s)")
    index_path.write_text(json.dumps({"render_version": RENDER_VERSION, "labels": LABELS, "items": items}))
    return samples


def render_heldout(cache: Path, images: int, *, workers: int, say: Callable[[str], None]) -> list[Sample]:
    """The held-out stills (scene seeds from ``HELDOUT_SEED``), rendered once into ``cache``."""
    seeds = [HELDOUT_SEED + i for i in range(images)]
    return render_dataset(cache / f"heldout-{images}", seeds, images, workers=workers, say=say)


def decode(sample: Sample) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(sample.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def letterbox_boxes(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred letterbox, exactly as the runtime does it (for evaluation)."""
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    matrix = np.array([[scale, 0, pad_x], [0, scale, pad_y]], np.float32)
    return _warp(image, boxes, matrix, size)


def _warp(
    image: np.ndarray, boxes: np.ndarray, matrix: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    canvas = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=(LETTERBOX_PAD, LETTERBOX_PAD, LETTERBOX_PAD),
    )  # fmt: skip
    if len(boxes) == 0:
        return canvas, boxes.reshape(0, 5)
    out = boxes.copy()
    out[:, [1, 3]] = boxes[:, [1, 3]] * matrix[0, 0] + matrix[0, 2]
    out[:, [2, 4]] = boxes[:, [2, 4]] * matrix[1, 1] + matrix[1, 2]
    return canvas, out


class AugmentedStills(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random zoom/crop/stretch into the letterbox, flips, colour, blur and grey, for training."""

    def __init__(self, samples: list[Sample], size: int, seed: int) -> None:
        self.samples = samples
        self.size = size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self.rng
        sample = self.samples[index]
        image = decode(sample)
        height, width = image.shape[:2]
        size = self.size
        zoom = float(np.exp(rng.uniform(np.log(0.7), np.log(1.7))))
        stretch = float(rng.uniform(0.87, 1.15))
        scale_x = size / max(width, height) * zoom * stretch
        scale_y = size / max(width, height) * zoom / stretch
        new_w, new_h = width * scale_x, height * scale_y
        offset_x = rng.uniform(min(0.0, size - new_w), max(0.0, size - new_w))
        offset_y = rng.uniform(min(0.0, size - new_h), max(0.0, size - new_h))
        matrix = np.array([[scale_x, 0, offset_x], [0, scale_y, offset_y]], np.float32)
        canvas, boxes = _warp(image, sample.boxes, matrix, size)
        if len(boxes):
            area = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])
            boxes[:, 1:] = boxes[:, 1:].clip(0, size)
            kept_area = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])
            keep = (
                (kept_area >= 0.4 * area)
                & (boxes[:, 3] - boxes[:, 1] >= 3)
                & (boxes[:, 4] - boxes[:, 2] >= 3)
            )
            boxes = boxes[keep]
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1].copy()
            if len(boxes):
                boxes[:, [1, 3]] = size - boxes[:, [3, 1]]
        canvas = self._colour(canvas)
        tensor = torch.from_numpy(canvas[:, :, ::-1].copy()).permute(2, 0, 1)  # BGR -> RGB, CHW uint8
        return tensor, torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))

    def _colour(self, canvas: np.ndarray) -> np.ndarray:
        rng = self.rng
        hsv = cv2.cvtColor(canvas, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
        hsv[..., 1] *= rng.uniform(0.5, 1.4)
        hsv[..., 2] = hsv[..., 2] * rng.uniform(0.6, 1.35) + rng.uniform(-20, 20)
        canvas = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
        if rng.random() < 0.1:
            canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if rng.random() < 0.2:
            canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.5, 1.5))
        return canvas


def collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images [B, 3, S, S] float 0..1, targets [B, M, 5] padded, valid mask [B, M]."""
    images = torch.stack([image for image, _ in batch]).float().div_(255.0)
    most = max((len(boxes) for _, boxes in batch), default=0)
    targets = torch.zeros(len(batch), most, 5)
    valid = torch.zeros(len(batch), most, dtype=torch.bool)
    for index, (_, boxes) in enumerate(batch):
        targets[index, : len(boxes)] = boxes
        valid[index, : len(boxes)] = True
    return images, targets, valid
