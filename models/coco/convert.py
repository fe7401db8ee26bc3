"""TensorFlow.js CenterNet graph -> ONNX in the runtime's ``citywatch`` layout, with onnx.helper only.

Why not ``tf2onnx --tfjs``: it stops on this graph's ``_FusedConv2D`` nodes (no ``TArgs``) and needs
TensorFlow installed. The network is small and uses a handful of ops, so each GraphDef node is mapped to
its ONNX equivalent here, NHWC turned to NCHW (weights transposed once, axes remapped), the float16
weights widened to float32 exactly. Only the part of the graph that computes the two heads is taken
(``tower_0/keypoints``, the per-class centre heatmap, and ``tower_0/wh``, the box edges); the graph's
own top-100 decoding is replaced by one the runtime reads directly:

- input ``images`` float32 [1, 3, S, S], RGB, 0..1, letterboxed (the original takes NHWC 0..255: the
  graph scales by 255 itself);
- ``scores`` [1, N, 80]: the heatmap where it is a 3x3 local maximum, else 0 (CenterNet's peak picking,
  N = (S/4)^2 grid points);
- ``boxes`` [1, N, 4]: x1, y1, x2, y2 in input pixels, the point's position (stride 4) minus/plus the
  predicted left/top and right/bottom distances, exactly as the original graph decodes them.

The network is fully convolutional, so ``--size`` exports it for a smaller square input than the
original 512 (faster, misses more small objects); the graph's upsampling is exported as a scale factor.

``python -m models.coco.convert MODEL.json --out OUT.onnx [--size S]``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.coco.tfjs import GraphModel, Node, TfjsError, load

OPSET = 17
IR_VERSION = 8  # the oldest that carries opset 17: onnxruntime from 1.14 opens the file
INPUT_NAME = "images"
HEATMAP = "tower_0/keypoints"
BOX_EDGES = "tower_0/wh"
LETTERBOX_PAD = 114
# The 80 COCO classes in the model's output order (the order of the original repository's label map).
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
    "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv",
    "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


class ConversionError(TfjsError):
    """A node this converter does not map, with the node's name and op."""


@dataclass(frozen=True, slots=True)
class Conversion:
    model: onnx.ModelProto
    input_size: int
    stride: int
    nodes_converted: int
    ops: dict[str, int]  # TensorFlow op -> how many were converted


def _tensor_name(reference: str) -> str:
    """GraphDef inputs say ``node`` or ``node:k``; ``node:0`` is the same tensor as ``node``."""
    return reference[:-2] if reference.endswith(":0") else reference


def _node_name(reference: str) -> str:
    return reference.split(":")[0]


