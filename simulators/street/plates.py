"""Mainland Chinese licence plates (GA 36-2018 layouts), rendered for the street simulator.

Three kinds, all read as ``<province><letter>·<serial>``:

- ``blue`` (small cars): 440 x 140 mm, white text and rim on blue, five serial characters;
- ``yellow`` (large vehicles, front plate): 440 x 140 mm, black text and rim on yellow, five characters;
- ``green`` (new-energy): 480 x 140 mm, black text on a white-to-green gradient, six characters: a small
  car's serial starts with ``D`` (electric) or ``F`` (hybrid), a large vehicle's ends with one.

Serial letters never include ``I`` or ``O`` (they read as 1 and 0). Texts are written without the
separator dot (``京A12345``); :func:`validate_plate_text` also accepts it (``京A·12345``).

The glyphs come from WenQuanYi Zen Hei (Debian's ``fonts-wqy-zenhei``), stretched into the standard's
45 x 90 mm character cells (43 x 90 on green plates) and thickened towards the plate font's weight.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

# The alphabet is the edge reader's, so what is drawn is what can be read: the 31 provincial
# abbreviations used on civilian plates, letters without I and O, digits.
from edge.street.plates import DIGITS, LETTERS, PROVINCES

PlateColour = Literal["blue", "green", "yellow"]
PLATE_COLOURS: tuple[PlateColour, ...] = get_args(PlateColour)

SERIAL_CHARS = LETTERS + DIGITS
SEPARATOR = "·"
NEW_ENERGY_MARKS = "DF"

# Where the font comes from: Debian's fonts-wqy-zenhei (installed by .ci/run).
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc"),
)

_COLOUR_WEIGHTS = {"blue": 0.65, "green": 0.25, "yellow": 0.10}


class _Layout:
    """Millimetre geometry of one plate kind: size, character cells and the separator dot."""

    def __init__(self, width_mm: float, char_w_mm: float, cell_x_mm: tuple[float, ...], dot_x_mm: float):
        self.width_mm = width_mm
        self.height_mm = 140.0
        self.char_w_mm = char_w_mm
        self.char_h_mm = 90.0
        self.char_y_mm = 25.0
        self.cell_x_mm = cell_x_mm
        self.dot_x_mm = dot_x_mm


# Blue and yellow: 45 mm cells 12 mm apart, 34 mm between the second and third with the dot in it.
_NARROW = _Layout(440.0, 45.0, (15.5, 72.5, 151.5, 208.5, 265.5, 322.5, 379.5), 134.5)
# Green: 43 mm cells 9 mm apart, 51 mm between the second and third.
_WIDE = _Layout(480.0, 43.0, (15.5, 67.5, 161.5, 213.5, 265.5, 317.5, 369.5, 421.5), 136.0)
_LAYOUTS: dict[str, _Layout] = {"blue": _NARROW, "yellow": _NARROW, "green": _WIDE}

# BGR colours of the plate face, its text and rim.
_BLUE_FACE = (168, 62, 8)
_YELLOW_FACE = (18, 196, 246)
_GREEN_TOP = (226, 246, 222)
_GREEN_BOTTOM = (88, 192, 62)
_WHITE = (246, 246, 246)
_BLACK = (22, 22, 22)

_BASE_PX_PER_MM = 2.0  # plates are drawn at this scale, then resized to the height asked for
# A weathered plate (``render_plate`` with ``rng``) is shrunk this much about its centre, so its tilted
# corners stay inside the image.
WEATHERED_SCALE = 0.95


def plate_size_mm(colour: PlateColour) -> tuple[float, float]:
    """(width, height) of a plate of this colour in millimetres."""
    layout = _layout(colour)
    return layout.width_mm, layout.height_mm


def plate_width_px(colour: PlateColour, height_px: int) -> int:
    """Width in pixels of a plate of this colour drawn ``height_px`` high (the true aspect)."""
    width_mm, height_mm = plate_size_mm(colour)
    return max(1, round(height_px * width_mm / height_mm))


def character_cells(colour: PlateColour) -> tuple[tuple[float, float], ...]:
    """Each character cell's (left, right) edge as a fraction of the plate's width (before weathering)."""
    layout = _layout(colour)
    return tuple((x / layout.width_mm, (x + layout.char_w_mm) / layout.width_mm) for x in layout.cell_x_mm)


def random_plate(rng: np.random.Generator, colour: PlateColour | None = None) -> tuple[str, PlateColour]:
    """A plausible plate text (without the dot) and its colour; ``colour=None`` draws a colour too."""
    if colour is None:
        names = list(_COLOUR_WEIGHTS)
        weights = np.array([_COLOUR_WEIGHTS[n] for n in names])
        colour = names[int(rng.choice(len(names), p=weights / weights.sum()))]  # type: ignore[assignment]
    _layout(colour)
    assert colour is not None
    head = _pick(rng, PROVINCES) + _pick(rng, LETTERS)
    if colour == "green":
        if rng.random() < 0.8:  # small car: D/F, a letter or digit, four digits
            serial = _pick(rng, NEW_ENERGY_MARKS) + _pick(rng, SERIAL_CHARS)
            serial += "".join(_pick(rng, DIGITS) for _ in range(4))
        else:  # large vehicle: five digits, then D/F
            serial = "".join(_pick(rng, DIGITS) for _ in range(5)) + _pick(rng, NEW_ENERGY_MARKS)
    else:
        # Ordinary serials carry at most two letters, mostly digits.
        letters = int(rng.choice(3, p=[0.45, 0.35, 0.20]))
        positions = set(rng.choice(5, size=letters, replace=False).tolist())
        serial = "".join(_pick(rng, LETTERS if i in positions else DIGITS) for i in range(5))
    text = head + serial
    validate_plate_text(text, colour)
    return text, colour


def validate_plate_text(text: str, colour: object) -> None:
    """Raise ValueError naming the mistake when ``text`` is not a valid plate of ``colour``."""
    layout = _layout(colour)
    bare = _strip_separator(text)
    expected = len(layout.cell_x_mm)
    if len(bare) != expected:
        raise ValueError(
            f"plate {text!r}: a {colour} plate has {expected} characters (province, letter, "
            f"{expected - 2} serial characters), this one has {len(bare)}"
        )
    if bare[0] not in PROVINCES:
        raise ValueError(f"plate {text!r}: {bare[0]!r} is not a province abbreviation (one of {PROVINCES})")
    if bare[1] not in LETTERS:
        raise ValueError(
            f"plate {text!r}: the second character {bare[1]!r} must be a capital letter other than I and O"
        )
    for i, ch in enumerate(bare[2:], start=3):
        if ch not in SERIAL_CHARS:
            why = "I and O are never used" if ch in "IO" else "serials use capital letters and digits only"
            raise ValueError(f"plate {text!r}: character {i} is {ch!r}; {why}")
    if colour == "green":
        serial = bare[2:]
        small = serial[0] in NEW_ENERGY_MARKS and serial[2:].isdigit()
        large = serial[:5].isdigit() and serial[5] in NEW_ENERGY_MARKS
        if not (small or large):
            raise ValueError(
                f"plate {text!r}: a green (new-energy) serial is D or F, a letter or digit and four digits "
                f"(small car, e.g. DA1234), or five digits then D or F (large vehicle, e.g. 12345D)"
            )


def render_plate(
    text: str,
    colour: PlateColour,
    *,
    height_px: int = 70,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The plate as a BGR uint8 image ``height_px`` high at its true aspect.

    With ``rng``, a plate as a street camera sees it: dirt, a slight rotation and perspective, blur,
    brightness and colour changes, sensor noise. Without, a clean frontal plate.
    """
    validate_plate_text(text, colour)
    if height_px < 8:
        raise ValueError(f"height_px={height_px}: a plate needs at least 8 pixels of height to draw")
    base = _clean_plate(_strip_separator(text), colour)
    size = (plate_width_px(colour, height_px), height_px)
    if rng is None:
        return cv2.resize(base, size, interpolation=cv2.INTER_AREA)
    return _weather(base, size, rng)


