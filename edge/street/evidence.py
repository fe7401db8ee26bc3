"""Evidence photos of a parking case: the zone and the vehicle drawn, other plates and people blurred.

Privacy first, on the full-resolution frame: every detected person's box and every face the Haar
cascade finds (edge/evidence/privacy.py) is blurred, and so is every other vehicle's plate (where the
plate reader finds none on a vehicle, the lower part of its box, where plates sit). The case's own
vehicle and its plate stay sharp: they are the evidence. Then the drawing, then the JPEG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.evidence.privacy import FACE_MARGIN, blur_where
from edge.evidence.still import encode_still
from edge.street.config import EvidenceConfig
from edge.street.geometry import Box

ZONE_COLOUR = (0, 215, 255)  # BGR amber: the no-parking zone
VEHICLE_COLOUR = (0, 0, 255)  # red: the vehicle of the case
TEXT_COLOUR = (255, 255, 255)
PLATE_BAND = 0.4  # lower share of another vehicle's box blurred when its plate is not found

# Where the plate is in a vehicle crop (x1, y1, x2, y2 in crop pixels), or None: the reader's locate().
PlateLocator = Callable[[np.ndarray], tuple[int, int, int, int] | None]


@dataclass(frozen=True, slots=True)
class PhotoContent:
    zone: Sequence[tuple[float, float]]
    vehicle: Box
    own_plate: Box | None  # frame pixels; kept sharp
    other_vehicles: Sequence[Box]
    people: Sequence[Box]
    faces: Sequence[tuple[float, float, float, float]]  # fractions of the frame (FaceFinder.find)
    caption: str


def _clip(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    return (
        max(0, int(box.x1)),
        max(0, int(box.y1)),
        min(width, int(np.ceil(box.x2))),
        min(height, int(np.ceil(box.y2))),
    )


def other_plate_boxes(image: np.ndarray, vehicles: Sequence[Box], locate: PlateLocator | None) -> list[Box]:
    """Each other vehicle's plate in frame pixels: found by the reader, else its box's lower band."""
    height, width = image.shape[:2]
    plates = []
    for box in vehicles:
        x1, y1, x2, y2 = _clip(box, width, height)
        if x2 - x1 < 4 or y2 - y1 < 4:
            continue
        found = locate(image[y1:y2, x1:x2]) if locate is not None else None
        if found is not None:
            px1, py1, px2, py2 = found
            pad_x, pad_y = 0.15 * (px2 - px1), 0.3 * (py2 - py1)
            plates.append(Box(x1 + px1 - pad_x, y1 + py1 - pad_y, x1 + px2 + pad_x, y1 + py2 + pad_y))
        else:
            plates.append(Box(x1, y2 - PLATE_BAND * (y2 - y1), x2, y2))
    return plates


def privacy_mask(image: np.ndarray, content: PhotoContent, other_plates: Sequence[Box]) -> np.ndarray:
    """255 where the photo must be blurred."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for box in [*content.people, *other_plates]:
        x1, y1, x2, y2 = _clip(box, width, height)
        if x2 > x1 and y2 > y1:
            mask[y1:y2, x1:x2] = 255
    for fx1, fy1, fx2, fy2 in content.faces:
        dx, dy = (fx2 - fx1) * FACE_MARGIN, (fy2 - fy1) * FACE_MARGIN
        face = Box((fx1 - dx) * width, (fy1 - dy) * height, (fx2 + dx) * width, (fy2 + dy) * height)
        x1, y1, x2, y2 = _clip(face, width, height)
        if x2 > x1 and y2 > y1:
            mask[y1:y2, x1:x2] = 255
    if content.own_plate is not None:  # another vehicle's band may overlap it: the evidence stays readable
        x1, y1, x2, y2 = _clip(content.own_plate, width, height)
        mask[y1:y2, x1:x2] = 0
    return mask


def render_photo(
    image: np.ndarray, content: PhotoContent, config: EvidenceConfig, locate: PlateLocator | None
) -> bytes:
    """The evidence photo as a JPEG: privacy, then the zone, the vehicle's box and the caption."""
    out = image.copy()
    if config.blur_other_plates or config.blur_faces:
        plates = other_plate_boxes(out, content.other_vehicles, locate) if config.blur_other_plates else []
        if not config.blur_faces:
            content = PhotoContent(
                content.zone,
                content.vehicle,
                content.own_plate,
                content.other_vehicles,
                (),
                (),
                content.caption,
            )
        mask = privacy_mask(out, content, plates)
        if mask.any():
            blur_where(out, mask)
    thickness = max(2, round(out.shape[1] / 640))
    polygon = np.round(np.array(content.zone, np.float64)).astype(np.int32)
    cv2.polylines(out, [polygon], True, ZONE_COLOUR, thickness, cv2.LINE_AA)
    v = content.vehicle
    cv2.rectangle(out, (int(v.x1), int(v.y1)), (int(v.x2), int(v.y2)), VEHICLE_COLOUR, thickness + 1)
    scale = max(0.5, out.shape[1] / 1600)
    (text_w, text_h), base = cv2.getTextSize(content.caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(out, (0, 0), (text_w + 12, text_h + base + 12), (0, 0, 0), -1)
    cv2.putText(
        out,
        content.caption,
        (6, text_h + 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        TEXT_COLOUR,
        thickness,
        cv2.LINE_AA,
    )
    return encode_still(out, width=config.max_width, quality=config.jpeg_quality).jpeg


def plate_crop(image: np.ndarray, plate: Box, *, quality: int) -> bytes | None:
    """The plate with a margin, enlarged to at least 240 pixels across so people can read it."""
    height, width = image.shape[:2]
    pad_x, pad_y = 0.2 * plate.width, 0.4 * plate.height
    x1, y1, x2, y2 = _clip(
        Box(plate.x1 - pad_x, plate.y1 - pad_y, plate.x2 + pad_x, plate.y2 + pad_y), width, height
    )
    if x2 - x1 < 4 or y2 - y1 < 2:
        return None
    crop = image[y1:y2, x1:x2]
    if crop.shape[1] < 240:
        factor = 240 / crop.shape[1]
        crop = cv2.resize(crop, (240, max(1, round(crop.shape[0] * factor))), interpolation=cv2.INTER_CUBIC)
    ok, buffer = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buffer.tobytes() if ok else None
