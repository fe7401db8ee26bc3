"""Object detector on onnxruntime for two output layouts.

``citywatch`` (the project's own models, see models/ebike-detector.md): input ``images`` float32
[1,3,S,S] RGB 0..1 letterboxed; outputs ``boxes`` [1,N,4] x1,y1,x2,y2 in input pixels and ``scores``
[1,N,C] sigmoid class probabilities; ``metadata_props`` ``input_size``, ``labels`` (JSON list), ``layout``.

``yolo`` (the common YOLOv8 / YOLO11 / YOLOv9 export): one output [1, 4+C, N] with cx,cy,w,h in input
pixels followed by C class scores; labels from the ``names`` metadata Ultralytics writes, or the config.

``auto`` picks the layout from the ``layout`` metadata, else from the outputs' names and shapes. Every
problem with the model file (missing, corrupt, unexpected shapes, label count mismatch) raises
:class:`ModelError` from :meth:`Detector.load`, so an agent fails at start, not on the first frame.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import onnxruntime as ort

from edge.vision.config import renamed_threshold_problem
from edge.vision.errors import VisionStartError
from edge.vision.types import DEFAULT_SCORE_THRESHOLD, Detection

Layout = Literal["auto", "citywatch", "yolo"]
LETTERBOX_PAD = 114  # grey padding, as YOLO exports and our training both use


class ModelError(VisionStartError):
    """The model file cannot be used; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class DetectorOptions:
    model_path: Path
    layout: Layout = "auto"
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    iou_threshold: float = 0.45
    threads: int = 1
    labels: tuple[str, ...] | None = None
    input_size: int | None = None
    class_thresholds: dict[str, float] = field(default_factory=dict)  # by reported label (after label_map)
    label_map: dict[str, str] = field(default_factory=dict)  # model label -> our label, e.g. e-bike -> ebike
    keep_labels: tuple[str, ...] = ()  # after mapping; empty keeps every class
    max_detections: int = 100
    warmup_runs: int = 1


