"""Make the converted CenterNet faster on one CPU core without changing what it computes.

Two rewrites of the ONNX graph, each checked by the build against the unoptimised model:

- ``fuse_hard_swish``: the converter spells MobileNetV3's hard swish as TensorFlow did,
  ``(c * x) * relu6(x + 3)`` with ``c`` = 1/6 rounded to float16 (0.16662598): four element-wise
  passes over the largest feature maps. onnxruntime's single ``HardSwish`` op computes
  ``x * relu6(x + 3) / 6``; the leftover factor ``k = 6c`` (0.99975586) is folded into the weights of
  the convolutions that read the result (through squeeze-excite means and gates, which are linear in
  it), and only where no convolution follows (a residual Add) is it applied by an explicit ``Mul``.
- ``keep_classes``: the class heatmap's last convolution computes one channel per COCO class at
  stride 4; each class's heatmap is independent of the others, so slicing that convolution to the
  classes we use gives the same scores for them, with less work in the head and the runtime's decoding.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

HEATMAP_OUTPUT = "keypoints"  # the converter's name for the class heatmap (see models.coco.convert)


class OptimizeError(ValueError):
    """The graph does not have the shape these rewrites expect."""


def _scalar(initializers: dict[str, np.ndarray], name: str) -> float | None:
    value = initializers.get(name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def fuse_hard_swish(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with every ``(c*x) * relu6(x+3)`` replaced by ``HardSwish``; and how many."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = list(graph.node)
    producer = {out: node for node in nodes for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in nodes:
        for name in node.input:
            consumers[name].append(node)

    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    factors: dict[str, float] = {}  # HardSwish output -> the factor it lacks against the original
    for add in nodes:
        if add.op_type != "Add" or len(add.input) != 2 or _scalar(weights, add.input[1]) != 3.0:
            continue
        x = add.input[0]
        readers = consumers[add.output[0]]
        if len(readers) != 1 or readers[0].op_type != "Clip":
            continue
        clip = readers[0]
        if (_scalar(weights, clip.input[1]), _scalar(weights, clip.input[2])) != (0.0, 6.0):
            continue
        users = consumers[clip.output[0]]
        if len(users) != 1 or users[0].op_type != "Mul":
            continue
        mul = users[0]
        other = next(name for name in mul.input if name != clip.output[0])
        scaled = producer.get(other)
        if scaled is None or scaled.op_type != "Mul" or x not in scaled.input or len(consumers[other]) != 1:
            continue  # not hard swish (e.g. the squeeze-excite gate c * relu6(y + 3))
        c = _scalar(weights, next(name for name in scaled.input if name != x))
        if c is None:
            continue
        replaced[id(add)] = helper.make_node("HardSwish", [x], [mul.output[0]], name=f"{mul.name}/hard_swish")
        dropped |= {id(clip), id(mul), id(scaled)}
        factors[mul.output[0]] = 6.0 * c

    rewritten = [replaced.get(id(n), n) for n in nodes if id(n) not in dropped]
    consumers = defaultdict(list)
    for node in rewritten:
        for name in node.input:
            consumers[name].append(node)
    extra: list[onnx.NodeProto] = []
    new_weights: dict[str, np.ndarray] = {}
    scaled_convs: set[int] = set()

    def restore(tensor: str, factor: float, reader: onnx.NodeProto) -> None:
        """Give ``reader`` the original value of ``tensor`` (which lacks ``factor``)."""
        if reader.op_type == "Conv" and reader.input[0] == tensor:
            if id(reader) in scaled_convs:
                raise OptimizeError(f"{reader.name}: reached twice while folding hard swish factors")
            scaled_convs.add(id(reader))
            kernel = reader.input[1]
            new_weights[kernel] = (weights[kernel] * np.float32(factor)).astype(np.float32)
            return
        if reader.op_type == "ReduceMean" or (reader.op_type == "Mul" and reader.input[0] != reader.input[1]):
            # Linear in ``tensor``: the result lacks the same factor; pass it on (squeeze-excite).
            for later in consumers[reader.output[0]]:
                restore(reader.output[0], factor, later)
            return
        fixed = f"{tensor}/restored"
        if fixed not in restored:
            restored.add(fixed)
            new_weights[f"{tensor}/factor"] = np.array(factor, np.float32)
            extra.append(helper.make_node("Mul", [tensor, f"{tensor}/factor"], [fixed], name=fixed))
        reader.input[:] = [fixed if name == tensor else name for name in reader.input]

    restored: set[str] = set()
    for tensor, factor in factors.items():
        for reader in list(consumers[tensor]):
            restore(tensor, factor, reader)
    order = _topological(rewritten + extra, [i.name for i in graph.input], set(weights) | set(new_weights))
    del graph.node[:]
    graph.node.extend(order)
    kept = {name for node in order for name in node.input}
    initializers = [
        numpy_helper.from_array(new_weights.get(t.name, weights[t.name]), t.name)
        for t in graph.initializer
        if t.name in kept
    ]
    initializers += [
        numpy_helper.from_array(v, k) for k, v in new_weights.items() if k not in weights and k in kept
    ]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    return model, len(factors)


def _topological(nodes: list[onnx.NodeProto], inputs: list[str], constants: set[str]) -> list[onnx.NodeProto]:
    ready = set(inputs) | constants | {""}
    pending = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = [n for n in pending if all(name in ready for name in n.input)]
        if not progressed:
            raise OptimizeError(f"graph has a cycle or a missing input near {pending[0].name}")
        for node in progressed:
            ordered.append(node)
            ready.update(node.output)
        pending = [n for n in pending if all(name not in ready for name in n.output)]
    return ordered


def keep_classes(model: onnx.ModelProto, labels: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that scores only ``labels`` (in the model's order), same values for them."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    metadata = {p.key: p.value for p in model.metadata_props}
    current = json.loads(metadata["labels"])
    unknown = [label for label in labels if label not in current]
    if unknown or not labels:
        raise OptimizeError(f"cannot keep classes {unknown or '(none)'}: the model has {current}")
    indices = sorted(current.index(label) for label in set(labels))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    conv = producer.get(HEATMAP_OUTPUT)
    while conv is not None and conv.op_type in ("Identity", "Sigmoid"):  # keypoints <- sigmoid <- conv
        conv = producer.get(conv.input[0])
    readers = [n for n in graph.node if conv is not None and conv.output[0] in n.input]
    if conv is None or conv.op_type != "Conv" or len(readers) != 1 or readers[0].op_type != "Sigmoid":
        raise OptimizeError(f"no convolution of its own feeding {HEATMAP_OUTPUT}: not the converter's graph")
    for tensor in graph.initializer:
        if tensor.name in conv.input[1:]:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor)[indices], tensor.name))
    scores = next(o for o in graph.output if o.name == "scores")
    scores.type.tensor_type.shape.dim[2].dim_value = len(indices)
    del graph.value_info[:]
    kept_labels = [current[i] for i in indices]
    for prop in model.metadata_props:
        if prop.key == "labels":
            prop.value = json.dumps(kept_labels)
    onnx.checker.check_model(model, full_check=True)
    return model


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(helper.get_attribute_value(a)) for a in node.attribute if a.name == name), default)


def pad_depthwise_channels(model: onnx.ModelProto, multiple: int = 16) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` whose odd-width separable blocks carry zero channels up to ``multiple``.

    onnxruntime runs convolutions in its blocked (NCHWc) layout only when the channel count is a
    multiple of the SIMD block (16 floats with AVX-512, 8 with AVX2); the neck's ``1x1 conv -> relu ->
    depthwise -> 1x1 conv`` blocks have 18, 22 and 24 channels, so they fall back to the plain layout
    with reorders around them. The added channels are computed from zero weights and bias (relu(0) = 0)
    and read with zero weights by the next convolution: the outputs do not change.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def widen(name: str, extra: int, axis: int) -> None:
        value = numpy_helper.to_array(weights[name])
        pad = [(0, 0)] * value.ndim
        pad[axis] = (0, extra)
        weights[name].CopyFrom(numpy_helper.from_array(np.pad(value, pad).astype(np.float32), name))

    padded = 0
    for depthwise in list(graph.node):
        if depthwise.op_type != "Conv" or depthwise.input[1] not in weights:
            continue
        channels = weights[depthwise.input[1]].dims[0]
        if _attribute(depthwise, "group", 1) != channels or channels % multiple == 0:
            continue
        relu = producer.get(depthwise.input[0])
        first = producer.get(relu.input[0]) if relu is not None and relu.op_type == "Relu" else None
        readers = consumers[depthwise.output[0]]
        if (
            first is None
            or relu is None
            or first.op_type != "Conv"
            or len(consumers[first.output[0]]) != 1
            or len(consumers[relu.output[0]]) != 1
            or len(readers) != 1
            or readers[0].op_type != "Conv"
            or _attribute(readers[0], "group", 1) != 1
        ):
            continue  # not a block whose channels nobody else sees
        extra = -channels % multiple
        for conv in (first, depthwise):
            widen(conv.input[1], extra, 0)
            if len(conv.input) > 2:
                widen(conv.input[2], extra, 0)
        for attribute in depthwise.attribute:
            if attribute.name == "group":
                attribute.i = channels + extra
        widen(readers[0].input[1], extra, 1)
        padded += 1
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    return model, padded


CENTERNET_STRIDE = 4  # the decoding's grid of box centres


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` with the tensors ``names`` as extra outputs (to compare or read inner values)."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    for name in names:
        exposed.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return exposed


def with_input_size(model: onnx.ModelProto, size: int) -> onnx.ModelProto:
    """The same network for a ``size`` x ``size`` input: the graph is fully convolutional, so only the
    input's declared shape, the decoding's grid of box centres and the ``input_size`` metadata change."""
    if size % 32:
        raise ValueError(f"the input size must be a multiple of 32, got {size}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    dims = out.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = size
    dims[3].dim_value = size
    del out.graph.value_info[:]
    grid = size // CENTERNET_STRIDE
    for tensor in out.graph.output:  # scores [1, points, classes], boxes [1, points, 4]
        tensor.type.tensor_type.shape.dim[1].dim_value = grid * grid
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    centres = (
        np.stack([xs, ys, xs, ys], axis=-1).reshape(1, grid * grid, 4).astype(np.float32) * CENTERNET_STRIDE
    )
    found = False
    for initializer in out.graph.initializer:
        if initializer.name == "decode/centres":
            initializer.CopyFrom(numpy_helper.from_array(centres, "decode/centres"))
            found = True
    if not found:
        raise ValueError("the graph has no decode/centres constant: not a converted CenterNet")
    for prop in out.metadata_props:
        if prop.key == "input_size":
            prop.value = str(size)
    return out