def font_path() -> Path:
    """The CJK font file; a clear error when the Debian package is missing."""
    for path in FONT_PATHS:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "no CJK font for licence plates: install Debian's fonts-wqy-zenhei "
        f"(`apt-get install -y fonts-wqy-zenhei`); looked for {', '.join(str(p) for p in FONT_PATHS)}"
    )


def _pick(rng: np.random.Generator, alphabet: str) -> str:
    return alphabet[int(rng.integers(len(alphabet)))]


def _strip_separator(text: str) -> str:
    return text[:2] + text[3:] if len(text) > 2 and text[2] == SEPARATOR else text


def _layout(colour: object) -> _Layout:
    if colour not in _LAYOUTS:
        raise ValueError(f"plate colour {colour!r}: must be one of {', '.join(PLATE_COLOURS)}")
    return _LAYOUTS[str(colour)]


@functools.lru_cache(maxsize=1)
def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path()), size=200)


@functools.lru_cache(maxsize=256)
def _glyph(ch: str, cell_w: int, cell_h: int) -> np.ndarray:
    """A float32 coverage mask (0..1) of one character filling its cell the way plate fonts do."""
    from PIL import Image, ImageDraw

    from_font = _font()
    canvas = Image.new("L", (320, 320), 0)
    ImageDraw.Draw(canvas).text((40, 20), ch, font=from_font, fill=255)
    mask = np.asarray(canvas)
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        raise ValueError(f"the font has no glyph for {ch!r}")
    tight = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = tight.shape
    # Plate characters fill the cell's height; narrow ones (1, J) keep their own width.
    target_w = cell_w if ch in PROVINCES else min(cell_w, max(1, round(w * cell_h / h)))
    glyph = cv2.resize(tight, (target_w, cell_h), interpolation=cv2.INTER_AREA)
    # Thicken strokes: the plate font is bolder than Zen Hei.
    k = max(1, round(cell_h / 45))
    glyph = cv2.dilate(glyph, np.ones((k, k), np.uint8))
    out = np.zeros((cell_h, cell_w), np.float32)
    x0 = (cell_w - target_w) // 2
    out[:, x0 : x0 + target_w] = glyph.astype(np.float32) / 255.0
    return out