@dataclass(frozen=True, slots=True)
class Letterbox:
    scale: float
    pad_x: float
    pad_y: float


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio into a ``size`` x ``size`` canvas padded with grey."""
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = cv2.copyMakeBorder(
        resized,
        pad_y,
        size - new_h - pad_y,
        pad_x,
        size - new_w - pad_x,
        cv2.BORDER_CONSTANT,
        value=(LETTERBOX_PAD, LETTERBOX_PAD, LETTERBOX_PAD),
    )
    return canvas, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y)


def _parse_labels(metadata: dict[str, str]) -> list[str] | None:
    if "labels" in metadata:
        labels = json.loads(metadata["labels"])
        if isinstance(labels, dict):  # {"0": "person", ...}
            return [str(labels[k]) for k in sorted(labels, key=lambda k: int(k))]
        return [str(label) for label in labels]
    if "names" in metadata:  # Ultralytics writes a Python dict literal: "{0: 'person', 1: 'bicycle'}"
        names = ast.literal_eval(metadata["names"])
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        return [str(name) for name in names]
    return None


def _static_dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def labels_problem(field_path: str, wanted: Iterable[str], detector: Detector) -> str | None:
    """The sentence for a config naming classes the model does not output (after its label_map), or None.
    One check for a start-up preflight and for a config applied live."""
    missing = sorted(set(wanted) - set(detector.output_labels))
    if not missing:
        return None
    return f"{field_path}: {missing} are not among the model's labels {list(detector.output_labels)}"


class Detector:
    """Letterbox -> onnxruntime -> decode -> label map -> per-label NMS -> detections in frame pixels.

    Thresholds, ``keep_labels`` and NMS all work on the reported labels (after ``label_map``): with
    motorcycle and bicycle both mapped to ebike, an e-bike seen as both keeps only its surer box.
    """

    def __init__(self, options: DetectorOptions, session: ort.InferenceSession, metadata: dict[str, str]):
        self.options = options
        self._session = session
        self.metadata = metadata
        model_input = session.get_inputs()[0]
        self._input_name = model_input.name
        self._input_dtype = np.float16 if "float16" in model_input.type else np.float32
        outputs = session.get_outputs()
        self._output_names = [o.name for o in outputs]
        self.layout: Literal["citywatch", "yolo"] = self._resolve_layout(outputs)
        self.input_size = self._resolve_input_size(model_input.shape)
        self.labels = self._resolve_labels(outputs)  # reported label of each model class, in model order
        # The distinct reported labels, and each model class's index among them.
        self.output_labels = tuple(dict.fromkeys(self.labels))
        self._output_of_class = np.array([self.output_labels.index(label) for label in self.labels], np.int64)
        self._thresholds = self._resolve_thresholds()
        self._wanted = np.array(
            [not options.keep_labels or label in options.keep_labels for label in self.output_labels]
        )
        self.last_inference_ms = 0.0

    @classmethod
    def load(cls, options: DetectorOptions) -> Detector:
        """Open and check the model, warm it up; raise :class:`ModelError` saying what is wrong."""
        path = Path(options.model_path)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist (set detector.model in the device config)")
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # The memory pattern pre-plans one block for every intermediate tensor: without it the arena reuses
        # buffers, ~30 MB less resident for the street detector at 512 with the same speed (a Pi's RAM).
        session_options.enable_mem_pattern = False
        session_options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=session_options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeException types
            raise ModelError(f"model file {path} is not a loadable ONNX model: {exc}") from None
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        try:
            detector = cls(options, session, metadata)
            for _ in range(options.warmup_runs):
                detector.detect(np.zeros((detector.input_size, detector.input_size, 3), np.uint8))
        except ModelError as exc:
            raise ModelError(f"model file {path}: {exc}") from None
        except Exception as exc:
            raise ModelError(f"model file {path} failed its warm-up inference: {exc}") from None
        return detector

    def retuned(self, options: DetectorOptions) -> Detector:
        """This loaded model with other thresholds, labels, label map or kept labels (a config applied
        live): no reload, no warm-up. Raises ModelError when they do not fit the model, or when the
        options name another model, layout, thread count or input size (those need a new session)."""
        fixed = ("model_path", "layout", "threads", "input_size")
        if differ := [name for name in fixed if getattr(options, name) != getattr(self.options, name)]:
            raise ModelError(f"{', '.join(differ)} cannot change on a loaded model: load it again")
        return Detector(options, self._session, self.metadata)

    def _resolve_layout(self, outputs: list[Any]) -> Literal["citywatch", "yolo"]:
        wanted: str = self.options.layout
        if wanted == "auto":
            declared = self.metadata.get("layout", "")
            if declared in ("citywatch", "yolo"):
                wanted = declared
            elif {"boxes", "scores"} <= set(self._output_names):
                wanted = "citywatch"
            elif len(outputs) == 1 and len(outputs[0].shape) == 3:
                wanted = "yolo"
            else:
                shapes = {o.name: o.shape for o in outputs}
                raise ModelError(
                    f"cannot tell the output layout from outputs {shapes}: set detector.layout "
                    "to 'citywatch' (boxes [1,N,4] + scores [1,N,C]) or 'yolo' ([1,4+C,N])"
                )
        if wanted == "citywatch" and not {"boxes", "scores"} <= set(self._output_names):
            raise ModelError(
                f"layout 'citywatch' needs outputs 'boxes' and 'scores', model has {self._output_names}"
            )
        if wanted == "yolo" and (len(outputs) != 1 or len(outputs[0].shape) != 3):
            raise ModelError(
                f"layout 'yolo' needs one output [1, 4+classes, N], model has {[o.shape for o in outputs]}"
            )
        return "citywatch" if wanted == "citywatch" else "yolo"

    def _resolve_input_size(self, shape: list[Any]) -> int:
        if len(shape) != 4:
            raise ModelError(f"input must be [1,3,H,W], model input is {shape}")
        if self.options.input_size:
            return self.options.input_size
        height, width = _static_dim(shape[2]), _static_dim(shape[3])
        if height and width:
            if height != width:
                raise ModelError(f"input must be square (letterboxed), model input is {height}x{width}")
            return height
        for key in ("input_size", "imgsz"):
            if key in self.metadata:
                value = ast.literal_eval(self.metadata[key])
                return int(value[0] if isinstance(value, list | tuple) else value)
        raise ModelError("input size is dynamic and not in the metadata: set detector.input_size")

    def _class_count(self, outputs: list[Any]) -> int | None:
        if self.layout == "citywatch":
            scores = next(o for o in outputs if o.name == "scores")
            return _static_dim(scores.shape[2]) if len(scores.shape) == 3 else None
        channels = _static_dim(outputs[0].shape[1])
        return channels - 4 if channels else None

    def _resolve_labels(self, outputs: list[Any]) -> tuple[str, ...]:
        count = self._class_count(outputs)
        labels = list(self.options.labels) if self.options.labels else _parse_labels(self.metadata)
        if labels is None:
            if count is None:
                raise ModelError("no labels in the metadata and a dynamic class count: set detector.labels")
            labels = [f"class_{i}" for i in range(count)]
        if count is not None and count != len(labels):
            raise ModelError(f"the model scores {count} classes but {len(labels)} labels are given: {labels}")
        unknown = set(self.options.label_map) - set(labels)
        if unknown:
            raise ModelError(f"label_map names {sorted(unknown)}, which the model does not have: {labels}")
        return tuple(self.options.label_map.get(label, label) for label in labels)

    def _resolve_thresholds(self) -> np.ndarray:
        """Minimum score per reported label; a threshold on a label never reported is an error."""
        class_thresholds = self.options.class_thresholds
        if problem := renamed_threshold_problem(self.options.label_map, class_thresholds):
            raise ModelError(problem)
        unknown = sorted(set(class_thresholds) - set(self.output_labels))
        if unknown:
            raise ModelError(
                f"class_thresholds names {unknown}, which the model does not report "
                f"(its labels after label_map: {list(self.output_labels)})"
            )
        return np.array(
            [class_thresholds.get(label, self.options.score_threshold) for label in self.output_labels],
            np.float32,
        )

    def detect(self, frame: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        """Detections in ``frame`` pixels; with ``roi`` (x1, y1, x2, y2) only that crop is looked at."""
        off_x, off_y = 0, 0
        image = frame
        if roi is not None:
            off_x, off_y = roi[0], roi[1]
            image = frame[roi[1] : roi[3], roi[0] : roi[2]]
        canvas, box = letterbox(image, self.input_size)
        blob = cv2.dnn.blobFromImage(canvas, scalefactor=1.0 / 255.0, swapRB=True)
        started = time.perf_counter()
        outputs = self._session.run(None, {self._input_name: blob.astype(self._input_dtype, copy=False)})
        self.last_inference_ms = (time.perf_counter() - started) * 1000.0
        named = dict(zip(self._output_names, outputs, strict=True))
        if self.layout == "citywatch":
            boxes = np.asarray(named["boxes"][0], np.float32)
            scores = np.asarray(named["scores"][0], np.float32)
        else:
            rows = np.asarray(outputs[0][0], np.float32).T  # [N, 4+C]
            cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            scores = rows[:, 4:]
        height, width = image.shape[:2]
        return self._decode(boxes, scores, box, width, height, off_x, off_y)

    def _decode(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        box: Letterbox,
        width: int,
        height: int,
        off_x: int,
        off_y: int,
    ) -> list[Detection]:
        if boxes.size == 0:
            return []
        class_ids = scores.argmax(axis=1)
        best = scores[np.arange(len(class_ids)), class_ids]
        label_ids = self._output_of_class[class_ids]  # model class -> reported label
        keep = (best >= self._thresholds[label_ids]) & self._wanted[label_ids]
        if not keep.any():
            return []
        boxes, label_ids, best = boxes[keep], label_ids[keep], best[keep]
        # Undo the letterbox, clip to the image.
        boxes = (boxes - np.array([box.pad_x, box.pad_y, box.pad_x, box.pad_y], np.float32)) / box.scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        xywh = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
        # Per reported label, so two source classes mapped to one label cannot both keep the same object.
        kept = cv2.dnn.NMSBoxesBatched(
            xywh.tolist(),
            best.tolist(),
            label_ids.tolist(),
            score_threshold=0.0,
            nms_threshold=self.options.iou_threshold,
        )
        order = sorted(np.asarray(kept, dtype=np.int64).reshape(-1).tolist(), key=lambda i: -best[i])
        return [
            Detection(
                label=self.output_labels[int(label_ids[i])],
                score=float(best[i]),
                x1=float(boxes[i, 0]) + off_x,
                y1=float(boxes[i, 1]) + off_y,
                x2=float(boxes[i, 2]) + off_x,
                y2=float(boxes[i, 3]) + off_y,
            )
            for i in order[: self.options.max_detections]
            if boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]
        ]
