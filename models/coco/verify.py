"""Check the converted ONNX model against the original TensorFlow.js model on the same images.

Both get the very same letterboxed RGB pixels at the original's input size (512): the original as NHWC
0..255 on tfjs's CPU backend (``reference/run_tfjs.mjs``, run with node), the ONNX file as the runtime
feeds it (NCHW 0..1) on onnxruntime. Compared, as maximum absolute differences:

- the class heatmap (``tower_0/keypoints``, sigmoid scores 0..1) and the box edges (``tower_0/wh``, pixels);
- the original graph's own top-100 decoding (``tower_0/detections``) against the same top-100 taken from
  the ONNX ``scores``/``boxes`` outputs: every detection scoring at least ``DETECTION_FLOOR`` must have the
  same class and the same box and score within tolerance.

Float32 on both sides; the differences come only from the order of floating-point sums, so the
tolerances are tight: 1e-4 on scores, 1e-2 pixels on boxes.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from edge.vision.detector import letterbox
from models.coco.convert import BOX_EDGES, HEATMAP, INPUT_NAME
from models.coco.optimize import with_outputs

DETECTIONS = "tower_0/detections"
SCORE_TOLERANCE = 1e-4
PIXEL_TOLERANCE = 1e-2
DETECTION_FLOOR = 0.05
TOP_K = 100


class VerificationError(RuntimeError):
    """The converted model does not compute what the original does, or the reference did not run."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    image: np.ndarray  # BGR uint8, as OpenCV and the runtime read frames


def letterboxed_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """The runtime's own preprocessing up to the blob: letterbox, then BGR -> RGB."""
    canvas, _ = letterbox(image, size)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)


