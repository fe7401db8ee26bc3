"""A vehicle's colours as a small normalised histogram: what re-identifies it after an occlusion.

Hue tells paints apart only where there is colour; white, grey, silver and black cars (most of them)
have none, so pixels with little saturation or light go to brightness bins instead of hue bins. The
box is inset first (road, kerb and neighbours at its edges are not the car) and shrunk to at most
64 pixels across: a histogram needs no detail, and this keeps it well under a millisecond.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.street.geometry import Box

HUE_BINS, SAT_BINS, GREY_BINS = 16, 2, 8
SIZE = HUE_BINS * SAT_BINS + GREY_BINS
MIN_SATURATION, MIN_VALUE = 50, 40
INSET_X, INSET_TOP, INSET_BOTTOM = 0.15, 0.2, 0.1
MAX_SIDE = 64


def colour_histogram(image: np.ndarray, box: Box) -> np.ndarray | None:
    """The histogram of the vehicle in ``box`` (frame pixels) of a BGR ``image``; None if too small."""
    height, width = image.shape[:2]
    w, h = box.width, box.height
    x1 = max(0, int(box.x1 + INSET_X * w))
    x2 = min(width, int(box.x2 - INSET_X * w))
    y1 = max(0, int(box.y1 + INSET_TOP * h))
    y2 = min(height, int(box.y2 - INSET_BOTTOM * h))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    crop = image[y1:y2, x1:x2]
    scale = MAX_SIDE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(
            crop,
            (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    chromatic = (sat >= MIN_SATURATION) & (val >= MIN_VALUE)
    colour_bin = (hue * HUE_BINS // 180) * SAT_BINS + np.minimum(
        (sat - MIN_SATURATION) * SAT_BINS // (256 - MIN_SATURATION), SAT_BINS - 1
    )
    grey_bin = HUE_BINS * SAT_BINS + val * GREY_BINS // 256
    bins = np.where(chromatic, colour_bin, grey_bin)
    hist = np.bincount(bins, minlength=SIZE).astype(np.float64)
    return hist / hist.sum()
