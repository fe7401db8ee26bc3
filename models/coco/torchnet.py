"""The converted COCO detector as a trainable torch module, and its trained weights written back.

Fine-tuning (``models.street``) needs the network in torch; the graph it trains is the ONNX file's own
(models/coco-centernet.onnx), read node by node, so there is no second description of MobileNetV3 to
keep in step. Convolution weights and biases become parameters; every other initializer (the input
scale, the clip bounds, resize scales, the box-edge scale) stays a constant. ``forward`` runs the graph
up to the tensors named in ``outputs`` (by default the class logits and the box edges, before the
decoding tail), and ``write_weights`` copies the parameters back into the same initializers, so the
trained file keeps the original's decoding and layout untouched.

Only the operators this graph uses are supported; anything else is refused by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import Tensor, nn

CLASS_LOGITS = "tower_0/CenternetHead/centernet_cls_output/BiasAdd"
BOX_EDGES = "wh"  # edges (left, top, right, bottom) in input pixels from each stride-4 grid point
STRIDE = 4
SUPPORTED = {
    "Mul",
    "Add",
    "Conv",
    "HardSwish",
    "Relu",
    "Clip",
    "ReduceMean",
    "Resize",
    "Concat",
    "Sigmoid",
    "Identity",
}


class UnsupportedGraph(ValueError):
    """The ONNX graph has an operator or attribute this module does not run."""


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _same_upper(x: Tensor, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> Tensor:
    """ONNX ``auto_pad=SAME_UPPER``: the output is ceil(input / stride), the odd pixel padded at the end."""
    pads: list[int] = []
    for axis in (1, 0):  # F.pad lists the last axis first
        size = x.shape[2 + axis]
        out = math.ceil(size / strides[axis])
        total = max((out - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _resize_linear_asymmetric(x: Tensor, scales: np.ndarray) -> Tensor:
    """ONNX ``Resize`` linear with ``asymmetric`` coordinates (input = output / scale), on H and W."""
    for axis in (2, 3):
        size = x.shape[axis]
        out = math.floor(size * float(scales[axis]))
        where = torch.arange(out, dtype=torch.float32) / float(scales[axis])
        low = where.floor().clamp(max=size - 1).long()
        high = (low + 1).clamp(max=size - 1)
        weight = (where - low.float()).clamp(0, 1)
        shape = [1, 1, 1, 1]
        shape[axis] = out
        weight = weight.view(shape).to(x.dtype)
        x = x.index_select(axis, low) * (1 - weight) + x.index_select(axis, high) * weight
    return x


class OnnxNet(nn.Module):
    """Runs an ONNX graph's nodes in order with torch; convolution weights are trainable parameters."""

    def __init__(self, model: onnx.ModelProto, outputs: Sequence[str] = (CLASS_LOGITS, BOX_EDGES)) -> None:
        super().__init__()
        graph = model.graph
        self.input_name = graph.input[0].name
        self.outputs = tuple(outputs)
        initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        needed = self._needed_nodes(graph, set(self.outputs))
        self.nodes: list[tuple[str, list[str], str, dict[str, object]]] = []
        self.parameter_names: dict[str, str] = {}  # initializer name -> attribute name
        self.constants: dict[str, np.ndarray] = {}
        self.params = nn.ParameterDict()
        for node in needed:
            if node.op_type not in SUPPORTED:
                raise UnsupportedGraph(f"operator {node.op_type} (node {node.name}) is not supported")
            attrs = _attributes(node)
            if node.op_type == "Conv" and attrs.get("auto_pad", b"NOTSET") not in (
                b"SAME_UPPER",
                b"NOTSET",
                b"VALID",
            ):
                raise UnsupportedGraph(f"Conv {node.name}: auto_pad {attrs['auto_pad']!r}")
            if node.op_type == "Resize" and (
                attrs.get("mode") != b"linear" or attrs.get("coordinate_transformation_mode") != b"asymmetric"
            ):
                raise UnsupportedGraph(f"Resize {node.name}: only linear/asymmetric is supported")
            for position, name in enumerate(node.input):
                if name not in initializers:
                    continue
                if node.op_type == "Conv" and position in (1, 2):
                    if name not in self.parameter_names:
                        key = f"p{len(self.parameter_names)}"
                        self.parameter_names[name] = key
                        self.params[key] = nn.Parameter(torch.from_numpy(initializers[name].copy()))
                else:
                    self.constants[name] = initializers[name]
            self.nodes.append((node.op_type, list(node.input), node.output[0], attrs))
        for name, value in self.constants.items():
            self.register_buffer(
                self._buffer(name), torch.from_numpy(np.asarray(value).copy()), persistent=False
            )

    @staticmethod
    def _buffer(name: str) -> str:
        return "c_" + "".join(ch if ch.isalnum() else "_" for ch in name)

    @staticmethod
    def _needed_nodes(graph: onnx.GraphProto, outputs: set[str]) -> list[onnx.NodeProto]:
        """The nodes the wanted outputs depend on, in graph order."""
        producers = {out: node for node in graph.node for out in node.output}
        missing = outputs - producers.keys()
        if missing:
            raise UnsupportedGraph(f"the graph has no tensors {sorted(missing)}")
        wanted: set[str] = set()
        stack = list(outputs)
        while stack:
            tensor = stack.pop()
            node = producers.get(tensor)
            if node is None or node.name in wanted:
                continue
            wanted.add(node.name)
            stack.extend(i for i in node.input if i)
        return [node for node in graph.node if node.name in wanted]

    def _value(self, name: str, values: dict[str, Tensor]) -> Tensor:
        if name in values:
            return values[name]
        if name in self.parameter_names:
            return self.params[self.parameter_names[name]]
        return getattr(self, self._buffer(name))  # type: ignore[no-any-return]

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        values: dict[str, Tensor] = {self.input_name: images}
        for op, inputs, output, attrs in self.nodes:
            args = [self._value(name, values) if name else None for name in inputs]
            values[output] = self._run(op, args, inputs, attrs)
        return tuple(values[name] for name in self.outputs)

    def _run(self, op: str, args: list[Tensor | None], names: list[str], attrs: dict[str, object]) -> Tensor:
        first = args[0]
        assert first is not None
        if op == "Conv":
            weight, bias = args[1], args[2] if len(args) > 2 else None
            assert weight is not None
            kernel = list(weight.shape[2:])
            strides = list(attrs.get("strides", [1, 1]))  # type: ignore[call-overload]
            dilations = list(attrs.get("dilations", [1, 1]))  # type: ignore[call-overload]
            group = int(attrs.get("group", 1))  # type: ignore[call-overload]
            if attrs.get("auto_pad", b"NOTSET") == b"SAME_UPPER":
                first = _same_upper(first, kernel, strides, dilations)
                padding: list[int] = [0, 0]
            else:
                pads = list(attrs.get("pads", [0, 0, 0, 0]))  # type: ignore[call-overload]
                if pads[0] != pads[2] or pads[1] != pads[3]:
                    first = F.pad(first, [pads[1], pads[3], pads[0], pads[2]])
                    padding = [0, 0]
                else:
                    padding = pads[:2]
            return F.conv2d(
                first,
                weight.to(first.dtype),
                None if bias is None else bias.to(first.dtype),
                strides,
                padding,
                dilations,
                group,
            )
        if op == "Mul":
            assert args[1] is not None
            return first * args[1].to(first.dtype)
        if op == "Add":
            assert args[1] is not None
            return first + args[1].to(first.dtype)
        if op == "HardSwish":
            return F.hardswish(first)
        if op == "Relu":
            return F.relu(first)
        if op == "Clip":
            low = float(self.constants[names[1]].reshape(-1)[0]) if len(names) > 1 and names[1] else None
            high = float(self.constants[names[2]].reshape(-1)[0]) if len(names) > 2 and names[2] else None
            return first.clamp(min=low, max=high)
        if op == "ReduceMean":
            axes = list(attrs["axes"])  # type: ignore[call-overload]
            return first.mean(dim=axes, keepdim=bool(attrs.get("keepdims", 1)))
        if op == "Resize":
            return _resize_linear_asymmetric(first, self.constants[names[2]])
        if op == "Concat":
            return torch.cat([a for a in args if a is not None], dim=int(attrs["axis"]))  # type: ignore[call-overload]
        if op == "Sigmoid":
            return torch.sigmoid(first)
        if op == "Identity":
            return first
        raise UnsupportedGraph(op)

    def write_weights(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """A copy of ``model`` whose convolution weights are this module's (same names, shapes, float32)."""
        out = onnx.ModelProto()
        out.CopyFrom(model)
        for initializer in out.graph.initializer:
            key = self.parameter_names.get(initializer.name)
            if key is None:
                continue
            array = self.params[key].detach().float().cpu().numpy()
            if tuple(array.shape) != tuple(initializer.dims):
                raise UnsupportedGraph(
                    f"{initializer.name}: shape {array.shape} != {tuple(initializer.dims)}"
                )
            initializer.CopyFrom(numpy_helper.from_array(array.astype(np.float32), initializer.name))
        return out