class _Builder:
    """Walks the GraphDef from the wanted outputs and emits ONNX nodes in NCHW."""

    def __init__(self, graph: GraphModel, native_hw: tuple[int, int]):
        self.graph = graph
        self.by_name = {node.name: node for node in graph.nodes}
        self.onnx_nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.done: dict[str, str] = {}  # TF tensor -> ONNX tensor
        # Spatial size of each tensor at the original input size: turns fixed resize sizes into factors.
        self.hw: dict[str, tuple[int, int]] = {}
        self.native_hw = native_hw
        self.ops: dict[str, int] = {}
        self._handlers: dict[str, Callable[[Node], str]] = {
            "Placeholder": self._placeholder,
            "Identity": self._identity,
            "_FusedConv2D": self._conv,
            "Conv2D": self._conv,
            "DepthwiseConv2dNative": self._conv,
            "FusedDepthwiseConv2dNative": self._conv,
            "Add": self._binary,
            "AddV2": self._binary,
            "Sub": self._binary,
            "Mul": self._binary,
            "Relu": self._unary,
            "Relu6": self._unary,
            "Sigmoid": self._unary,
            "Mean": self._mean,
            "ConcatV2": self._concat,
            "ResizeBilinear": self._resize,
        }

    # -- plumbing ---------------------------------------------------------------------------------
    def constant(self, name: str, array: np.ndarray) -> str:
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def emit(self, op: str, inputs: Iterable[str], output: str, **attrs: Any) -> str:
        self.onnx_nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def weight(self, reference: str) -> np.ndarray:
        name = _tensor_name(reference)
        if name not in self.graph.weights:
            raise ConversionError(f"{name} is not a constant in the weights manifest")
        return self.graph.weights[name]

    def is_constant(self, reference: str) -> bool:
        return _tensor_name(reference) in self.graph.weights

    def tensor(self, reference: str) -> str:
        """The ONNX name of a TF tensor, converting its producer (and what it needs) first."""
        name = _tensor_name(reference)
        if name in self.done:
            return self.done[name]
        # Iterative depth-first walk: the graph is deep enough to make recursion fragile.
        stack = [_node_name(reference)]
        while stack:
            current = self.by_name.get(stack[-1])
            if current is None:
                raise ConversionError(f"the graph has no node {stack[-1]!r}")
            if current.name in self.done:
                stack.pop()
                continue
            pending = [
                _node_name(i)
                for i in current.inputs
                if not self.is_constant(i) and _node_name(i) not in self.done
            ]
            if pending:
                stack.extend(pending)
                continue
            handler = self._handlers.get(current.op)
            if handler is None:
                raise ConversionError(f"node {current.name}: op {current.op} is not supported")
            self.done[current.name] = handler(current)
            self.ops[current.op] = self.ops.get(current.op, 0) + 1
            stack.pop()
        if name not in self.done:
            raise ConversionError(f"{reference}: only a node's first output is supported")
        return self.done[name]

    def _hw_of(self, reference: str) -> tuple[int, int]:
        return self.hw[self.tensor(reference)]

    # -- ops ----------------------------------------------------------------------------------------
    def _placeholder(self, node: Node) -> str:
        # The original takes 0..255; the runtime feeds 0..1.
        scale = self.constant("input_scale", np.array(255.0, np.float32))
        out = self.emit("Mul", [INPUT_NAME, scale], node.name)
        self.hw[out] = self.native_hw
        return out

    def _identity(self, node: Node) -> str:
        return self.tensor(node.inputs[0])

    def _conv(self, node: Node) -> str:
        if node.string("data_format", "NHWC") != "NHWC":
            raise ConversionError(f"node {node.name}: only NHWC is supported")
        padding = node.string("padding")
        if padding not in ("SAME", "VALID"):
            raise ConversionError(f"node {node.name}: padding {padding} is not supported")
        strides, dilations = node.ints("strides")[1:3], node.ints("dilations")[1:3]
        kernel = self.weight(node.inputs[1]).astype(np.float32)
        height, width = kernel.shape[:2]
        depthwise = "Depthwise" in node.op
        if depthwise:  # [H, W, C, M] -> [C*M, 1, H, W], one group per input channel
            channels, multiplier = kernel.shape[2], kernel.shape[3]
            onnx_kernel = kernel.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, height, width)
            group = channels
        else:  # [H, W, I, O] -> [O, I, H, W]
            onnx_kernel, group = kernel.transpose(3, 2, 0, 1), 1
        inputs = [self.tensor(node.inputs[0]), self.constant(f"{node.name}/kernel", onnx_kernel)]
        fused = node.strings("fused_ops")
        if fused:
            if fused[0] != "BiasAdd" or len(node.inputs) < 3:
                raise ConversionError(f"node {node.name}: fused ops {fused} are not supported")
            bias = self.weight(node.inputs[2]).astype(np.float32)
            inputs.append(self.constant(f"{node.name}/bias", bias))
        conv_name = node.name if len(fused) <= 1 else f"{node.name}/conv"
        out = self.emit(
            "Conv",
            inputs,
            conv_name,
            kernel_shape=[height, width],
            strides=strides,
            dilations=dilations,
            group=group,
            # TF's SAME puts the odd pixel of padding after, which is ONNX's SAME_UPPER.
            auto_pad="SAME_UPPER" if padding == "SAME" else "VALID",
        )
        in_h, in_w = self._hw_of(node.inputs[0])
        if padding == "SAME":
            out_hw = (-(-in_h // strides[0]), -(-in_w // strides[1]))
        else:
            span_h, span_w = (height - 1) * dilations[0] + 1, (width - 1) * dilations[1] + 1
            out_hw = ((in_h - span_h) // strides[0] + 1, (in_w - span_w) // strides[1] + 1)
        for activation in fused[1:]:
            if len(fused) > 2:
                raise ConversionError(f"node {node.name}: fused ops {fused} are not supported")
            out = self._activation(activation, out, node.name, node.name)
        self.hw[out] = out_hw
        return out

    def _activation(self, op: str, source: str, output: str, where: str) -> str:
        if op == "Relu":
            return self.emit("Relu", [source], output)
        if op == "Relu6":
            low = self.constant("relu6_min", np.array(0.0, np.float32))
            high = self.constant("relu6_max", np.array(6.0, np.float32))
            return self.emit("Clip", [source, low, high], output)
        if op == "Sigmoid":
            return self.emit("Sigmoid", [source], output)
        raise ConversionError(f"node {where}: activation {op} is not supported")

    def _unary(self, node: Node) -> str:
        source = self.tensor(node.inputs[0])
        out = self._activation(node.op, source, node.name, node.name)
        self.hw[out] = self.hw[source]
        return out

    def _layout_constant(self, node: Node, reference: str) -> str:
        """A constant operand of an elementwise op, its NHWC broadcast shape turned into NCHW."""
        value = self.weight(reference).astype(np.float32)
        if value.size == 1:
            value = value.reshape(())
        elif value.ndim == 1:  # per channel: [C] broadcasts over the last NHWC axis
            value = value.reshape(-1, 1, 1)
        elif value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        else:
            raise ConversionError(f"node {node.name}: constant of shape {value.shape} is not supported")
        return self.constant(f"{_tensor_name(reference)}/nchw", value)

    def _binary(self, node: Node) -> str:
        op = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul"}[node.op]
        operands, sizes = [], []
        for reference in node.inputs[:2]:
            if self.is_constant(reference):
                operands.append(self._layout_constant(node, reference))
            else:
                operands.append(self.tensor(reference))
                sizes.append(self.hw[operands[-1]])
        out = self.emit(op, operands, node.name)
        self.hw[out] = max(sizes)  # broadcasting: a squeeze-excite [1, 1] times the feature map
        return out

    def _axes(self, node: Node, reference: str) -> list[int]:
        return [NHWC_TO_NCHW_AXIS[int(a)] for a in np.atleast_1d(self.weight(reference))]

    def _mean(self, node: Node) -> str:
        axes = self._axes(node, node.inputs[1])
        keep = node.boolean("keep_dims")
        if not keep:
            raise ConversionError(f"node {node.name}: Mean without keep_dims is not supported")
        source = self.tensor(node.inputs[0])
        out = self.emit("ReduceMean", [source], node.name, axes=axes, keepdims=1)
        height, width = self.hw[source]
        self.hw[out] = (1 if 2 in axes else height, 1 if 3 in axes else width)
        return out

    def _concat(self, node: Node) -> str:
        (axis,) = self._axes(node, node.inputs[-1])
        sources = [self.tensor(r) for r in node.inputs[:-1]]
        out = self.emit("Concat", sources, node.name, axis=axis)
        self.hw[out] = self.hw[sources[0]]
        return out

    def _resize(self, node: Node) -> str:
        source = self.tensor(node.inputs[0])
        size = [int(v) for v in self.weight(node.inputs[1])]
        height, width = self.hw[source]
        if size[0] % height or size[1] % width:
            raise ConversionError(
                f"node {node.name}: resize {height}x{width} -> {size} is not a whole factor"
            )
        if node.boolean("align_corners"):
            mode = "align_corners"
        elif node.boolean("half_pixel_centers"):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        scales = np.array([1.0, 1.0, size[0] / height, size[1] / width], np.float32)
        out = self.emit(
            "Resize",
            [source, "", self.constant(f"{node.name}/scales", scales)],
            node.name,
            mode="linear",
            coordinate_transformation_mode=mode,
        )
        self.hw[out] = (size[0], size[1])
        return out


def _decode(builder: _Builder, heatmap: str, edges: str, grid: int, stride: int) -> None:
    """Peaks of the heatmap as ``scores``, boxes from the edges as ``boxes`` (the original's decoding)."""
    pooled = builder.emit("MaxPool", [heatmap], "decode/pooled", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    is_peak = builder.emit("Equal", [heatmap, pooled], "decode/is_peak")
    peak_mask = builder.emit("Cast", [is_peak], "decode/peak_mask", to=TensorProto.FLOAT)
    peaks = builder.emit("Mul", [heatmap, peak_mask], "decode/peaks")
    flat = builder.constant("decode/flat_shape", np.array([1, 0, -1], np.int64))  # 0 keeps the channels
    by_class = builder.emit("Reshape", [peaks, flat], "decode/peaks_flat")
    builder.emit("Transpose", [by_class], "scores", perm=[0, 2, 1])
    edges_flat = builder.emit("Reshape", [edges, flat], "decode/edges_flat")
    edges_last = builder.emit("Transpose", [edges_flat], "decode/edges", perm=[0, 2, 1])
    signs = builder.constant("decode/signs", np.array([-1.0, -1.0, 1.0, 1.0], np.float32))
    offsets = builder.emit("Mul", [edges_last, signs], "decode/offsets")
    # Grid point (x, y) sits at (x * stride, y * stride) in input pixels, row-major like the reshape.
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    centres = np.stack([xs, ys, xs, ys], axis=-1).reshape(1, grid * grid, 4).astype(np.float32) * stride
    builder.emit("Add", [builder.constant("decode/centres", centres), offsets], "boxes")


def convert(model_json: Path, size: int | None = None, source: str = "") -> Conversion:
    """Build the ONNX model for a square input of ``size`` (default: the original's)."""
    graph = load(model_json)
    if len(graph.inputs) != 1:
        raise ConversionError(f"expected one input, the signature has {list(graph.inputs)}")
    (native_shape,) = graph.inputs.values()
    if len(native_shape) != 4 or native_shape[1] != native_shape[2]:
        raise ConversionError(f"expected a square NHWC input, the signature says {native_shape}")
    for wanted in (HEATMAP, BOX_EDGES):
        if wanted not in graph.outputs:
            raise ConversionError(f"not a CenterNet graph: no output {wanted} in {list(graph.outputs)}")
    native = native_shape[1]
    heat_shape = graph.outputs[HEATMAP]
    stride = native // heat_shape[1]
    classes = heat_shape[3]
    if classes != len(COCO_LABELS):
        raise ConversionError(f"expected {len(COCO_LABELS)} COCO classes, the heatmap has {classes}")
    size = size or native
    if size % 32:
        raise ConversionError(f"--size must be a multiple of 32 (the backbone's stride), got {size}")
    grid = size // stride

    builder = _Builder(graph, (native, native))
    heatmap = builder.emit("Identity", [builder.tensor(HEATMAP)], "keypoints")
    edges = builder.emit("Identity", [builder.tensor(BOX_EDGES)], "wh")
    _decode(builder, heatmap, edges, grid, stride)

    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, size, size])]
    outputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, grid * grid, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, grid * grid, classes]),
    ]
    onnx_graph = helper.make_graph(
        builder.onnx_nodes, "coco_centernet", inputs, outputs, list(builder.initializers.values())
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="models.coco.convert",
        ir_version=IR_VERSION,
    )
    metadata = {
        "layout": "citywatch",
        "input_size": str(size),
        "labels": json.dumps(list(COCO_LABELS)),
        "letterbox_pad": str(LETTERBOX_PAD),
        "description": "MobileNetV3 CenterNet trained on COCO 2017 (real photographs), converted from "
        "TensorFlow.js; see coco-centernet.md",
        "source": source,
        "license": "MIT",
    }
    helper.set_model_props(model, {k: v for k, v in metadata.items() if v})
    onnx.checker.check_model(model, full_check=True)
    return Conversion(
        model=model,
        input_size=size,
        stride=stride,
        nodes_converted=sum(builder.ops.values()),
        ops=dict(sorted(builder.ops.items())),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.coco.convert", description=__doc__.split("\n")[0])
    parser.add_argument("model_json", type=Path, help="the TensorFlow.js graph model (centernet.json)")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--size", type=int, default=None, help="square input size (default: the original's)")
    args = parser.parse_args(argv)
    result = convert(args.model_json, args.size)
    onnx.save(result.model, args.out)
    print(
        f"wrote {args.out}: input {result.input_size}, {result.nodes_converted} nodes converted {result.ops}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
