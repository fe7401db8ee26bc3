"""Tiny ONNX detectors with known outputs, built with ``onnx.helper`` for the decoder tests.

Each model ignores the picture (its outputs are constants plus 0 x mean(input), so the input is
really consumed) and returns the rows it was built with: the test knows exactly what must come out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _constant_plus_zero(name: str, value: np.ndarray, nodes: list[onnx.NodeProto], inits: list) -> None:
    inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
    nodes.append(helper.make_node("Add", [f"{name}_const", "zero"], [name]))


def _save(path: Path, nodes, inits, outputs, size: int, metadata: dict[str, str]) -> Path:
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero_factor"), *inits]
    head = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero_factor"], ["zero"]),
    ]
    graph = helper.make_graph(
        head + nodes,
        "fixed_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def yolo_model(path: Path, rows_xywh_scores: np.ndarray, *, size: int, names: list[str] | None) -> Path:
    """YOLOv8-style: one output [1, 4+C, N]; rows are [cx, cy, w, h, score_0..score_C-1]."""
    rows = np.asarray(rows_xywh_scores, np.float32)
    value = rows.T[np.newaxis]  # [1, 4+C, N]
    nodes: list[onnx.NodeProto] = []
    inits: list = []
    _constant_plus_zero("output0", value, nodes, inits)
    outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(value.shape))]
    metadata = {"imgsz": f"[{size}, {size}]"}
    if names is not None:
        metadata["names"] = repr(dict(enumerate(names)))
    return _save(path, nodes, inits, outputs, size, metadata)


def citywatch_model(
    path: Path, boxes_xyxy: np.ndarray, scores: np.ndarray, *, size: int, labels: list[str]
) -> Path:
    """Our layout: ``boxes`` [1,N,4] x1y1x2y2 and ``scores`` [1,N,C], labels in the metadata."""
    boxes = np.asarray(boxes_xyxy, np.float32)[np.newaxis]
    class_scores = np.asarray(scores, np.float32)[np.newaxis]
    nodes: list[onnx.NodeProto] = []
    inits: list = []
    _constant_plus_zero("boxes", boxes, nodes, inits)
    _constant_plus_zero("scores", class_scores, nodes, inits)
    outputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, list(boxes.shape)),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, list(class_scores.shape)),
    ]
    import json

    metadata = {"input_size": str(size), "labels": json.dumps(labels), "layout": "citywatch"}
    return _save(path, nodes, inits, outputs, size, metadata)
