"""Reads a TensorFlow.js graph model (``model.json`` + weight shards) without TensorFlow.

The JSON holds a TensorFlow GraphDef in its JSON form (``modelTopology.node``) and a ``weightsManifest``
that says, in order, the name, shape, dtype and quantization of every constant packed into the shards.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class TfjsError(ValueError):
    """The graph model cannot be read, or uses something this reader does not know."""


@dataclass(frozen=True, slots=True)
class Node:
    """One GraphDef node; ``inputs`` are tensor names (``name`` or ``name:index``), control inputs dropped."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attr: dict[str, Any] = field(default_factory=dict)

    def string(self, key: str, default: str | None = None) -> str:
        if key not in self.attr:
            if default is None:
                raise TfjsError(f"node {self.name} ({self.op}) has no attribute {key!r}")
            return default
        return base64.b64decode(self.attr[key]["s"]).decode()

    def ints(self, key: str) -> list[int]:
        if key not in self.attr:
            raise TfjsError(f"node {self.name} ({self.op}) has no attribute {key!r}")
        return [int(v) for v in self.attr[key].get("list", {}).get("i", [])]

    def strings(self, key: str) -> list[str]:
        values = self.attr.get(key, {}).get("list", {}).get("s", [])
        return [base64.b64decode(v).decode() for v in values]

    def boolean(self, key: str, default: bool = False) -> bool:
        return bool(self.attr.get(key, {}).get("b", default))


@dataclass(frozen=True, slots=True)
class GraphModel:
    nodes: tuple[Node, ...]
    weights: dict[str, np.ndarray]
    inputs: dict[str, tuple[int, ...]]  # signature input name -> shape
    outputs: dict[str, tuple[int, ...]]  # signature output name -> shape
    metadata: dict[str, str]  # format, generatedBy, convertedBy

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TfjsError(f"the graph has no node {name!r}")


def _shape(tensor_shape: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(d["size"]) for d in tensor_shape.get("dim", []))


def _dequantize(raw: bytes, offset: int, spec: dict[str, Any]) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in spec["shape"]]
    count = int(np.prod(shape)) if shape else 1
    quantization = spec.get("quantization")
    if quantization is None:
        if spec["dtype"] not in _DTYPES:
            raise TfjsError(f"weight {spec['name']}: dtype {spec['dtype']} is not supported")
        stored = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        values: np.ndarray = np.frombuffer(raw, stored, count, offset).astype(_DTYPES[spec["dtype"]])
        return values.reshape(shape), offset + count * stored.itemsize
    kind = quantization["dtype"]
    if kind == "float16":  # half floats widen to float32 exactly
        values = np.frombuffer(raw, np.dtype("<f2"), count, offset).astype(np.float32)
        return values.reshape(shape), offset + count * 2
    if kind in ("uint8", "uint16"):  # affine: value = q * scale + min
        packed = np.dtype("<u1" if kind == "uint8" else "<u2")
        values = np.frombuffer(raw, packed, count, offset).astype(np.float32)
        values = values * np.float32(quantization["scale"]) + np.float32(quantization["min"])
        return values.reshape(shape).astype(_DTYPES[spec["dtype"]]), offset + count * packed.itemsize
    raise TfjsError(f"weight {spec['name']}: quantization {kind} is not supported")


def load(model_json: Path) -> GraphModel:
    """Parse ``model_json`` and the shards it names (beside it) into nodes and numpy weights."""
    document = json.loads(model_json.read_text())
    if document.get("format") != "graph-model":
        raise TfjsError(
            f"{model_json} is not a TensorFlow.js graph model (format {document.get('format')!r})"
        )
    weights: dict[str, np.ndarray] = {}
    for group in document["weightsManifest"]:
        raw = b"".join((model_json.parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            weights[spec["name"]], offset = _dequantize(raw, offset, spec)
        if offset != len(raw):
            raise TfjsError(f"{group['paths']}: manifest covers {offset} bytes of {len(raw)}")
    nodes = tuple(
        Node(
            name=raw_node["name"],
            op=raw_node["op"],
            inputs=tuple(i for i in raw_node.get("input", []) if not i.startswith("^")),
            attr=raw_node.get("attr", {}),
        )
        for raw_node in document["modelTopology"]["node"]
    )
    signature = document.get("signature", {})
    return GraphModel(
        nodes=nodes,
        weights=weights,
        inputs={k: _shape(v["tensorShape"]) for k, v in signature.get("inputs", {}).items()},
        outputs={k: _shape(v["tensorShape"]) for k, v in signature.get("outputs", {}).items()},
        metadata={k: str(document[k]) for k in ("format", "generatedBy", "convertedBy") if k in document},
    )
