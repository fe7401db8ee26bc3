"""Small moving blobs on the facade: shake compensation, a colour background model, masks, components.

Per frame: the BGR frame (optionally scaled to ``processing_width``) -> camera shake estimated by phase
correlation of a small grey copy against a reference, rounded to whole pixels -> the colour background
model compares the frame with its background at that offset, so foreground and blob positions stay in
the calibration's pixels without warping the frame -> masks -> when dense patches of change cover more
than ``max_foreground_fraction`` of the view (lights, exposure, a shake the shift did not absorb) no
blobs at all, else connected components within the size bounds.

Why colour: a red flower pot against a brown wall, a green bottle against a blue-grey window, differ by
40 levels in one channel and by 5 in grey. The foreground is the largest of the three channel
differences, against each pixel's own noise level.

Two background models: :class:`ColourBackground` (the default: one running mean per channel and one
noise level per pixel, selectively updated, all in preallocated buffers) and OpenCV's MOG2 on colour,
which copes with swaying and blinking backgrounds at several times the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.facade.config import DetectionConfig, MaskConfig

# Frames the background model sees before blobs are reported (its first frames are all "new").
WARMUP_FRAMES = 5
# More blobs than this in one frame is noise (sensor noise at night, rain on the lens): none kept.
# Snow is hundreds of flakes: they are tracked (and rejected as floating), not a reason to go blind.
MAX_BLOBS = 1500
# A shift over this share of the small frame is a re-aimed camera, not shake: start over.
REAIM_FRACTION = 0.15
# Re-take the shake reference while the camera sits this still (small-frame pixels): light drifts over a day.
REFERENCE_STILL_PX = 0.1
REFERENCE_REFRESH_FRAMES = 250
# A shake estimate this far (processing pixels) from a whole pixel is corrected by warping the frame.
SUBPIXEL_PX = 0.25
# Learning rate for a frame where most of the view changed at once (see ``detect``).
GLOBAL_CHANGE_RATE = 0.3
# Global change is judged on cells this many pixels square: a cell is "changed" when over half its
# pixels are. Snowflakes and rain streaks are sparse (no cell fills up); a light or the exposure is dense.
CELL_PX = 16
# Even sparse, this much of the frame changed is noise (a burst of sensor noise, the lens fogging up).
MAX_SPARSE_FRACTION = 0.25


class ColourBackground:
    """Per-pixel running mean of each channel and one noise level per pixel.

    A pixel is foreground where the largest of its three channel differences ``d`` from the background
    exceeds ``sqrt(var_threshold * max(noise, MIN_VARIANCE))``, ``noise`` being the running mean of ``d**2``.
    The frame is compared at a whole-pixel ``shift`` (the camera's shake), so blobs come out in the
    reference view's pixels. The mean learns every ``UPDATE_EVERY`` frames (at that multiple of
    ``1 / history``), from background pixels only, and from every pixel at one tenth of that rate, so a
    light left on becomes background in a few hundred frames while a passing object never does; the
    noise levels learn every ``NOISE_EVERY`` frames. Every buffer is allocated once: at 1080p a fresh
    array per step costs more than the arithmetic.
    """

    MIN_VARIANCE = 9.0  # sensor noise floor (3 levels): a flat wall does not turn every speck into motion
    UPDATE_EVERY = 2
    NOISE_EVERY = 4
    FOREGROUND_EVERY = 10  # every this many updates, foreground pixels learn too (1/10 of the rate)

    def __init__(self, history_frames: int, var_threshold: float) -> None:
        self.alpha = 1.0 / history_frames
        self.var_threshold = var_threshold
        self._shape: tuple[int, ...] | None = None
        self._frames = 0
        self._updates = 0

    def _allocate(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        self._shape = image.shape
        self._mean = image.astype(np.float32)
        self._background = image.copy()
        self._noise = np.full((height, width), 4 * self.MIN_VARIANCE, np.float32)
        self._scratch = np.empty((height, width), np.float32)
        self._squared = np.empty((height, width), np.float32)
        self._limit = np.empty((height, width), np.uint8)
        self._diff = np.empty_like(image)
        self._channels = [np.empty((height, width), np.uint8) for _ in range(3)]
        self._largest = np.zeros((height, width), np.uint8)
        self._foreground = np.zeros((height, width), np.uint8)
        self._still = np.empty((height, width), np.uint8)
        self._refresh_limit()

    def _refresh_limit(self) -> None:
        """The per-pixel threshold as a uint8 image: comparing bytes is the cheapest per-frame test."""
        cv2.max(self._noise, self.MIN_VARIANCE, dst=self._scratch)
        cv2.multiply(self._scratch, self.var_threshold, dst=self._scratch)
        cv2.sqrt(self._scratch, dst=self._scratch)
        # d > sqrt(limit) for a whole number d is d > floor(sqrt(limit)).
        cv2.convertScaleAbs(self._scratch, dst=self._limit, beta=-0.5)

    def apply(self, image: np.ndarray, shift: tuple[int, int] = (0, 0), learning_rate: float = -1) -> np.ndarray:
        """Foreground mask (255 = changed) in background coordinates; ``learning_rate`` 0 learns nothing,
        negative the configured rate, else that rate for every pixel (catching up with a changed view)."""
        if self._shape != image.shape:
            self._allocate(image)
            self._frames = 0
            return self._foreground
        self._frames += 1
        height, width = image.shape[:2]
        sx, sy = shift
        # The frame shows background pixel (x, y) at (x + sx, y + sy): compare the overlap only.
        x0, x1 = max(0, -sx), width - max(0, sx)
        y0, y1 = max(0, -sy), height - max(0, sy)
        whole = (x0, y0, x1, y1) == (0, 0, width, height)
        if not whole:
            self._foreground.fill(0)
            self._largest.fill(0)
        if x1 <= x0 or y1 <= y0:
            return self._foreground
        frame = image[y0 + sy : y1 + sy, x0 + sx : x1 + sx]
        box = (slice(y0, y1), slice(x0, x1))
        diff = cv2.absdiff(frame, self._background[box], dst=self._diff[box])
        if whole:
            b, g, r = cv2.split(diff, self._channels)
        else:
            b, g, r = cv2.split(diff)
        largest = self._largest[box]
        cv2.max(b, g, dst=b)
        cv2.max(b, r, dst=largest)
        foreground = self._foreground[box]
        cv2.compare(largest, self._limit[box], cv2.CMP_GT, dst=foreground)
        if learning_rate == 0:
            return self._foreground
        if learning_rate > 0:
            self._learn_all(frame, box, learning_rate)
            return self._foreground
        if self._frames % self.UPDATE_EVERY:
            return self._foreground
        self._updates += 1
        rate = self.alpha * self.UPDATE_EVERY
        still = cv2.bitwise_not(foreground, dst=self._still[box])
        every_pixel = self._updates % self.FOREGROUND_EVERY == 0
        cv2.accumulateWeighted(frame, self._mean[box], rate, mask=None if every_pixel else still)
        cv2.convertScaleAbs(self._mean[box], dst=self._background[box])
        if self._updates % (self.NOISE_EVERY // self.UPDATE_EVERY) == 0:
            squared = cv2.multiply(largest, largest, dst=self._squared[box], dtype=cv2.CV_32F)
            cv2.accumulateWeighted(squared, self._noise[box], rate * 2, mask=still)
            self._refresh_limit()
        return self._foreground

    def _learn_all(self, frame: np.ndarray, box: tuple[slice, slice], rate: float) -> None:
        cv2.accumulateWeighted(frame, self._mean[box], rate)
        cv2.convertScaleAbs(self._mean[box], dst=self._background[box])
        squared = cv2.multiply(self._largest[box], self._largest[box], dst=self._squared[box], dtype=cv2.CV_32F)
        cv2.accumulateWeighted(squared, self._noise[box], rate / 4)
        self._refresh_limit()


class Mog2Background:
    """OpenCV's MOG2 on the colour frame, shifted back onto the reference view by whole pixels."""

    def __init__(self, history_frames: int, var_threshold: float) -> None:
        self._model = cv2.createBackgroundSubtractorMOG2(
            history=history_frames, varThreshold=var_threshold, detectShadows=False
        )

    def apply(self, image: np.ndarray, shift: tuple[int, int] = (0, 0), learning_rate: float = -1) -> np.ndarray:
        sx, sy = shift
        if sx or sy:
            image = shift_image(image, -sx, -sy)
        return np.asarray(self._model.apply(image, learningRate=learning_rate))


