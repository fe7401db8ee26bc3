"""Vehicle crops with rendered Chinese plates: training and held-out data for the plate reader.

A crop is what the street analyzer hands the reader: one vehicle cut out of a pole camera's frame.
Here it is drawn, not photographed: a body of a random paint (blue, yellow and green bodies included,
so plate colour alone does not give the plate away), windscreen, grille, headlights, bumper, sometimes
a sticker or a second rectangle of text-like stripes, and the plate from
``simulators.street.plates.render_plate`` (dirt, tilt, blur, light) squeezed by the camera's elevation.
Then the whole crop gets the camera's troubles: night (dark, noisy, headlight glare), focus blur,
sensor noise and JPEG compression.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from simulators.street.plates import PlateColour, plate_width_px, random_plate, render_plate

_PAINTS = (  # BGR
    (235, 235, 235),
    (190, 190, 195),
    (40, 40, 45),
    (40, 40, 170),
    (150, 70, 20),  # a blue close to the blue plate's
    (30, 190, 230),  # a yellow taxi
    (60, 150, 60),
    (120, 120, 120),
    (70, 100, 140),
)


@dataclass(frozen=True)
class Scene:
    """One vehicle crop; ``box`` is the plate's (x1, y1, x2, y2) in crop pixels, None when no plate shows."""

    image: np.ndarray
    text: str
    colour: PlateColour
    box: tuple[int, int, int, int] | None
    plate_height_px: int
    night: bool


