"""Int8 static quantisation of the COCO detector, calibrated on our own rendered elevator frames.

``onnxruntime.quantization.quantize_static`` in QDQ form: weights int8 per output channel, activations
uint8 with ranges observed on ``CALIBRATION_IMAGES`` renderer stills (``simulators.elevator``), never on
real photos (those are for evaluation only). The decoding tail (peak picking, box arithmetic) stays
float: it compares heatmap values for equality and adds pixel offsets, which 8 bits would blur.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx

from edge.vision.detector import letterbox
from models.coco.convert import INPUT_NAME

CALIBRATION_IMAGES = 64
# Scene seeds of their own: not the e-bike training runs (run seed * 1e6), the held-out stills
# (90,000,000+) nor the ride and card seeds (95,000,000+).
CALIBRATION_SEED = 97_000_000
STILLS_PER_SCENE = 4


def calibration_blobs(
    size: int, images: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED
) -> list[np.ndarray]:
    """Rendered elevator stills, preprocessed exactly as the runtime feeds the model."""
    from simulators.elevator.scenes import render_stills

    blobs: list[np.ndarray] = []
    scene = seed
    while len(blobs) < images:
        for image, _boxes in render_stills(scene, STILLS_PER_SCENE):
            canvas, _ = letterbox(image, size)
            blobs.append(cv2.dnn.blobFromImage(canvas, scalefactor=1.0 / 255.0, swapRB=True))
        scene += 1
    return blobs[:images]


class _Frames:
    """onnxruntime's CalibrationDataReader protocol over preprocessed blobs."""

    def __init__(self, blobs: list[np.ndarray]) -> None:
        self._blobs: Iterator[np.ndarray] = iter(blobs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        blob = next(self._blobs, None)
        return None if blob is None else {INPUT_NAME: blob}


def float_tail(model: onnx.ModelProto) -> list[str]:
    """Nodes kept in float: the decoding the converter appends (``decode/*``) and the two outputs."""
    return [
        node.name
        for node in model.graph.node
        if node.name.startswith("decode/") or set(node.output) & {"scores", "boxes"}
    ]


def quantize_int8(model: onnx.ModelProto, blobs: list[np.ndarray]) -> onnx.ModelProto:
    """The int8 QDQ model, calibrated (min/max) on ``blobs``; metadata carried over."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="coco-int8-") as scratch:
        folder = Path(scratch)
        onnx.save(model, folder / "float.onnx")
        quant_pre_process(folder / "float.onnx", folder / "prepared.onnx", skip_symbolic_shape=True)
        quantize_static(
            folder / "prepared.onnx",
            folder / "int8.onnx",
            _Frames(blobs),  # type: ignore[arg-type]  # duck-typed CalibrationDataReader
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=float_tail(model),
        )
        quantized = onnx.load(folder / "int8.onnx")
    onnx.helper.set_model_props(quantized, {p.key: p.value for p in model.metadata_props})
    return quantized
