"""Licence-plate reading for the street analyzer: a stage behind an interface, chosen by name.

``PlateReader.read(vehicle_crop_bgr)`` returns a :class:`PlateReading` (text without the separator dot,
colour, confidence, the plate's box in the crop) or None when no plate is read with confidence.

Readers (``PLATE_READERS``, the street config's ``plate.reader``):

- ``citywatch``: the project's own two small ONNX networks on onnxruntime (models/plates/, trained on
  rendered plates by ``python -m models.plates.train``; figures in models/plates/plate-reader.md): a
  heatmap localiser on the letterboxed crop (and, on crops over 400 px such as PTZ close-ups where that
  gives no sure reading, in overlapping windows too), then a recogniser classifying 32 columns across the plate
  (gap or character) with a colour head, on the plate cut out with a margin (and three wider cuts:
  the most confident reading wins);
  the text must pass the plate grammar (province, letter, five or six serial characters).
- ``none``: never reads a plate (cameras that must not, or devices too small to).

The PyPI candidates were checked and are not used: ``hyperlpr3`` downloads its models on import, and
``hyperlpr2`` needs OpenCV 4's Caffe importer and cascade classifier (gone from OpenCV 5) and read
under half of the rendered test plates exactly (docs/evaluation.md, "Plate reading").

The pre- and post-processing here is also what training uses (``models/plates/train.py`` imports it),
so the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

PlateColour = Literal["blue", "green", "yellow"]
COLOURS: tuple[PlateColour, ...] = ("blue", "green", "yellow")

# Plate grammar (GA 36-2018): the 31 provincial abbreviations, letters without I and O, digits.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
CHARSET = PROVINCES + LETTERS + DIGITS  # recogniser classes 1..len; 0 is a gap

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "plates"
LOCALISER_FILE = "plate-localiser.onnx"
RECOGNISER_FILE = "plate-recogniser.onnx"

LOC_SIZE = 128  # the localiser's square input
LOC_STRIDE = 4
REC_SIZE = (128, 32)  # the recogniser's input (width, height)
# The recogniser sees the localised box grown by these fractions on each side, so a box a little off
# still holds the whole plate.
REC_PAD_X = 0.05
REC_PAD_Y = 0.12
LETTERBOX_PAD = 114
# Large crops (close-ups) are also searched in windows of these shares of their longer side.
WINDOW_MIN_SIDE = 400
WINDOW_FRACTIONS = (0.5, 0.35)
WINDOW_CANDIDATES = 2  # the surest windowed plate boxes recognised besides the whole crop's
WINDOWS_BELOW = 0.5  # windows are searched when the whole crop gives no reading this sure
SURE_COLOUR = 0.9  # a colour-head probability above which the plate's length must agree


@dataclass(frozen=True, slots=True)
class PlateReading:
    """A read plate: ``text`` without the dot (``京A12345``), ``confidence`` 0..1 (the least sure
    character's probability), ``box`` (x1, y1, x2, y2) in the vehicle crop's pixels."""

    text: str
    colour: PlateColour
    confidence: float
    box: tuple[int, int, int, int]


class PlateReader(Protocol):
    def read(self, vehicle_crop_bgr: np.ndarray) -> PlateReading | None: ...


class PlateModelError(RuntimeError):
    """The plate model files cannot be used; the message says which file and why."""


# --- processing shared with training -------------------------------------------------------------


def letterbox(image: np.ndarray, size: int = LOC_SIZE) -> tuple[np.ndarray, float]:
    """``image`` scaled to fit ``size`` x ``size``, at the top-left of a grey square; and the scale."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.full((size, size, 3), LETTERBOX_PAD, np.uint8)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=interpolation)
    return out, scale


def to_tensor(image: np.ndarray) -> np.ndarray:
    """BGR uint8 HxWx3 -> float32 [1, 3, H, W] in -0.5..0.5."""
    return (image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0 - 0.5).astype(np.float32)


def plate_patch(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The recogniser's input: ``box`` grown by the pads, cut out (edges replicated), resized."""
    x1, y1, x2, y2 = box
    w, h = max(1.0, x2 - x1), max(1.0, y2 - y1)
    gx1, gx2 = round(x1 - REC_PAD_X * w), round(x2 + REC_PAD_X * w)
    gy1, gy2 = round(y1 - REC_PAD_Y * h), round(y2 + REC_PAD_Y * h)
    ih, iw = image.shape[:2]
    pad = max(0, -gx1, -gy1, gx2 - iw, gy2 - ih)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    cut = image[gy1 + pad : gy2 + pad, gx1 + pad : gx2 + pad]
    if cut.size == 0:
        cut = image[:1, :1]
    interpolation = cv2.INTER_AREA if cut.shape[1] > REC_SIZE[0] else cv2.INTER_LINEAR
    return cv2.resize(cut, REC_SIZE, interpolation=interpolation)


def decode_localiser(heat: np.ndarray, boxes: np.ndarray, scale: float) -> tuple[tuple[float, ...], float]:
    """The best cell of the heatmap [H, W] and its box (from [4, H, W]) in crop pixels, with its score."""
    index = int(np.argmax(heat))
    gy, gx = divmod(index, heat.shape[1])
    dx, dy, lw, lh = (float(v) for v in boxes[:, gy, gx])
    cx, cy = (gx + dx) * LOC_STRIDE, (gy + dy) * LOC_STRIDE
    w, h = float(np.exp(lw)) * LOC_STRIDE, float(np.exp(lh)) * LOC_STRIDE
    box = ((cx - w / 2) / scale, (cy - h / 2) / scale, (cx + w / 2) / scale, (cy + h / 2) / scale)
    return box, float(heat[gy, gx])


def decode_columns(probs: np.ndarray, charset: str) -> tuple[str, list[float]]:
    """Per-column probabilities [columns, C] (class 0: a gap) -> text and each character's probability.

    A run of columns with the same class is one character (its probability: the run's highest); gaps
    separate characters, so "11" needs a gap column between the two ones, as plates have."""
    best = probs.argmax(axis=1)
    text: list[str] = []
    confidences: list[float] = []
    previous = 0
    for column, cls in enumerate(best.tolist()):
        if cls != 0 and cls != previous:
            text.append(charset[cls - 1])
            confidences.append(float(probs[column, cls]))
        elif cls != 0:
            confidences[-1] = max(confidences[-1], float(probs[column, cls]))
        previous = cls
    return "".join(text), confidences


def grammar_problem(text: str) -> str | None:
    """Why ``text`` cannot be a civilian mainland plate, or None when it can."""
    if len(text) not in (7, 8):
        return f"{len(text)} characters, plates have 7 or 8"
    if text[0] not in PROVINCES:
        return f"{text[0]!r} is not a province"
    if text[1] not in LETTERS:
        return f"{text[1]!r} is not a plate letter"
    if any(ch not in LETTERS + DIGITS for ch in text[2:]):
        return "serials are letters and digits"
    if len(text) == 8:
        serial = text[2:]
        if not ((serial[0] in "DF" and serial[2:].isdigit()) or (serial[:5].isdigit() and serial[5] in "DF")):
            return "not a new-energy serial"
    return None


# --- readers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnnxPlateReaderOptions:
    model_dir: Path = MODEL_DIR
    threads: int = 1
    min_plate_score: float = 0.3  # localiser heat below this: no plate in the crop
    min_confidence: float = 0.0  # readings whose least sure character is below this are dropped


class OnnxPlateReader:
    """The project's reader: localiser + column recogniser, on onnxruntime."""

    def __init__(self, options: OnnxPlateReaderOptions | None = None) -> None:
        import onnxruntime as ort

        self.options = options or OnnxPlateReaderOptions()
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.options.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self._loc = self._open(ort, so, LOCALISER_FILE)
        self._rec = self._open(ort, so, RECOGNISER_FILE)
        meta = self._rec.get_modelmeta().custom_metadata_map
        self.charset = meta.get("charset", "")
        if self.charset != CHARSET:
            raise PlateModelError(
                f"{self.options.model_dir / RECOGNISER_FILE}: its charset metadata does not match this "
                "reader's plate grammar; retrain with `python -m models.plates.train`"
            )
        self.colours = tuple(meta.get("colours", ",".join(COLOURS)).split(","))
        self.last_ms = 0.0

    def _open(self, ort: Any, so: Any, name: str) -> Any:
        path = self.options.model_dir / name
        if not path.is_file():
            raise PlateModelError(
                f"plate model {path} is missing; build it with `python -m models.plates.train`"
            )
        try:
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PlateModelError(f"plate model {path} cannot be loaded: {exc}") from exc

    def locate(self, vehicle_crop_bgr: np.ndarray) -> tuple[tuple[int, int, int, int], float] | None:
        """Where the plate is in the crop and how sure the localiser is; None when it finds none.
        Also what evidence photos blur other vehicles' plates with."""
        if vehicle_crop_bgr.ndim != 3 or min(vehicle_crop_bgr.shape[:2]) < 8:
            return None
        boxed, scale = letterbox(vehicle_crop_bgr)
        heat, boxes = self._loc.run(None, {"image": to_tensor(boxed)})
        box, score = decode_localiser(heat[0, 0], boxes[0], scale)
        if score < self.options.min_plate_score:
            return None
        h, w = vehicle_crop_bgr.shape[:2]
        x1, y1, x2, y2 = box
        clipped = (max(0, round(x1)), max(0, round(y1)), min(w, round(x2)), min(h, round(y2)))
        if clipped[2] - clipped[0] < 4 or clipped[3] - clipped[1] < 2:
            return None
        return clipped, score

    def read(self, vehicle_crop_bgr: np.ndarray) -> PlateReading | None:
        start = time.perf_counter()
        try:
            found = self.locate(vehicle_crop_bgr)
            best = self._recognise(vehicle_crop_bgr, [] if found is None else [found[0]])
            if best is None or best[1] < WINDOWS_BELOW:
                # Not found or not sure on the whole crop: a large crop's plate may be too small for
                # the localiser at 128 px, so look again in windows.
                windowed = self._recognise(vehicle_crop_bgr, self._windowed(vehicle_crop_bgr))
                if windowed is not None and (best is None or windowed[1] > best[1]):
                    best = windowed
            if best is None or best[1] < self.options.min_confidence:
                return None
            text, confidence, colour_probs, box = best
            colour = self._colour(text, colour_probs)
            return PlateReading(text=text, colour=colour, confidence=round(confidence, 4), box=box)
        finally:
            self.last_ms = (time.perf_counter() - start) * 1000

    def _recognise(
        self, crop: np.ndarray, boxes: list[tuple[int, int, int, int]]
    ) -> tuple[str, float, np.ndarray, tuple[int, int, int, int]] | None:
        """The most confident grammatical reading, with a colour that agrees, over each box and its
        wider cuts."""
        best: tuple[str, float, np.ndarray, tuple[int, int, int, int]] | None = None
        for box in boxes:
            for cut in _cuts(box):
                probs, colour_probs = self._rec.run(None, {"plate": to_tensor(plate_patch(crop, cut))})
                text, confidences = decode_columns(probs[0], self.charset)
                if (
                    grammar_problem(text) is None
                    and self._colour_agrees(text, colour_probs[0])
                    and (best is None or min(confidences) > best[1])
                ):
                    best = (text, min(confidences), colour_probs[0], box)
        return best

    def _windowed(self, crop: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The localiser's two surest plate boxes in overlapping windows of a large crop (a close-up).
        It learnt plates a quarter to a third of its input's width; in a
        close-up of a whole vehicle a plate is a tenth, a few pixels once the crop is shrunk to 128."""
        height, width = crop.shape[:2]
        windowed: list[tuple[float, tuple[int, int, int, int]]] = []
        for x1, y1, x2, y2 in _windows(width, height):
            hit = self.locate(crop[y1:y2, x1:x2])
            if hit is not None:
                (bx1, by1, bx2, by2), score = hit
                windowed.append((score, (x1 + bx1, y1 + by1, x1 + bx2, y1 + by2)))
        windowed.sort(key=lambda item: -item[0])
        # The whole crop's box is no reason to skip a window's: on the same plate, the window's (seen
        # at a larger scale) is usually the tighter one.
        boxes: list[tuple[int, int, int, int]] = []
        for _, box in windowed:
            if len(boxes) >= WINDOW_CANDIDATES:
                break
            if all(_overlap(box, other) < 0.5 for other in boxes):
                boxes.append(box)
        return boxes

    def _colour_agrees(self, text: str, probs: np.ndarray) -> bool:
        """A sure colour overrules the length: a green (new-energy) plate has eight characters, others
        seven. A cut that drops one of a green plate's characters still reads as a valid blue serial
        (皖EF03412 as 皖F03412, seen on a close-up); the colour head is not fooled by the cut."""
        if "green" not in self.colours:
            return True
        green = float(probs[self.colours.index("green")])
        return not ((len(text) == 8 and green < 1 - SURE_COLOUR) or (len(text) == 7 and green > SURE_COLOUR))

    def _colour(self, text: str, probs: np.ndarray) -> PlateColour:
        # Eight characters are a green plate whatever the colour head says; seven never are.
        ranked = [self.colours[i] for i in np.argsort(-probs)]
        for colour in ranked:
            if (colour == "green") == (len(text) == 8) and colour in COLOURS:
                return colour  # type: ignore[return-value]
        return "green" if len(text) == 8 else "blue"


class NoPlateReader:
    """Reads nothing: for cameras that must not read plates."""

    def read(self, vehicle_crop_bgr: np.ndarray) -> PlateReading | None:
        return None


def _windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows (half and a third of the crop's longer side, half a window apart) on crops
    at least ``WINDOW_MIN_SIDE`` across; none on smaller ones (a fixed view's vehicles)."""
    longest = max(width, height)
    if longest < WINDOW_MIN_SIDE:
        return []
    out = []
    for fraction in WINDOW_FRACTIONS:
        ww, wh = min(width, round(fraction * longest)), min(height, round(fraction * longest * 0.9))
        for y in _starts(height, wh):
            for x in _starts(width, ww):
                out.append((x, y, x + ww, y + wh))
    return out


def _starts(total: int, size: int) -> list[int]:
    step = max(1, size // 2)
    starts = list(range(0, max(1, total - size + 1), step))
    if starts[-1] + size < total:
        starts.append(total - size)
    return starts


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(1, smaller)


def _cuts(box: tuple[int, int, int, int]) -> list[tuple[float, float, float, float]]:
    """The localised box and three wider ones: the localiser's box sometimes clips an end character
    (measured: most of the unread plates), and the most confident grammatical read of the four wins."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cuts = [(x1, y1, x2, y2)]
    for gx, gy in ((0.04, 0.0), (0.08, 0.05), (0.16, 0.1)):
        cuts.append((x1 - gx * w, y1 - gy * h, x2 + gx * w, y2 + gy * h))
    return cuts


def _citywatch(**options: Any) -> PlateReader:
    return OnnxPlateReader(OnnxPlateReaderOptions(**options))


def _none(**options: Any) -> PlateReader:
    return NoPlateReader()


PLATE_READERS: dict[str, Callable[..., PlateReader]] = {"citywatch": _citywatch, "none": _none}


def make_plate_reader(name: str | None, **options: Any) -> PlateReader:
    """The reader registered as ``name`` (None: ``none``); ValueError naming the known readers."""
    key = "none" if name is None else name
    if key not in PLATE_READERS:
        raise ValueError(
            f"unknown plate reader {name!r}: known readers are {', '.join(sorted(PLATE_READERS))}"
        )
    return PLATE_READERS[key](**options)