def run_reference(reference_dir: Path, model_json: Path, canvases: list[np.ndarray]) -> list[dict[str, Any]]:
    """The original's outputs (NHWC, as tfjs gives them) for each RGB canvas, plus the run's milliseconds."""
    results = []
    with tempfile.TemporaryDirectory(prefix="coco-reference-") as scratch:
        folder = Path(scratch)
        inputs = []
        for index, canvas in enumerate(canvases):
            path = folder / f"sample{index}.f32"
            canvas[np.newaxis].astype("<f4").tofile(path)
            inputs.append(str(path))
        command = ["node", str(reference_dir / "run_tfjs.mjs"), str(model_json), str(folder), *inputs]
        done = subprocess.run(command, cwd=reference_dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise VerificationError(
                f"the tfjs reference failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if len(lines) != len(canvases):
            raise VerificationError(f"the tfjs reference answered for {len(lines)} of {len(canvases)} inputs")
        for index, line in enumerate(lines):
            outputs: dict[str, Any] = {
                "ms": float(line["ms"]),
                "tfjs": line["tfjs"],
                "backend": line["backend"],
            }
            for name, shape in line["shapes"].items():
                raw = folder / f"sample{index}.{name.replace('/', '_')}.f32"
                outputs[name] = np.fromfile(raw, "<f4").reshape(shape)
            results.append(outputs)
    return results


def run_converted(model: onnx.ModelProto, canvases: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The ONNX model's outputs, with its two raw heads exposed as extra outputs for the comparison."""
    exposed = with_outputs(model, ("keypoints", "wh"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = []
    for canvas in canvases:
        blob = (canvas.astype(np.float32) / 255.0).transpose(2, 0, 1)[np.newaxis]
        results.append(dict(zip(names, session.run(None, {INPUT_NAME: blob}), strict=True)))
    return results


def top_detections(boxes: np.ndarray, scores: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """[k, 6] rows x1, y1, x2, y2, score, class: the original graph's TopKV2 over every (point, class)."""
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:k]  # ties: lower index first, as TopKV2
    classes = scores.shape[-1]
    points = order // classes
    return np.concatenate(
        [boxes.reshape(-1, 4)[points], flat[order, np.newaxis], (order % classes)[:, np.newaxis]], axis=1
    ).astype(np.float32)


def compare(reference: dict[str, Any], converted: dict[str, np.ndarray]) -> dict[str, Any]:
    heatmap = converted["keypoints"].transpose(0, 2, 3, 1)  # NCHW -> the original's NHWC
    edges = converted["wh"].transpose(0, 2, 3, 1)
    if heatmap.shape != reference[HEATMAP].shape or edges.shape != reference[BOX_EDGES].shape:
        raise VerificationError(
            f"shapes differ: heatmap {heatmap.shape} vs {reference[HEATMAP].shape}, "
            f"edges {edges.shape} vs {reference[BOX_EDGES].shape}"
        )
    ours = top_detections(converted["boxes"][0], converted["scores"][0])
    theirs = reference[DETECTIONS][0]
    kept = theirs[:, 4] >= DETECTION_FLOOR
    return {
        "heatmap": float(np.abs(heatmap - reference[HEATMAP]).max()),
        "box_edges_px": float(np.abs(edges - reference[BOX_EDGES]).max()),
        "detections_compared": int(kept.sum()),
        "class_mismatches": int((ours[kept, 5] != theirs[kept, 5]).sum()),
        "detection_boxes_px": float(np.abs(ours[kept, :4] - theirs[kept, :4]).max(initial=0.0)),
        "detection_scores": float(np.abs(ours[kept, 4] - theirs[kept, 4]).max(initial=0.0)),
    }


def verify(
    model: onnx.ModelProto, model_json: Path, reference_dir: Path, samples: list[Sample]
) -> dict[str, Any]:
    """Compare ``model`` (built at the original's input size) with the original on ``samples``.

    Raises :class:`VerificationError` beyond the tolerances; returns the figures for the model card.
    """
    size = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    canvases = [letterboxed_rgb(sample.image, size) for sample in samples]
    references = run_reference(reference_dir, model_json, canvases)
    converted = run_converted(model, canvases)
    per_image = {
        sample.name: compare(reference, ours)
        for sample, reference, ours in zip(samples, references, converted, strict=True)
    }
    worst = {
        key: max(row[key] for row in per_image.values())
        for key in ("heatmap", "box_edges_px", "detection_boxes_px", "detection_scores")
    }
    mismatches = sum(row["class_mismatches"] for row in per_image.values())
    result = {
        "input_size": size,
        "images": list(per_image),
        "reference": f"@tensorflow/tfjs-core {references[0]['tfjs']}, backend {references[0]['backend']} (float32)",
        "reference_ms_median": round(float(np.median([r["ms"] for r in references])), 1),
        "max_abs_diff": worst,
        "detections_compared": sum(row["detections_compared"] for row in per_image.values()),
        "detection_floor": DETECTION_FLOOR,
        "class_mismatches": mismatches,
        "tolerance": {"scores": SCORE_TOLERANCE, "pixels": PIXEL_TOLERANCE},
        "per_image": per_image,
    }
    failures = [
        f"{key} differs by {value:.3g}"
        for key, value, limit in (
            ("heatmap", worst["heatmap"], SCORE_TOLERANCE),
            ("detection_scores", worst["detection_scores"], SCORE_TOLERANCE),
            ("box_edges_px", worst["box_edges_px"], PIXEL_TOLERANCE),
            ("detection_boxes_px", worst["detection_boxes_px"], PIXEL_TOLERANCE),
        )
        if value > limit
    ]
    if mismatches:
        failures.append(f"{mismatches} detections changed class")
    if result["detections_compared"] == 0:
        failures.append(f"no detection scored {DETECTION_FLOOR} or more: the samples test nothing")
    if failures:
        raise VerificationError("the ONNX model does not match the original: " + "; ".join(failures))
    return result


def same_network(verified: onnx.ModelProto, shipped: onnx.ModelProto) -> int:
    """Check that a build at another input size is the verified network: the same nodes and weights.

    Only the grid of box centres (``decode/centres``) may differ, as it follows the input size. Returns
    how many weights were compared; raises :class:`VerificationError` on any difference.
    """
    grid_dependent = ("decode/centres",)

    def nodes(model: onnx.ModelProto) -> list[bytes]:
        return [node.SerializeToString() for node in model.graph.node]

    def weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
        return {
            t.name: onnx.numpy_helper.to_array(t)
            for t in model.graph.initializer
            if t.name not in grid_dependent
        }

    if nodes(verified) != nodes(shipped):
        raise VerificationError("the shipped build has other nodes than the verified one")
    ours, theirs = weights(shipped), weights(verified)
    if ours.keys() != theirs.keys():
        raise VerificationError(f"the builds differ in weights {sorted(ours.keys() ^ theirs.keys())}")
    changed = [name for name in ours if not np.array_equal(ours[name], theirs[name])]
    if changed:
        raise VerificationError(f"the shipped build differs from the verified one in {changed[:5]}")
    return len(ours)