@functools.lru_cache(maxsize=512)
def _clean_plate_cached(text: str, colour: str) -> np.ndarray:
    layout = _LAYOUTS[colour]
    s = _BASE_PX_PER_MM

    def px(mm: float) -> int:
        return round(mm * s)

    h, w = px(layout.height_mm), px(layout.width_mm)
    if colour == "green":
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None] ** 1.3
        top, bottom = np.array(_GREEN_TOP, np.float32), np.array(_GREEN_BOTTOM, np.float32)
        img = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.float32)
    else:
        face = _BLUE_FACE if colour == "blue" else _YELLOW_FACE
        img = np.empty((h, w, 3), np.float32)
        img[:] = face
    ink = np.array(_WHITE if colour == "blue" else _BLACK, np.float32)
    img = np.ascontiguousarray(img)

    if colour != "green":  # the raised rim, in the text colour
        rim = tuple(float(c) for c in ink)
        cv2.rectangle(img, (px(3), px(3)), (w - px(3), h - px(3)), rim, px(1.8), cv2.LINE_AA)
    # Two mounting rivets in the top margin.
    for x_mm in (layout.width_mm * 0.25, layout.width_mm * 0.75):
        cv2.circle(img, (px(x_mm), px(12)), px(4), (150, 150, 150), -1, cv2.LINE_AA)
        cv2.circle(img, (px(x_mm), px(12)), px(2), (90, 90, 90), -1, cv2.LINE_AA)

    cell_w, cell_h = px(layout.char_w_mm), px(layout.char_h_mm)
    y0 = px(layout.char_y_mm)
    for ch, x_mm in zip(text, layout.cell_x_mm, strict=True):
        mask = _glyph(ch, cell_w, cell_h)[..., None]
        x0 = px(x_mm)
        region = img[y0 : y0 + cell_h, x0 : x0 + cell_w]
        region[:] = region * (1 - mask) + ink * mask
    cv2.circle(
        img, (px(layout.dot_x_mm), y0 + cell_h // 2), px(5), tuple(float(c) for c in ink), -1, cv2.LINE_AA
    )
    out = np.clip(img, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def _clean_plate(text: str, colour: PlateColour) -> np.ndarray:
    return _clean_plate_cached(text, colour)


def _weather(base: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """What a roadside camera makes of a clean plate: rotation, perspective, dirt, light, blur, noise."""
    w, h = size
    # Work at twice the output size (cheaper than the base, and warps there do not alias).
    work = (2 * w, 2 * h) if 2 * h < base.shape[0] else (base.shape[1], base.shape[0])
    img = cv2.resize(base, work, interpolation=cv2.INTER_AREA).astype(np.float32)
    bh, bw = img.shape[:2]

    # Dirt: soft brownish-grey blotches and a little grime towards the bottom edge.
    n_blotches = int(rng.integers(0, 7))
    if n_blotches:
        dirt = np.zeros((bh, bw), np.float32)
        for _ in range(n_blotches):
            centre = (int(rng.integers(0, bw)), int(rng.integers(0, bh)))
            axes = (int(rng.integers(bh // 12, bh // 3)), int(rng.integers(bh // 14, bh // 4)))
            cv2.ellipse(
                dirt, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.1, 0.4)), -1
            )
        grime = np.linspace(0, 1, bh, dtype=np.float32)[:, None] ** 4 * rng.uniform(0, 0.3)
        dirt = np.clip(cv2.GaussianBlur(dirt, (0, 0), bh / 25) + grime, 0, 0.6)[..., None]
        mud = np.array([60, 80, 95], np.float32) * rng.uniform(0.7, 1.3)
        img = img * (1 - dirt) + mud * dirt

    # Slight rotation and perspective, within the working size.
    src = np.array([[0, 0], [bw, 0], [bw, bh], [0, bh]], np.float32)
    angle = np.deg2rad(rng.uniform(-4.0, 4.0))
    ca, sa = np.cos(angle), np.sin(angle)
    corners = []
    for x, y in src:
        dx, dy = x - bw / 2, y - bh / 2
        jitter = rng.uniform(-0.025, 0.025, size=2) * (bw, bh)
        corners.append((bw / 2 + ca * dx - sa * dy + jitter[0], bh / 2 + sa * dx + ca * dy + jitter[1]))
    # Shrink a little so the rotated plate stays inside its own image.
    dst = np.array(corners, np.float32)
    centre = dst.mean(axis=0)
    dst = centre + (dst - centre) * WEATHERED_SCALE
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(
        img, matrix, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    out = cv2.resize(warped, size, interpolation=cv2.INTER_AREA)

    # Light: gain, offset and a colour cast (sodium lamps, shade, low sun).
    gain = rng.uniform(0.55, 1.3)
    cast = rng.uniform(0.9, 1.1, size=3)
    out = out * gain * cast + rng.uniform(-20, 20)
    # Focus and motion blur in output pixels.
    sigma = rng.uniform(0.0, 0.9)
    if sigma > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out = out + rng.normal(0.0, rng.uniform(0.0, 6.0), size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)
