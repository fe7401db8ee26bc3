"""The COCO detector's speed-ups (models.coco.optimize, models.coco.quantize) and how the build picks one.

Each rewrite is checked on the converter's own small CenterNet-like graph (tests/models/test_coco.py)
or on a block built here: same outputs as before the rewrite, within float rounding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.coco.build import check_kept_classes, choose
from models.coco.convert import COCO_LABELS, convert
from models.coco.optimize import OptimizeError, fuse_hard_swish, keep_classes, pad_depthwise_channels
from models.coco.quantize import calibration_blobs, float_tail, quantize_int8
from models.coco.verify import Sample, run_converted
from tests.models.test_coco import INPUT, _centernet_like, _GraphWriter, _image
from tests.support.paths import PROJECT_ROOT

SHIPPED_METRICS = PROJECT_ROOT / "models" / "coco-centernet.metrics.json"


@pytest.fixture()
def small_graph(tmp_path: Path) -> Path:
    """tests/models/test_coco.py's CenterNet-like TensorFlow.js graph (hard swish, squeeze-excite, heads)."""
    writer = _GraphWriter()
    _centernet_like(writer)
    grid = INPUT // 4
    return writer.write(
        tmp_path, {"tower_0/keypoints": [1, grid, grid, 80], "tower_0/wh": [1, grid, grid, 4]}
    )


def _ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def test_hard_swish_fusion_computes_the_same_heads(small_graph: Path) -> None:
    path = small_graph
    plain = convert(path).model
    fused, count = fuse_hard_swish(plain)
    assert count == 1 and _ops(fused).count("HardSwish") == 1
    assert len(fused.graph.node) == len(plain.graph.node) - 3  # add, clip, two muls -> one op
    images = [_image(), np.random.default_rng(9).integers(0, 256, (INPUT, INPUT, 3)).astype(np.uint8)]
    for ours, theirs in zip(run_converted(fused, images), run_converted(plain, images), strict=True):
        np.testing.assert_allclose(ours["keypoints"], theirs["keypoints"], atol=1e-6)
        np.testing.assert_allclose(ours["wh"], theirs["wh"], atol=1e-4)
    again, more = fuse_hard_swish(fused)
    assert more == 0 and _ops(again) == _ops(fused)


def test_kept_classes_score_exactly_as_in_the_full_model(small_graph: Path) -> None:
    path = small_graph
    full = convert(path).model
    kept = keep_classes(full, ["motorcycle", "person"])  # given in any order, kept in the model's
    metadata = {p.key: p.value for p in kept.metadata_props}
    assert json.loads(metadata["labels"]) == ["person", "motorcycle"]
    assert kept.graph.output[1].type.tensor_type.shape.dim[2].dim_value == 2
    (ours,), (theirs,) = run_converted(kept, [_image()]), run_converted(full, [_image()])
    np.testing.assert_array_equal(ours["scores"], theirs["scores"][..., [0, 3]])
    assert check_kept_classes(full, kept, [Sample("noise", _image())]) == 0.0
    with pytest.raises(OptimizeError, match=r"cannot keep classes \['e-bike'\]"):
        keep_classes(full, ["person", "e-bike"])


def _separable_block(channels: int) -> onnx.ModelProto:
    """1x1 conv + relu -> 3x3 depthwise -> 1x1 conv, the neck's shape, ``channels`` wide."""
    rng = np.random.default_rng(4)
    weights = {
        "a/w": rng.normal(size=(channels, 3, 1, 1)),
        "a/b": rng.normal(size=channels),
        "d/w": rng.normal(size=(channels, 1, 3, 3)),
        "c/w": rng.normal(size=(4, channels, 1, 1)),
        "c/b": rng.normal(size=4),
    }
    nodes = [
        helper.make_node("Conv", ["x", "a/w", "a/b"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["r", "d/w"], ["d"], group=channels, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "c/w", "c/b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_odd_width_depthwise_blocks_are_padded_without_changing_outputs() -> None:
    import onnxruntime as ort

    block = _separable_block(6)
    padded, count = pad_depthwise_channels(block, multiple=8)
    assert count == 1
    shapes = {t.name: list(t.dims) for t in padded.graph.initializer}
    assert shapes["a/w"] == [8, 3, 1, 1] and shapes["d/w"] == [8, 1, 3, 3] and shapes["c/w"] == [4, 8, 1, 1]
    x = np.random.default_rng(5).normal(size=(1, 3, 8, 8)).astype(np.float32)
    run = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for m in (block, padded)
    ]
    np.testing.assert_allclose(run[1], run[0], atol=1e-5)
    assert pad_depthwise_channels(_separable_block(16), multiple=8)[1] == 0  # already a multiple


def test_int8_quantisation_calibrates_on_rendered_frames_and_keeps_the_decoding_float(
    small_graph: Path,
) -> None:
    import onnxruntime as ort

    path = small_graph
    model = convert(path).model
    blobs = calibration_blobs(INPUT, images=4)
    assert (
        len(blobs) == 4
        and blobs[0].shape == (1, 3, INPUT, INPUT)
        and 0.0 <= blobs[0].min() <= blobs[0].max() <= 1.0
    )
    assert not np.array_equal(blobs[0], blobs[1])  # different rendered frames
    quantized = quantize_int8(model, blobs)
    ops = _ops(quantized)
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    tail = set(float_tail(model))
    nodes = {node.name: node for node in quantized.graph.node}
    assert tail and tail <= set(nodes)  # the decoding is all there ...
    quantized_inputs = {node.input[0] for node in quantized.graph.node if node.op_type == "QuantizeLinear"}
    assert not {out for name in tail for out in nodes[name].output} & quantized_inputs  # ... and float
    metadata = {p.key: p.value for p in quantized.metadata_props}
    assert json.loads(metadata["labels"]) == list(COCO_LABELS)
    blob = blobs[0]
    ours, theirs = (
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            ["scores"], {"images": blob}
        )[0]
        for m in (quantized, model)
    )
    # 8 bits: each class's strongest peak close, not equal (ties between neighbours move the peaks).
    assert ours.shape == theirs.shape and np.abs(ours.max(axis=1) - theirs.max(axis=1)).max() < 0.1


def _row(ms: float, ap: float | None) -> dict[str, Any]:
    return {"speed": {"quietest_round_median_ms": ms}, "real": {"ebike_ap50": ap}}


def test_the_build_keeps_the_best_candidate_within_budget() -> None:
    candidates = {"plain": _row(9.0, 0.9), "fp32": _row(14.0, 0.64), "int8": _row(12.0, 0.34)}
    assert choose(candidates, 15.0) == ("fp32", True)  # the plain conversion is a reference only
    assert choose(candidates, 13.0) == ("int8", True)
    assert choose(candidates, 10.0) == ("fp32", False)
    assert choose({"fp32": _row(14.0, None), "int8": _row(12.0, None)}, 15.0) == ("int8", True)


def test_recorded_candidates_and_choice_are_consistent() -> None:
    metrics = json.loads(SHIPPED_METRICS.read_text())
    selection, candidates = metrics["selection"], metrics["candidates"]
    assert set(candidates) == {"plain", "fp32", "int8"}
    assert metrics["precision"] == selection["chosen"]
    assert metrics["speed"] == candidates[selection["chosen"]]["speed"]
    assert choose(candidates, selection["budget_ms"]) == (selection["chosen"], selection["within_budget"])
    assert metrics["size_bytes"] <= 10 * 1024 * 1024