BackgroundModel = ColourBackground | Mog2Background


def shift_image(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The picture moved by whole pixels (right and down positive), edges repeated."""
    height, width = image.shape[:2]
    dx = max(-width + 1, min(width - 1, dx))
    dy = max(-height + 1, min(height - 1, dy))
    crop = image[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    return np.asarray(
        cv2.copyMakeBorder(crop, max(0, dy), max(0, -dy), max(0, dx), max(0, -dx), cv2.BORDER_REPLICATE)
    )


@dataclass(frozen=True, slots=True)
class Blob:
    """A moving blob in calibration pixels (the configured frame size, shake removed)."""

    u: float
    v: float
    area_px: float
    width_px: float
    height_px: float


@dataclass(frozen=True, slots=True)
class FrameMotion:
    blobs: list[Blob]
    shift_px: tuple[float, float]  # camera offset from the reference, calibration pixels
    shaky: bool  # the camera moved more than shake_px since the previous frame
    global_change: bool  # too much of the frame changed: no blobs reported
    foreground_fraction: float


class MotionDetector:
    def __init__(
        self,
        config: DetectionConfig,
        frame_size: tuple[int, int],
        masks: list[MaskConfig],
        ignore: list[list[tuple[float, float]]] | None = None,
    ) -> None:
        self.config = config
        self.frame_size = frame_size  # (width, height) that calibration pixels refer to
        self.masks = masks
        # More polygons to ignore, in calibration pixels (the sky above the roof, from the calibration).
        self.ignore = ignore or []
        self._background = self._new_background()
        self._reference: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._keep: np.ndarray | None = None  # 255 outside the masks
        self._shape: tuple[int, int] | None = None
        self._previous_shift = (0.0, 0.0)
        self._frames = 0
        self._since_reference = 0

    def _new_background(self) -> BackgroundModel:
        if self.config.background == "mog2":
            return Mog2Background(self.config.history_frames, self.config.var_threshold)
        return ColourBackground(self.config.history_frames, self.config.var_threshold)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """The frame at processing size, BGR (a grey camera's frames are taken as they come)."""
        width = self.config.processing_width
        if width is not None and width < image.shape[1]:
            height = round(image.shape[0] * width / image.shape[1])
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        if self._shape != image.shape[:2]:
            self._shape = (image.shape[0], image.shape[1])
            self._keep = self._keep_image(image.shape[1], image.shape[0])
            self._reference = None
            self._background = self._new_background()
            self._frames = 0
        return image

    def _keep_image(self, width: int, height: int) -> np.ndarray | None:
        polygons = [zone.polygon for zone in self.masks] + self.ignore
        if not polygons:
            return None
        scale_x, scale_y = width / self.frame_size[0], height / self.frame_size[1]
        keep = np.full((height, width), 255, np.uint8)
        for corners in polygons:
            polygon = np.array([(x * scale_x, y * scale_y) for x, y in corners], np.int32)
            cv2.fillPoly(keep, [polygon], 0)
        return keep

    def _shake(self, image: np.ndarray) -> tuple[float, float]:
        """Offset of this frame from the reference in processing pixels (0, 0 without stabilisation)."""
        if not self.config.stabilize:
            return (0.0, 0.0)
        scale = min(1.0, self.config.stabilize_width / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        small = small.astype(np.float32)
        if self._window is None or self._window.shape != small.shape:
            self._window = cv2.createHanningWindow((small.shape[1], small.shape[0]), cv2.CV_32F)
            self._reference = None
        # Windowed here, not by phaseCorrelate's window argument: OpenCV 5.0 multiplies its inputs by the
        # window in place, so a kept reference would fade a little more with every frame.
        small *= self._window
        if self._reference is None:
            self._reference = small
            self._since_reference = 0
            return (0.0, 0.0)
        (dx, dy), _response = cv2.phaseCorrelate(self._reference, small)
        self._since_reference += 1
        if math.hypot(dx, dy) > REAIM_FRACTION * small.shape[1]:
            self._reference = small  # re-aimed: a new view, a new background
            self._background = self._new_background()
            self._frames = 0
            return (0.0, 0.0)
        if self._since_reference >= REFERENCE_REFRESH_FRAMES and math.hypot(dx, dy) < REFERENCE_STILL_PX:
            self._reference, self._since_reference = small, 0
        return (dx / scale, dy / scale)

    def _foreground(self, image: np.ndarray, shift: tuple[int, int], learning_rate: float) -> np.ndarray:
        return self._background.apply(image, shift, learning_rate)

    def detect(self, image: np.ndarray) -> FrameMotion:
        image = self._prepare(image)
        height, width = image.shape[:2]
        to_calib_x, to_calib_y = self.frame_size[0] / width, self.frame_size[1] / height
        dx, dy = self._shake(image)
        jump = math.hypot(
            (dx - self._previous_shift[0]) * to_calib_x, (dy - self._previous_shift[1]) * to_calib_y
        )
        shaky = jump > self.config.shake_px
        self._previous_shift = (dx, dy)
        shift = (dx * to_calib_x, dy * to_calib_y)
        # Whole pixels are a free change of offset; a fraction left over (real shake is not in whole
        # pixels) would light up every edge, so the frame is warped by it, which costs more than all the
        # rest at 1080p: only while the camera shakes. While it jumps the background learns nothing: shake
        # must not become "background".
        offset = (round(dx), round(dy))
        fraction_x, fraction_y = dx - offset[0], dy - offset[1]
        if abs(fraction_x) > SUBPIXEL_PX or abs(fraction_y) > SUBPIXEL_PX:
            back = np.array([[1.0, 0.0, -fraction_x], [0.0, 1.0, -fraction_y]], np.float32)
            image = cv2.warpAffine(image, back, (width, height), borderMode=cv2.BORDER_REPLICATE)
        foreground = self._foreground(image, offset, 0.0 if shaky else -1)
        self._frames += 1
        if self._frames <= WARMUP_FRAMES:
            return FrameMotion([], shift, shaky, False, 0.0)
        return self._blobs(image, foreground, offset, shift, shaky, (to_calib_x, to_calib_y))

    def _blobs(
        self,
        image: np.ndarray,
        foreground: np.ndarray,
        offset: tuple[int, int],
        shift: tuple[float, float],
        shaky: bool,
        to_calib: tuple[float, float],
    ) -> FrameMotion:
        height, width = foreground.shape
        if self._keep is not None:
            cv2.bitwise_and(foreground, self._keep, dst=foreground)
        changed = cv2.countNonZero(foreground)
        fraction = changed / float(width * height)
        if fraction == 0.0:
            return FrameMotion([], shift, shaky, False, fraction)
        if fraction > self.config.max_foreground_fraction and self._dense_change(foreground, fraction):
            # Lights, exposure, a cloud: the whole view changed. Learn it fast, or the selective update
            # would keep calling it foreground (and report nothing) for minutes.
            if not shaky:
                self._foreground(image, offset, GLOBAL_CHANGE_RATE)
            return FrameMotion([], shift, shaky, True, fraction)
        # Label only the box around the changed pixels (BBDT: three times faster than OpenCV's default
        # with statistics on a 1080p frame).
        left, top, box_w, box_h = cv2.boundingRect(foreground)
        count, _labels, stats, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(
            foreground[top : top + box_h, left : left + box_w], 8, cv2.CV_32S, cv2.CCL_BBDT
        )
        if count <= 1:
            return FrameMotion([], shift, shaky, False, fraction)
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = (areas >= self.config.min_blob_area_px) & (areas <= self.config.max_blob_area_px)
        if int(keep.sum()) > MAX_BLOBS:
            return FrameMotion([], shift, shaky, True, fraction)
        to_x, to_y = to_calib
        us = (centroids[1:, 0][keep] + left) * to_x
        vs = (centroids[1:, 1][keep] + top) * to_y
        kept = stats[1:][keep]
        blobs = [
            Blob(u=float(u), v=float(v), area_px=float(a) * to_x * to_y, width_px=float(w) * to_x, height_px=float(h) * to_y)
            for u, v, a, w, h in zip(
                us.tolist(),
                vs.tolist(),
                kept[:, cv2.CC_STAT_AREA].tolist(),
                kept[:, cv2.CC_STAT_WIDTH].tolist(),
                kept[:, cv2.CC_STAT_HEIGHT].tolist(),
                strict=True,
            )
        ]
        return FrameMotion(blobs, shift, shaky, False, fraction)

    def _dense_change(self, foreground: np.ndarray, fraction: float) -> bool:
        """Whether the change covers the view in dense patches (or is everywhere), not sparse specks."""
        if fraction > MAX_SPARSE_FRACTION:
            return True
        height, width = foreground.shape
        cells = cv2.resize(
            foreground, (max(1, width // CELL_PX), max(1, height // CELL_PX)), interpolation=cv2.INTER_AREA
        )
        dense = cv2.countNonZero(cv2.compare(cells, 127, cv2.CMP_GT)) / float(cells.size)
        return dense > self.config.max_foreground_fraction
