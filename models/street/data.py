"""Rendered street stills with vehicle boxes, for fine-tuning the COCO detector (``models.street.train``).

Scene ``i`` of a set is ``make_scenario(first_seed + i, PRESETS[i % len(PRESETS)])`` rendered at
1920x1080; each gives ``stills_per_scene`` frames at seeded random times. A still is kept as the
detector sees it: letterboxed to the run's input size (aspect kept, centred, grey 114: the runtime's
``edge.vision.detector.letterbox``), JPEG-encoded, with its boxes in those pixels and the COCO
teacher's ``person`` heatmap (the renderer has no person boxes: the fine-tuned network is held to the
original's person output instead).

A box is a *target* when the vehicle is at least half in sight and a quarter in the picture (what
``citywatch eval parking --oracle`` counts as seen); fainter ones are *ignored* (no loss either way), as
are boxes smaller than ``MIN_SIDE_PX`` on the letterboxed still.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from edge.vision.detector import letterbox

RENDER_SIZE = (1920, 1080)
TRAIN_FIRST_SEED = 20_000_000  # far from the parking evaluation's held-out seeds (1,000,000+)
VALIDATION_FIRST_SEED = 21_000_000
# The simulator's vehicle classes as the COCO detector's (edge/street/config.py maps them back).
COCO_CLASS = {"car": "car", "truck": "truck", "bus": "bus", "motorbike": "motorcycle", "ebike": "bicycle"}
LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck")  # the COCO file's order
MIN_VISIBLE = 0.5
MIN_IN_PICTURE = 0.25
MIN_SIDE_PX = 3.0
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Still:
    jpeg: bytes
    boxes: np.ndarray  # [n, 4] x1, y1, x2, y2 in letterboxed pixels
    classes: np.ndarray  # [n] index into LABELS
    target: np.ndarray  # [n] bool: learn it (else ignore its area)
    person: np.ndarray  # [size/4, size/4] uint8: the teacher's person heatmap * 255
    seed: int


def _scene(job: tuple[int, int, int, int, str]) -> list[Still]:
    from simulators.street import PRESETS, StreetRenderer, make_scenario
    from simulators.street.truth import frame_count

    seed, index, stills, size, teacher_path = job
    preset = PRESETS[index % len(PRESETS)]
    try:
        scenario = make_scenario(seed, preset)
    except RuntimeError:  # a story that does not fit this street (e.g. no room at its bus stop)
        return []
    renderer = StreetRenderer(scenario, RENDER_SIZE, 10.0)
    frames = frame_count(scenario, 10.0, 1.0)
    rng = np.random.default_rng([seed, 51])
    teacher = _teacher(teacher_path)
    out = []
    for frame_index in sorted(rng.choice(frames, size=min(stills, frames), replace=False)):
        image, truth = renderer.render(int(frame_index))
        boxed, geometry = letterbox(image, size)
        boxes, classes, target = [], [], []
        for vehicle in truth.vehicles:
            x1, y1, x2, y2 = (np.asarray(vehicle.box, np.float32) * geometry.scale) + np.array(
                [geometry.pad_x, geometry.pad_y, geometry.pad_x, geometry.pad_y], np.float32
            )
            if min(x2 - x1, y2 - y1) < 1:
                continue
            seen = (vehicle.visible is None or vehicle.visible >= MIN_VISIBLE) and (
                vehicle.in_picture is None or vehicle.in_picture >= MIN_IN_PICTURE
            )
            boxes.append((x1, y1, x2, y2))
            classes.append(LABELS.index(COCO_CLASS[vehicle.cls]))
            target.append(seen and min(x2 - x1, y2 - y1) >= MIN_SIDE_PX)
        rgb = cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        (heat,) = teacher.run(["keypoints"], {"images": rgb.transpose(2, 0, 1)[None]})
        ok, jpeg = cv2.imencode(".jpg", boxed, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out.append(
            Still(
                jpeg=jpeg.tobytes(),
                boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                classes=np.asarray(classes, np.int64),
                target=np.asarray(target, bool),
                person=np.clip(heat[0, LABELS.index("person")] * 255.0 + 0.5, 0, 255).astype(np.uint8),
                seed=seed,
            )
        )
    return out


_TEACHERS: dict[str, object] = {}


def _teacher(path: str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    if path not in _TEACHERS:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        model = _with_heatmap_output(path)
        _TEACHERS[path] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return _TEACHERS[path]


def _with_heatmap_output(path: str) -> bytes:
    import onnx

    from models.coco.optimize import with_outputs

    return with_outputs(onnx.load(path), ("keypoints",)).SerializeToString()


def render_set(
    cache: Path,
    *,
    first_seed: int,
    scenes: int,
    stills_per_scene: int,
    size: int,
    teacher: Path,
    workers: int,
    say: Callable[[str], None],
) -> list[Still]:
    """Render (or load from ``cache``) the stills of ``scenes`` scenes from ``first_seed``."""
    path = cache / f"street-{first_seed}-{scenes}x{stills_per_scene}-{size}.pkl"
    if path.exists():
        with path.open("rb") as handle:
            stills: list[Still] = pickle.load(handle)
        say(f"loaded {len(stills)} stills from {path}")
        return stills
    jobs = [(first_seed + i, i, stills_per_scene, size, str(teacher)) for i in range(scenes)]
    stills = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for done, scene in enumerate(pool.map(_scene, jobs, chunksize=4), start=1):
            stills.extend(scene)
            if not scene:
                say(f"scene {first_seed + done - 1} could not be planned: skipped")
            if done % 25 == 0 or done == scenes:
                say(f"rendered {done}/{scenes} scenes, {len(stills)} stills")
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    with partial.open("wb") as handle:
        pickle.dump(stills, handle, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(path)
    return stills


def decode(still: Still) -> np.ndarray:
    """The still as the network takes it: BGR uint8, letterboxed."""
    image = cv2.imdecode(np.frombuffer(still.jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"a still of scene {still.seed} does not decode")
    return image
