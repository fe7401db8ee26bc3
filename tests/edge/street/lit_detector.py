"""A tiny ONNX detector that sees its fixed vehicles only while the scene is lit, and a video to match.

The model returns the boxes it was built with (the project's ``citywatch`` layout, COCO's labels), their
scores multiplied by ``clip((mean(input) - 0.4) * 100, 0, 1)``: a bright frame shows them, a dark frame
hides them. So a test drives what the real ``Detector`` reports through the picture itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

COCO = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
SIZE = 320
WIDTH, HEIGHT, FPS = 640, 360, 5
SCALE, PAD_Y = SIZE / WIDTH, (SIZE - HEIGHT * SIZE / WIDTH) / 2  # the detector's letterbox

CAR = (200.0, 150.0, 440.0, 270.0)  # parked in the zone (frame pixels)
OTHER_CAR = (20.0, 40.0, 180.0, 120.0)  # outside the zone, its plate must be blurred
PERSON = (480.0, 100.0, 540.0, 260.0)
ZONE = [[150, 200], [500, 200], [500, 330], [150, 330]]


def _to_input(box: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1 * SCALE, y1 * SCALE + PAD_Y, x2 * SCALE, y2 * SCALE + PAD_Y]


def build_model(path: Path) -> Path:
    boxes = np.array([[_to_input(CAR), _to_input(OTHER_CAR), _to_input(PERSON)]], np.float32)
    scores = np.zeros((1, 3, len(COCO)), np.float32)
    scores[0, 0, COCO.index("car")] = 0.9
    scores[0, 1, COCO.index("car")] = 0.8
    scores[0, 2, COCO.index("person")] = 0.85
    inits = [
        numpy_helper.from_array(boxes, "boxes_const"),
        numpy_helper.from_array(scores, "scores_const"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero_factor"),
        numpy_helper.from_array(np.array(0.4, np.float32), "threshold"),
        numpy_helper.from_array(np.array(100.0, np.float32), "gain"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Sub", ["mean", "threshold"], ["above"]),
        helper.make_node("Mul", ["above", "gain"], ["steep"]),
        helper.make_node("Clip", ["steep", "lo", "hi"], ["lit"]),
        helper.make_node("Mul", ["scores_const", "lit"], ["scores"]),
        helper.make_node("Mul", ["mean", "zero_factor"], ["zero"]),
        helper.make_node("Add", ["boxes_const", "zero"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "lit_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, list(boxes.shape)),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, list(scores.shape)),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(
        model, {"input_size": str(SIZE), "labels": json.dumps(COCO), "layout": "citywatch"}
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def stripes(height: int, width: int) -> np.ndarray:
    """A high-contrast pattern standing in for plate characters (what the blur must wipe out)."""
    pattern = np.zeros((height, width, 3), np.uint8)
    pattern[:, ::4] = 255
    pattern[::3, :] = 255
    return pattern


def scene(lit: bool) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 200 if lit else 10, np.uint8)
    if not lit:
        return image
    x1, y1, x2, y2 = (int(v) for v in CAR)
    image[y1:y2, x1:x2] = (30, 30, 200)  # a red car
    image[y2 - 30 : y2 - 10, x1 + 90 : x1 + 150] = stripes(20, 60)  # its own plate
    x1, y1, x2, y2 = (int(v) for v in OTHER_CAR)
    image[y1:y2, x1:x2] = (200, 90, 30)  # a blue car
    image[y2 - 25 : y2 - 5, x1 + 50 : x1 + 110] = stripes(20, 60)  # its plate: personal data
    x1, y1, x2, y2 = (int(v) for v in PERSON)
    image[y1:y2, x1:x2] = stripes(y2 - y1, x2 - x1)  # a person, patterned so the blur shows
    return image


def write_video(path: Path, *, lit_s: float, dark_s: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(int((lit_s + dark_s) * FPS)):
        writer.write(scene(i < lit_s * FPS))
    writer.release()
    return path
