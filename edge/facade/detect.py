"""Small moving blobs on the facade: shake compensation, adaptive background, masks, connected components.

Per frame: grey (optionally scaled to ``processing_width``) -> camera shake estimated by phase correlation
against a reference frame on a small copy, and the frame shifted back onto it (so blob positions stay
in the calibration's pixels) -> OpenCV's MOG2 background model (adapts to light) -> masks -> when more
of the frame changed than ``max_foreground_fraction`` (lights, exposure, a shake the shift did not
absorb) no blobs at all, else connected components within the size bounds.

Two background models: OpenCV's MOG2, or :class:`GaussianBackground` (one running mean and variance per
pixel, selectively updated), three times cheaper at 1080p and enough for a facade whose trees are masked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.facade.config import DetectionConfig, MaskConfig

# Frames the background model sees before blobs are reported (its first frames are all "new").
WARMUP_FRAMES = 5
# More blobs than this in one frame is noise (sensor noise at night, heavy rain on the lens): none kept.
MAX_BLOBS = 300
# A shift over this share of the small frame is a re-aimed camera, not shake: start over.
REAIM_FRACTION = 0.15
# Re-take the shake reference while the camera sits this still (small-frame pixels): light drifts over a day.
REFERENCE_STILL_PX = 0.1
REFERENCE_REFRESH_FRAMES = 250
# Learning rate for a frame where most of the view changed at once (see ``detect``).
GLOBAL_CHANGE_RATE = 0.3


class GaussianBackground:
    """Per-pixel running mean and variance; foreground where (frame - mean)^2 > threshold * variance.

    Background pixels update at ``1 / history``; foreground ones ten times slower, so a light left on
    becomes background in a few hundred frames while a passing object never does.
    """

    MIN_VARIANCE = (
        9.0  # sensor noise floor (3 grey levels): a flat wall does not turn every speck into motion
    )

    def __init__(self, history_frames: int, var_threshold: float) -> None:
        self.alpha = 1.0 / history_frames
        self.var_threshold = var_threshold
        self._mean: np.ndarray | None = None
        self._var: np.ndarray | None = None

    def apply(self, grey: np.ndarray, learningRate: float = -1) -> np.ndarray:
        frame = grey.astype(np.float32)
        if self._mean is None or self._var is None or self._mean.shape != frame.shape:
            self._mean = frame
            self._var = np.full(frame.shape, 4 * self.MIN_VARIANCE, np.float32)
            return np.zeros(frame.shape, np.uint8)
        diff = cv2.subtract(frame, self._mean)
        squared = cv2.multiply(diff, diff)
        limit = np.maximum(self._var, self.MIN_VARIANCE) * self.var_threshold
        foreground = cv2.compare(squared, limit, cv2.CMP_GT)
        alpha = self.alpha if learningRate < 0 else learningRate
        if alpha > 0:
            still = cv2.bitwise_not(foreground)
            cv2.accumulateWeighted(frame, self._mean, alpha, mask=still)
            cv2.accumulateWeighted(squared, self._var, alpha, mask=still)
            if alpha >= GLOBAL_CHANGE_RATE:  # catching up with a changed view: every pixel learns
                cv2.accumulateWeighted(frame, self._mean, alpha, mask=foreground)
                cv2.accumulateWeighted(squared, self._var, alpha / 4, mask=foreground)
            else:
                cv2.accumulateWeighted(frame, self._mean, alpha / 10, mask=foreground)
        return foreground


BackgroundModel = cv2.BackgroundSubtractorMOG2 | GaussianBackground


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
    def __init__(self, config: DetectionConfig, frame_size: tuple[int, int], masks: list[MaskConfig]) -> None:
        self.config = config
        self.frame_size = frame_size  # (width, height) that calibration pixels refer to
        self.masks = masks
        self._background = self._new_background()
        self._reference: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._previous_shift = (0.0, 0.0)
        self._frames = 0
        self._since_reference = 0

    def retune(self, config: DetectionConfig, masks: list[MaskConfig]) -> None:
        """New settings between two frames. A changed background model, history, variance threshold or
        processing width starts a new background (it learns again for a few frames); new masks apply to
        the next frame; the rest is read at every frame."""
        relearn = ("background", "history_frames", "var_threshold", "processing_width")
        fresh = any(getattr(config, name) != getattr(self.config, name) for name in relearn)
        self.config, self.masks = config, masks
        if fresh:
            self._shape = None  # the next frame builds the background and the mask again (_prepare)
        elif self._shape is not None:
            self._mask = self._mask_image(self._shape[1], self._shape[0])

    def _new_background(self) -> BackgroundModel:
        if self.config.background == "gaussian":
            return GaussianBackground(self.config.history_frames, self.config.var_threshold)
        return cv2.createBackgroundSubtractorMOG2(
            history=self.config.history_frames, varThreshold=self.config.var_threshold, detectShadows=False
        )

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        width = self.config.processing_width
        if width is not None and width < grey.shape[1]:
            height = round(grey.shape[0] * width / grey.shape[1])
            grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
        if self._shape != grey.shape:
            self._shape = (grey.shape[0], grey.shape[1])
            self._mask = self._mask_image(grey.shape[1], grey.shape[0])
            self._reference = None
            self._background = self._new_background()
            self._frames = 0
        return grey

    def _mask_image(self, width: int, height: int) -> np.ndarray | None:
        if not self.masks:
            return None
        scale_x, scale_y = width / self.frame_size[0], height / self.frame_size[1]
        mask = np.zeros((height, width), np.uint8)
        for zone in self.masks:
            polygon = np.array([(x * scale_x, y * scale_y) for x, y in zone.polygon], np.int32)
            cv2.fillPoly(mask, [polygon], 255)
        return mask

    def _shake(self, grey: np.ndarray) -> tuple[float, float]:
        """Offset of this frame from the reference in processing pixels (0, 0 without stabilisation)."""
        if not self.config.stabilize:
            return (0.0, 0.0)
        scale = min(1.0, self.config.stabilize_width / grey.shape[1])
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32)
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

    def detect(self, image: np.ndarray) -> FrameMotion:
        grey = self._prepare(image)
        height, width = grey.shape
        to_calib_x, to_calib_y = self.frame_size[0] / width, self.frame_size[1] / height
        dx, dy = self._shake(grey)
        if abs(dx) > 0.25 or abs(dy) > 0.25:
            shift_back = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], np.float32)
            grey = cv2.warpAffine(grey, shift_back, (width, height), borderMode=cv2.BORDER_REPLICATE)
        jump = math.hypot(
            (dx - self._previous_shift[0]) * to_calib_x, (dy - self._previous_shift[1]) * to_calib_y
        )
        shaky = jump > self.config.shake_px
        self._previous_shift = (dx, dy)
        shift = (dx * to_calib_x, dy * to_calib_y)
        # While the camera jumps the background learns nothing: shake must not become "background".
        foreground = self._background.apply(grey, learningRate=0.0 if shaky else -1)
        self._frames += 1
        if self._mask is not None:
            foreground[self._mask > 0] = 0
        margin_x, margin_y = math.ceil(abs(dx)) + 1, math.ceil(abs(dy)) + 1
        if abs(dx) > 0.25 or abs(dy) > 0.25:  # replicated borders after the shift are not motion
            foreground[:, :margin_x] = 0
            foreground[:, width - margin_x :] = 0
            foreground[:margin_y, :] = 0
            foreground[height - margin_y :, :] = 0
        fraction = cv2.countNonZero(foreground) / float(width * height)
        if self._frames <= WARMUP_FRAMES:
            return FrameMotion([], shift, shaky, False, fraction)
        if fraction > self.config.max_foreground_fraction:
            # Lights, exposure, a cloud: the whole view changed. Learn it fast, or the selective update
            # would keep calling it foreground (and report nothing) for minutes.
            if not shaky:
                self._background.apply(grey, learningRate=GLOBAL_CHANGE_RATE)
            return FrameMotion([], shift, shaky, True, fraction)
        if fraction == 0.0:
            return FrameMotion([], shift, shaky, False, fraction)
        # Label only the box around the changed pixels: labelling a whole 1080p frame costs ~17 ms.
        left, top, box_w, box_h = cv2.boundingRect(foreground)
        count, _labels, stats, centroids = cv2.connectedComponentsWithStats(
            foreground[top : top + box_h, left : left + box_w], connectivity=8
        )
        centroids = centroids + np.array([left, top])
        blobs = []
        for i in range(1, count):
            area = int(stats[i, cv2.CC_STAT_AREA])
            if not self.config.min_blob_area_px <= area <= self.config.max_blob_area_px:
                continue
            blobs.append(
                Blob(
                    u=float(centroids[i, 0]) * to_calib_x,
                    v=float(centroids[i, 1]) * to_calib_y,
                    area_px=area * to_calib_x * to_calib_y,
                    width_px=float(stats[i, cv2.CC_STAT_WIDTH]) * to_calib_x,
                    height_px=float(stats[i, cv2.CC_STAT_HEIGHT]) * to_calib_y,
                )
            )
        if len(blobs) > MAX_BLOBS:
            return FrameMotion([], shift, shaky, True, fraction)
        return FrameMotion(blobs, shift, shaky, False, fraction)
