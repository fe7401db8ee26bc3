"""A drawn vehicle front with a known plate, as a PTZ close-up shows it: the front in the middle of a
crop three times its width, so the plate is about a tenth of the crop's width (models.plates.synth draws
fronts where it is a quarter to a third)."""

from __future__ import annotations

import cv2
import numpy as np

from models.plates.synth import Scene, make_scene


def closeup_front(index: int, plate_height_px: int = 45) -> tuple[Scene, np.ndarray, tuple[int, int]]:
    """The scene, the close-up crop, and where the scene's top-left corner is in the crop (x, y)."""
    scene = make_scene(np.random.default_rng([78, index]), plate_height_px, night=False)
    h, w = scene.image.shape[:2]
    crop = cv2.copyMakeBorder(scene.image, h, h // 2, w, w, cv2.BORDER_REPLICATE)
    return scene, crop, (w, h)
