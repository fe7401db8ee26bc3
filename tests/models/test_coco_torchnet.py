"""The COCO graph run by torch for fine-tuning (models/coco/torchnet.py) and at another input size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.coco.optimize import CENTERNET_STRIDE, with_input_size, with_outputs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COCO_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"
LOGITS = "tower_0/CenternetHead/centernet_cls_output/BiasAdd"
TORCH_REASON = "torch is the optional 'train' extra (make models installs it)"


def _with_outputs(model: onnx.ModelProto, names: tuple[str, ...]) -> ort.InferenceSession:
    exposed = with_outputs(model, names)
    return ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])


def _image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, size, size), dtype=np.float32)


def test_the_same_network_at_512_decodes_on_its_own_grid() -> None:
    model = with_input_size(onnx.load(COCO_MODEL), 512)
    onnx.checker.check_model(model)
    assert {p.key: p.value for p in model.metadata_props}["input_size"] == "512"
    session = _with_outputs(model, ("keypoints", "wh"))
    boxes, scores, heat, edges = session.run(["boxes", "scores", "keypoints", "wh"], {"images": _image(512)})
    grid = 512 // CENTERNET_STRIDE
    assert boxes.shape == (1, grid * grid, 4) and scores.shape == (1, grid * grid, 6)
    # Every point's box is its own grid point minus/plus the edges: a stale 320 grid would be off.
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    centres = np.stack([xs, ys, xs, ys], -1).reshape(-1, 4) * CENTERNET_STRIDE
    flat_edges = edges[0].reshape(4, -1).T * np.array([-1, -1, 1, 1])
    np.testing.assert_allclose(boxes[0], centres + flat_edges, atol=1e-3)
    assert scores.max() <= heat.max() + 1e-6


def test_an_input_size_the_grid_cannot_take_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        with_input_size(onnx.load(COCO_MODEL), 500)


def test_torch_runs_the_graph_as_onnxruntime_does() -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from models.coco.torchnet import BOX_EDGES, CLASS_LOGITS, OnnxNet

    source = onnx.load(COCO_MODEL)
    net = OnnxNet(source).eval()
    image = _image(320, seed=3)
    logits, edges = _with_outputs(source, (CLASS_LOGITS, BOX_EDGES)).run(
        [CLASS_LOGITS, BOX_EDGES], {"images": image}
    )
    with torch.no_grad():
        t_logits, t_edges = net(torch.from_numpy(image))
    assert CLASS_LOGITS == LOGITS
    assert np.abs(t_logits.numpy() - logits).max() < 1e-4
    assert np.abs(t_edges.numpy() - edges).max() < 1e-2  # pixels
    assert sum(p.numel() for p in net.parameters()) > 2_000_000  # every convolution is trainable


def test_trained_weights_go_back_into_the_same_graph() -> None:
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from models.coco.torchnet import BOX_EDGES, CLASS_LOGITS, OnnxNet

    source = onnx.load(COCO_MODEL)
    net = OnnxNet(source).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(1.01)  # a change the file must carry
    written = net.write_weights(source)
    assert [n.op_type for n in written.graph.node] == [n.op_type for n in source.graph.node]
    image = _image(320, seed=5)
    before = _with_outputs(source, (CLASS_LOGITS,)).run([CLASS_LOGITS], {"images": image})[0]
    logits, edges = _with_outputs(written, (CLASS_LOGITS, BOX_EDGES)).run(
        [CLASS_LOGITS, BOX_EDGES], {"images": image}
    )
    with torch.no_grad():
        t_logits, t_edges = net(torch.from_numpy(image))
    assert np.abs(logits - before).max() > 1e-2
    assert np.abs(t_logits.numpy() - logits).max() < 1e-4
    assert np.abs(t_edges.numpy() - edges).max() < 1e-2


def test_an_operator_it_cannot_run_is_named() -> None:
    pytest.importorskip("torch", reason=TORCH_REASON)
    from models.coco.torchnet import OnnxNet, UnsupportedGraph

    node = onnx.helper.make_node("Softmax", ["x"], ["y"], name="odd")
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
    )
    with pytest.raises(UnsupportedGraph, match=r"Softmax .*odd"):
        OnnxNet(onnx.helper.make_model(graph), outputs=("y",))