def make_scene(
    rng: np.random.Generator,
    plate_height_px: int,
    *,
    colour: PlateColour | None = None,
    with_plate: bool = True,
    night: bool | None = None,
) -> Scene:
    """A vehicle crop whose plate is ``plate_height_px`` high before the camera's elevation squeezes it."""
    text, colour = random_plate(rng, colour)
    plate_w = plate_width_px(colour, plate_height_px)
    width = max(48, round(plate_w * rng.uniform(2.6, 4.5)))
    height = max(40, round(width * rng.uniform(0.65, 1.1)))
    img = _vehicle(rng, width, height)

    box = None
    if with_plate:
        plate = render_plate(text, colour, height_px=plate_height_px, rng=rng)
        squeeze = rng.uniform(0.78, 1.0)  # the pole looks down on the plate
        ph = max(6, round(plate.shape[0] * squeeze))
        plate = cv2.resize(plate, (plate.shape[1], ph), interpolation=cv2.INTER_AREA)
        pw = plate.shape[1]
        cx = width / 2 + rng.normal(0, 0.07) * width
        cy = height * rng.uniform(0.58, 0.86)
        x1 = int(np.clip(round(cx - pw / 2), 0, width - pw))
        y1 = int(np.clip(round(cy - ph / 2), 0, height - ph))
        # A plate holder frame a little larger than the plate, then the plate.
        margin = max(1, ph // 10)
        cv2.rectangle(img, (x1 - margin, y1 - margin), (x1 + pw + margin, y1 + ph + margin), (25, 25, 25), -1)
        img[y1 : y1 + ph, x1 : x1 + pw] = plate
        box = (x1, y1, x1 + pw, y1 + ph)

    at_night = bool(rng.random() < 0.25) if night is None else night
    img = _camera(rng, img, night=at_night)
    return Scene(
        image=img, text=text, colour=colour, box=box, plate_height_px=plate_height_px, night=at_night
    )


def _vehicle(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    paint = np.array(_PAINTS[int(rng.integers(len(_PAINTS)))], np.float32) * rng.uniform(0.75, 1.15)
    shade = np.linspace(1.15, 0.8, height, dtype=np.float32)[:, None, None]
    img = np.clip(np.broadcast_to(paint, (height, width, 3)) * shade, 0, 255).astype(np.uint8).copy()
    # Road or kerb showing at the sides and bottom of the crop.
    road = tuple(int(v) for v in rng.integers(60, 140, size=3))
    side = int(width * rng.uniform(0.0, 0.12))
    img[:, :side] = road
    img[:, width - side :] = road
    img[int(height * rng.uniform(0.9, 1.0)) :] = road
    # Windscreen with a reflection.
    top = int(height * rng.uniform(0.05, 0.2))
    bottom = int(height * rng.uniform(0.35, 0.48))
    inset = int(width * rng.uniform(0.08, 0.18))
    glass = np.array(
        [[side + inset, top], [width - side - inset, top], [width - side - 2, bottom], [side + 2, bottom]],
        np.int32,
    )
    cv2.fillConvexPoly(img, glass, tuple(int(v) for v in rng.integers(20, 70, size=3)))
    if rng.random() < 0.6:
        x = int(rng.integers(side + inset, max(side + inset + 1, width - side - inset)))
        cv2.line(img, (x, top), (x - width // 6, bottom), (150, 150, 150), max(1, width // 40))
    # Headlights, grille and bumper.
    hy = int(height * rng.uniform(0.5, 0.6))
    for hx in (side + width // 8, width - side - width // 8):
        axes = (max(2, width // 14), max(2, height // 22))
        cv2.ellipse(img, (hx, hy), axes, 0, 0, 360, tuple(int(v) for v in rng.integers(170, 255, size=3)), -1)
    gx1, gx2 = int(width * 0.33), int(width * 0.67)
    gy1, gy2 = hy - height // 20, hy + height // 20
    cv2.rectangle(img, (gx1, gy1), (gx2, gy2), (30, 30, 30), -1)
    for y in range(gy1, gy2, max(2, height // 60)):
        cv2.line(img, (gx1, y), (gx2, y), (90, 90, 90), 1)
    by = int(height * rng.uniform(0.88, 0.95))
    cv2.line(img, (side, by), (width - side, by), (20, 20, 20), max(1, height // 60))
    # Clutter that looks a little like text: a sticker, a dealer's badge, a ladder of stripes.
    for _ in range(int(rng.integers(0, 3))):
        w = int(width * rng.uniform(0.08, 0.25))
        h = max(3, int(w * rng.uniform(0.2, 0.5)))
        x = int(rng.integers(0, max(1, width - w)))
        y = int(rng.integers(0, max(1, height - h)))
        colour = tuple(int(v) for v in rng.integers(0, 255, size=3))
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
        for k in range(int(rng.integers(2, 6))):
            sx = x + (k + 1) * w // 7
            cv2.line(
                img,
                (sx, y + h // 5),
                (sx, y + h - h // 5),
                (255 - colour[0], 255 - colour[1], 255 - colour[2]),
                1,
            )
    return img


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    # cv2.randn is ten times faster than numpy's normal on whole frames; seeded from the scene's rng.
    cv2.setRNGSeed(int(rng.integers(2**31)))
    noise = np.empty(shape, np.float32)
    cv2.randn(noise, 0.0, sigma)  # type: ignore[call-overload]
    return noise


def _camera(rng: np.random.Generator, img: np.ndarray, *, night: bool) -> np.ndarray:
    out = img.astype(np.float32)
    if night:
        out = out * rng.uniform(0.25, 0.55) + _noise(rng, out.shape, rng.uniform(4, 12))
        if rng.random() < 0.5:  # glare from another car's headlight, drawn small and blown up
            h, w = out.shape[:2]
            glow = np.zeros((max(4, h // 8), max(4, w // 8)), np.float32)
            gh, gw = glow.shape
            cv2.circle(
                glow,
                (int(rng.integers(0, gw)), int(rng.integers(0, max(1, gh // 2)))),
                max(1, gw // 5),
                1.0,
                -1,
            )
            glow = cv2.resize(cv2.GaussianBlur(glow, (0, 0), max(1.0, gw / 12)), (w, h))
            out += glow[..., None] * rng.uniform(40, 140)
    else:
        out = out * rng.uniform(0.8, 1.15) + _noise(rng, out.shape, rng.uniform(0, 5))
    sigma = rng.uniform(0, 0.9)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out8 = np.clip(out, 0, 255).astype(np.uint8)
    quality = int(rng.integers(45, 95))
    ok, jpg = cv2.imencode(".jpg", out8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.asarray(decoded)
