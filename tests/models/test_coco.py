"""The real-world COCO detector: the committed ONNX file, its card, and the TensorFlow.js -> ONNX converter.

The converter is checked here without npm on a small TensorFlow.js graph written by the test, which uses
every op the CenterNet graph does (stride-2 SAME convolutions, fused and plain depthwise ones, hard
swish, squeeze-excite, bilinear upsampling, concat, per-channel constants, the two heads), against a
plain numpy implementation of TensorFlow's semantics. ``make models-coco`` checks the real graph against
the original on tfjs; its figures are in the committed metrics, which are checked here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from citywatch.evaluation.images import box_iou, find_voc_pairs, read_voc
from edge.vision.detector import Detector, DetectorOptions
from models.coco import fetch
from models.coco.build import read_image
from models.coco.card import render_card
from models.coco.convert import COCO_LABELS, ConversionError, convert
from models.coco.verify import VerificationError, run_converted, run_reference, same_network
from tests.support.paths import PROJECT_ROOT

SHIPPED_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"
SHIPPED_CARD = PROJECT_ROOT / "models" / "coco-centernet.md"
SHIPPED_METRICS = PROJECT_ROOT / "models" / "coco-centernet.metrics.json"
INPUT = 32  # the test graph's input side; its heads are at stride 4


# -- the committed model -----------------------------------------------------------------------------
def test_committed_model_is_the_file_its_card_and_metrics_describe() -> None:
    metrics = json.loads(SHIPPED_METRICS.read_text())
    data = SHIPPED_MODEL.read_bytes()
    assert metrics["sha256"] == hashlib.sha256(data).hexdigest()
    assert metrics["size_bytes"] == len(data) <= 10 * 1024 * 1024  # the size budget
    assert render_card(metrics) == SHIPPED_CARD.read_text(), "re-render: python -m models.coco.card"
    source = metrics["source"]
    assert (source["package"], source["version"], source["license"]) == (fetch.PACKAGE, fetch.VERSION, "MIT")
    assert source["npm_integrity"] == fetch.INTEGRITY
    assert source["sha256"] == {Path(name).name: digest for name, digest in fetch.FILES.items()}


def test_recorded_check_against_the_original_is_within_its_tolerances() -> None:
    verification = json.loads(SHIPPED_METRICS.read_text())["verification"]
    diff, tolerance = verification["max_abs_diff"], verification["tolerance"]
    assert verification["detections_compared"] >= 50 and verification["class_mismatches"] == 0
    assert max(diff["heatmap"], diff["detection_scores"]) <= tolerance["scores"]
    assert max(diff["box_edges_px"], diff["detection_boxes_px"]) <= tolerance["pixels"]


def test_runtime_runs_the_committed_model_as_is_with_a_label_map() -> None:
    detector = Detector.load(DetectorOptions(model_path=SHIPPED_MODEL, label_map={"motorcycle": "ebike"}))
    labels = json.loads(SHIPPED_METRICS.read_text())["labels"]
    assert detector.layout == "citywatch" and detector.input_size == 320
    assert detector.labels == tuple("ebike" if label == "motorcycle" else label for label in labels)
    assert {"person", "bicycle", "ebike"} <= set(detector.labels)
    # A featureless frame has no heatmap peak above the runtime's threshold.
    assert detector.detect(np.full((480, 640, 3), 114, np.uint8)) == []


@pytest.mark.slow
def test_finds_the_annotated_people_and_ebikes_in_real_photos(shared_dir: Path) -> None:
    real = shared_dir / "data" / "ebike-real"
    if not real.is_dir():
        pytest.skip(f"{real} is absent")
    detector = Detector.load(DetectorOptions(model_path=SHIPPED_MODEL, label_map={"motorcycle": "ebike"}))
    found = {"person": 0, "ebike": 0}
    total = {"person": 0, "ebike": 0}
    for image_path, xml_path in find_voc_pairs(real):
        detections = detector.detect(read_image(image_path))
        for truth in read_voc(xml_path):
            total[truth.cls] += 1
            found[truth.cls] += any(
                d.label == truth.cls
                and box_iou((d.x1, d.y1, d.x2, d.y2), (truth.x1, truth.y1, truth.x2, truth.y2)) >= 0.5
                for d in detections
            )
    # Measured at build time: 21 of 27 people and 8 of 32 e-bikes (as motorcycles) at the default threshold.
    assert found["person"] / total["person"] >= 0.6, f"{found} of {total}"
    assert found["ebike"] / total["ebike"] >= 0.15, f"{found} of {total}"


# -- a small TensorFlow.js graph and TensorFlow's semantics in numpy ---------------------------------
def _attr_list(*values: int) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in values]}}


def _s(text: str) -> dict[str, str]:
    return {"s": base64.b64encode(text.encode()).decode()}


def _conv_attrs(stride: int, padding: str, fused: tuple[str, ...] = ()) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "strides": _attr_list(1, stride, stride, 1),
        "dilations": _attr_list(1, 1, 1, 1),
        "padding": _s(padding),
        "data_format": _s("NHWC"),
    }
    if fused:
        attrs["fused_ops"] = {"list": {"s": [_s(op)["s"] for op in fused]}}
        attrs["num_args"] = {"i": "1"}
    return attrs


class _GraphWriter:
    """Writes a graph-model JSON + shard: float weights float16-quantized as in the real package."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(7)
        self.nodes: list[dict[str, Any]] = []
        self.weights: dict[str, np.ndarray] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        if value.dtype.kind == "f":  # what the reader gets back: float16-rounded
            value = value.astype(np.float16).astype(np.float32)
        self.weights[name] = value
        self.nodes.append({"name": name, "op": "Const", "attr": {}})
        return name

    def random(self, name: str, *shape: int, scale: float = 0.5) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, name: str, op: str, inputs: list[str], **attr: Any) -> str:
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr})
        return name

    def write(self, folder: Path, outputs: dict[str, list[int]]) -> Path:
        specs, blobs = [], []
        for name, value in self.weights.items():
            spec: dict[str, Any] = {"name": name, "shape": list(value.shape), "dtype": "float32"}
            if value.dtype.kind == "f":
                spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
                blobs.append(value.astype("<f2").tobytes())
            else:
                spec["dtype"] = "int32"
                blobs.append(value.astype("<i4").tobytes())
            specs.append(spec)
        (folder / "model.bin").write_bytes(b"".join(blobs))

        def tensor(shape: list[int]) -> dict[str, Any]:
            return {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": str(d)} for d in shape]}}

        document = {
            "format": "graph-model",
            "generatedBy": "tests/models/test_coco.py",
            "convertedBy": "tests/models/test_coco.py",
            "signature": {
                "inputs": {"tower_0/images": {"name": "tower_0/images", **tensor([1, INPUT, INPUT, 3])}},
                "outputs": {name: {"name": name, **tensor(shape)} for name, shape in outputs.items()},
            },
            "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
            "weightsManifest": [{"paths": ["model.bin"], "weights": specs}],
        }
        path = folder / "model.json"
        path.write_text(json.dumps(document))
        return path


def _centernet_like(writer: _GraphWriter) -> None:
    w = writer
    w.node("tower_0/images", "Placeholder", [])
    c1 = w.node(
        "c1",
        "_FusedConv2D",
        ["tower_0/images", w.random("c1/w", 3, 3, 3, 8, scale=0.004), w.random("c1/b", 8)],
        **_conv_attrs(2, "SAME", ("BiasAdd", "Relu")),
    )
    sixth = w.node("hs/mul", "Mul", [w.const("hs/sixth", np.array(1 / 6, np.float32)), c1])
    plus3 = w.node("hs/add", "Add", [c1, w.const("hs/three", np.array(3.0, np.float32))])
    hs = w.node("hs/out", "Mul", [sixth, w.node("hs/relu6", "Relu6", [plus3])])
    d1 = w.node(
        "d1",
        "FusedDepthwiseConv2dNative",
        [hs, w.random("d1/w", 3, 3, 8, 1, scale=0.3), w.random("d1/b", 8)],
        **_conv_attrs(2, "SAME", ("BiasAdd",)),
    )
    mean = w.node(
        "se/mean", "Mean", [d1, w.const("se/axes", np.array([1, 2], np.int32))], keep_dims={"b": True}
    )
    fc = w.node(
        "se/fc",
        "_FusedConv2D",
        [mean, w.random("se/w", 1, 1, 8, 8, scale=0.3), w.random("se/b", 8)],
        **_conv_attrs(1, "SAME", ("BiasAdd",)),
    )
    se = w.node("se/out", "Mul", [d1, w.node("se/sigmoid", "Sigmoid", [fc])])
    c2 = w.node("c2", "Conv2D", [se, w.random("c2/w", 3, 3, 8, 8, scale=0.1)], **_conv_attrs(2, "SAME"))
    dw2 = w.node(
        "dw2",
        "DepthwiseConv2dNative",
        [c2, w.random("dw2/w", 3, 3, 8, 1, scale=0.3)],
        **_conv_attrs(1, "SAME"),
    )
    up = w.node(
        "up",
        "ResizeBilinear",
        [dw2, w.const("up/size", np.array([INPUT // 4, INPUT // 4], np.int32))],
        align_corners={"b": False},
        half_pixel_centers={"b": False},
    )
    cat = w.node("cat", "ConcatV2", [se, up, w.const("cat/axis", np.array(3, np.int32))])
    shifted = w.node("shift", "AddV2", [cat, w.random("shift/c", 16)])
    relu = w.node("relu", "Relu", [shifted])
    cls = w.node(
        "cls",
        "_FusedConv2D",
        [relu, w.random("cls/w", 1, 1, 16, 80, scale=0.25), w.random("cls/b", 80)],
        **_conv_attrs(1, "VALID", ("BiasAdd",)),
    )
    w.node("tower_0/keypoints", "Identity", [w.node("tower_0/Sigmoid", "Sigmoid", [cls])])
    edges = w.node(
        "edges",
        "_FusedConv2D",
        [relu, w.random("edges/w", 1, 1, 16, 4), w.random("edges/b", 4)],
        **_conv_attrs(1, "VALID", ("BiasAdd",)),
    )
    w.node(
        "tower_0/wh",
        "Identity",
        [w.node("tower_0/mul", "Mul", [edges, w.const("scale", np.array(16.0, np.float32))])],
    )


def _same_pad(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    size = x.shape[0]
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    before = total // 2  # TensorFlow: the odd pixel goes after
    return np.pad(x, ((before, total - before), (before, total - before), (0, 0)))


def _conv(x: np.ndarray, w: np.ndarray, stride: int, padding: str, depthwise: bool = False) -> np.ndarray:
    if padding == "SAME":
        x = _same_pad(x, w.shape[0], stride)
    out = (x.shape[0] - w.shape[0]) // stride + 1
    result = np.zeros((out, out, w.shape[2] if depthwise else w.shape[3]), np.float64)
    for i in range(out):
        for j in range(out):
            patch = x[i * stride : i * stride + w.shape[0], j * stride : j * stride + w.shape[1]]
            if depthwise:
                result[i, j] = (patch * w[:, :, :, 0]).sum(axis=(0, 1))
            else:
                result[i, j] = np.tensordot(patch, w, axes=([0, 1, 2], [0, 1, 2]))
    return result


def _resize_asymmetric(x: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow's ResizeBilinear without align_corners or half_pixel_centers."""
    scale = x.shape[0] / size
    source = np.arange(size) * scale
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, x.shape[0] - 1)
    frac = source - low
    rows = x[low] * (1 - frac)[:, None, None] + x[high] * frac[:, None, None]
    return rows[:, low] * (1 - frac)[None, :, None] + rows[:, high] * frac[None, :, None]


def _reference_heads(weights: dict[str, np.ndarray], image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    def sigmoid(v: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-v))

    w = {k: v.astype(np.float64) for k, v in weights.items()}
    c1 = np.maximum(_conv(image, w["c1/w"], 2, "SAME") + w["c1/b"], 0)
    hs = c1 * w["hs/sixth"] * np.clip(c1 + 3, 0, 6)  # 1/6 as float16 stores it
    d1 = _conv(hs, w["d1/w"], 2, "SAME", depthwise=True) + w["d1/b"]
    fc = _conv(d1.mean(axis=(0, 1), keepdims=True), w["se/w"], 1, "SAME") + w["se/b"]
    se = d1 * sigmoid(fc)
    dw2 = _conv(_conv(se, w["c2/w"], 2, "SAME"), w["dw2/w"], 1, "SAME", depthwise=True)
    features = np.maximum(np.concatenate([se, _resize_asymmetric(dw2, INPUT // 4)], axis=2) + w["shift/c"], 0)
    heatmap = sigmoid(_conv(features, w["cls/w"], 1, "VALID") + w["cls/b"])
    edges = (_conv(features, w["edges/w"], 1, "VALID") + w["edges/b"]) * 16
    return heatmap, edges


@pytest.fixture()
def small_graph(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    writer = _GraphWriter()
    _centernet_like(writer)
    grid = INPUT // 4
    path = writer.write(
        tmp_path, {"tower_0/keypoints": [1, grid, grid, 80], "tower_0/wh": [1, grid, grid, 4]}
    )
    return path, writer.weights


def _image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (INPUT, INPUT, 3)).astype(np.uint8)


def test_converted_graph_computes_what_tensorflow_defines(
    small_graph: tuple[Path, dict[str, np.ndarray]],
) -> None:
    path, weights = small_graph
    result = convert(path)
    assert result.input_size == INPUT and result.stride == 4
    assert set(result.ops) >= {
        "_FusedConv2D",
        "Conv2D",
        "DepthwiseConv2dNative",
        "FusedDepthwiseConv2dNative",
    }
    image = _image()
    (outputs,) = run_converted(result.model, [image])
    heatmap, edges = _reference_heads(weights, image.astype(np.float64))
    np.testing.assert_allclose(outputs["keypoints"][0].transpose(1, 2, 0), heatmap, atol=1e-5)
    np.testing.assert_allclose(outputs["wh"][0].transpose(1, 2, 0), edges, atol=1e-3)

    # The decoding: a class scores only where the heatmap is a 3x3 peak; boxes around the stride-4 points.
    padded = np.pad(heatmap, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    pooled = np.max([padded[dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)], axis=0)
    peaks = np.where(heatmap == pooled, heatmap, 0.0)
    np.testing.assert_allclose(outputs["scores"][0], peaks.reshape(-1, 80), atol=1e-5)
    assert 0 < np.count_nonzero(outputs["scores"][0]) < outputs["scores"][0].size
    ys, xs = np.mgrid[0:8, 0:8] * 4
    expected = np.stack([xs - edges[..., 0], ys - edges[..., 1], xs + edges[..., 2], ys + edges[..., 3]], -1)
    np.testing.assert_allclose(outputs["boxes"][0], expected.reshape(-1, 4), atol=1e-3)
    metadata = {p.key: p.value for p in result.model.metadata_props}
    assert metadata["layout"] == "citywatch" and json.loads(metadata["labels"]) == list(COCO_LABELS)


def test_other_input_sizes_keep_the_verified_network(small_graph: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = small_graph
    native, larger = convert(path), convert(path, 64)
    assert larger.model.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 64
    (outputs,) = run_converted(larger.model, [np.zeros((64, 64, 3), np.uint8)])
    assert outputs["boxes"].shape == (1, 16 * 16, 4) and outputs["scores"].shape == (1, 256, 80)
    assert same_network(native.model, larger.model) == len(native.model.graph.initializer) - 1
    tampered = onnx.ModelProto()
    tampered.CopyFrom(larger.model)
    weight = tampered.graph.initializer[1]
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight) + 1e-3, weight.name))
    with pytest.raises(VerificationError, match="differs"):
        same_network(native.model, tampered)
    with pytest.raises(ConversionError, match="multiple of 32"):
        convert(path, 48)


def test_an_unsupported_op_is_named_with_its_node(tmp_path: Path) -> None:
    writer = _GraphWriter()
    _centernet_like(writer)
    for node in writer.nodes:
        if node["name"] == "relu":
            node["op"] = "Elu"
    path = writer.write(tmp_path, {"tower_0/keypoints": [1, 8, 8, 80], "tower_0/wh": [1, 8, 8, 4]})
    with pytest.raises(ConversionError, match="node relu: op Elu is not supported"):
        convert(path)


@pytest.mark.slow
def test_converter_matches_tfjs_itself_where_the_reference_is_installed(
    small_graph: tuple[Path, dict[str, np.ndarray]],
) -> None:
    """The same small graph on tfjs's CPU backend (installed by ``make models-coco``), when it is there."""
    reference = fetch.DEFAULT_CACHE / "reference"
    if (
        shutil.which("node") is None
        or not (reference / "node_modules" / "@tensorflow" / "tfjs-core").is_dir()
    ):
        pytest.skip("the tfjs reference is not installed (make models-coco installs it with npm)")
    path, _ = small_graph
    image = _image()
    (theirs,) = run_reference(reference, path, [image])
    (ours,) = run_converted(convert(path).model, [image])
    np.testing.assert_allclose(
        ours["keypoints"].transpose(0, 2, 3, 1), theirs["tower_0/keypoints"], atol=1e-5
    )
    np.testing.assert_allclose(ours["wh"].transpose(0, 2, 3, 1), theirs["tower_0/wh"], atol=1e-3)
