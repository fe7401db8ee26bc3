"""Painting a posed scene: background, shadows, props far to near, lens, sensor and codec artefacts.

Ground truth comes from an object-id image painted alongside the picture, so every box is the
extent of the pixels of that object that are actually visible (after occlusion, the door, the
image border and the lens distortion), with the visible fraction of the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from simulators.elevator.camera import Camera, CameraPose, FloatArray
from simulators.elevator.props import LABELLED_CLASSES, Part, Prop
from simulators.elevator.room import Background, Car, Image, render_background

SHIFT = 3  # sub-pixel bits for OpenCV drawing
SCALE = 1 << SHIFT
# Box faces as corner indices of ``props.box`` (corner index = 4*u + 2*y + v of the sign bits).
BOX_FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))


@dataclass(frozen=True)
class Box:
    """A labelled object's visible extent in pixels (x2, y2 exclusive)."""

    cls: str
    x1: float
    y1: float
    x2: float
    y2: float
    track_id: int = -1
    visible: float = 1.0

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


@dataclass(frozen=True)
class Look:
    """Camera and sensor character: colour, exposure, blur, noise, codec, on-screen display."""

    gains: tuple[float, float, float]
    gamma: float
    contrast: float
    saturation: float
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    vignette: float
    night_mode: bool
    osd: bool
    motion_blur_px: int


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        gains=(float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.8, 1.25))),
        gamma=float(rng.uniform(0.7, 1.4)),
        contrast=float(rng.uniform(0.7, 1.2)),
        saturation=float(rng.uniform(0.4, 1.2)),
        blur_sigma=float(rng.uniform(0.0, 1.6)),
        noise_sigma=float(rng.uniform(1.0, 9.0)),
        jpeg_quality=int(rng.integers(25, 90)),
        vignette=float(rng.uniform(0.0, 0.45)),
        night_mode=bool(rng.random() < 0.1),
        osd=bool(rng.random() < 0.5),
        motion_blur_px=int(rng.integers(0, 9)) if rng.random() < 0.3 else 0,
    )


def random_camera_pose(rng: np.random.Generator, car: Car, *, facing_door: bool = True) -> CameraPose:
    """A ceiling-corner camera; ``facing_door=False`` puts it above the door looking at the back wall."""
    corner = float(rng.choice([0.08, car.width - 0.08]) + rng.uniform(-0.05, 0.05))
    height = car.height - float(rng.uniform(0.05, 0.45))
    if facing_door:
        position = (corner, height, float(rng.uniform(0.05, 0.3)))
        target = (
            car.door_center_x + float(rng.uniform(-0.4, 0.4)),
            float(rng.uniform(0.5, 1.4)),
            car.depth * float(rng.uniform(0.7, 1.3)),
        )
    else:
        position = (corner, height, car.depth - float(rng.uniform(0.05, 0.3)))
        target = (
            car.width / 2 + float(rng.uniform(-0.3, 0.3)),
            float(rng.uniform(0.5, 1.2)),
            car.depth * float(rng.uniform(-0.2, 0.3)),
        )
    return CameraPose(
        position=position,
        target=target,
        roll_deg=float(rng.uniform(-4, 4)),
        hfov_deg=float(rng.uniform(75, 105)),
        k1=float(rng.uniform(-0.35, 0.0)),
    )


@dataclass(eq=False)
class Placement:
    """A prop at one instant: floor position, heading (radians, 0 = +x), gait and hands."""

    prop: Prop
    x: float
    z: float
    yaw: float
    track_id: int
    phase: float = 0.0
    walking: float = 0.0
    hands: FloatArray | None = None

    def world_parts(self) -> list[tuple[Part, FloatArray]]:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        out = []
        for part in self.prop.parts(self.phase, self.hands, self.walking):
            local = part.points
            world = np.empty_like(local)
            world[:, 0] = self.x + local[:, 0] * c - local[:, 2] * s
            world[:, 1] = local[:, 1]
            world[:, 2] = self.z + local[:, 0] * s + local[:, 2] * c
            out.append((part, world))
        return out


@dataclass
class RenderedFrame:
    image: Image
    boxes: list[Box]
    # Visible fraction per track id (0 when hidden), for every placement, labelled or not.
    visibility: dict[int, float] = field(default_factory=dict)


class SceneRenderer:
    """Renders frames of one car seen by one camera (background computed once)."""

    def __init__(
        self,
        car: Car,
        pose: CameraPose,
        look: Look,
        size: tuple[int, int],
        seed: int,
        background: Background | None = None,
    ) -> None:
        """``background``: one already rendered for this car, pose and size (it is not modified)."""
        self.car = car
        self.look = look
        self.camera = Camera(pose, size[0], size[1])
        pristine = background if background is not None else render_background(car, self.camera)
        self.rng = np.random.default_rng(seed)
        width, height = size
        margin = 32
        # Sensor noise: mostly luminance, some chroma at half resolution (cheaper, and blotchy as in CCTV).
        luma = self.rng.standard_normal((height + margin, width + margin), dtype=np.float32)
        half = self.rng.standard_normal(((height + margin) // 2, (width + margin) // 2, 3), dtype=np.float32)
        chroma = cv2.resize(half, (width + margin, height + margin), interpolation=cv2.INTER_LINEAR)
        noise = cv2.scaleAdd(chroma, 0.35, cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)) * np.float32(
            look.noise_sigma
        )
        self._noise_up = cv2.convertScaleAbs(np.maximum(noise, 0))
        self._noise_down = cv2.convertScaleAbs(np.minimum(noise, 0))
        # Per-channel tone curve: white balance, gamma and contrast in one lookup.
        levels = np.arange(256, dtype=np.float64)[:, None] / 255.0 * np.asarray(look.gains)[None, :]
        curve = 0.5 + (np.clip(levels, 0, 1) ** look.gamma - 0.5) * look.contrast
        self._tone_lut = np.clip(curve * 255, 0, 255).astype(np.uint8).reshape(256, 1, 3)
        # The lens's light falloff is baked into the background (props are small beside it).
        vignette = self._vignette_map(width, height)
        self.background = Background(
            closed=cv2.multiply(pristine.closed, vignette, scale=1 / 255),
            open=cv2.multiply(pristine.open, vignette, scale=1 / 255),
            door_x=pristine.door_x,
            floor_points=pristine.floor_points,
        )
        self._light = np.array([car.width / 2, car.height - 0.05, car.depth / 2])
        self._osd_text = f"CAM{int(self.rng.integers(1, 40)):02d}  {int(self.rng.integers(2019, 2026))}-{int(self.rng.integers(1, 13)):02d}-{int(self.rng.integers(1, 29)):02d}"

    def _vignette_map(self, width: int, height: int) -> Image:
        """Light falloff towards the corners as a 3-channel uint8 gain (255 = none)."""
        xs = np.linspace(-1, 1, width)[None, :]
        ys = np.linspace(-1, 1, height)[:, None]
        falloff = 255 * (1 - self.look.vignette * (xs * xs + ys * ys) / 2)
        return cv2.cvtColor(falloff.astype(np.uint8), cv2.COLOR_GRAY2BGR)

    # ------------------------------------------------------------------------------------ drawing

    def _prop_light(self, placement: Placement) -> float:
        outside = placement.z > self.car.depth
        if outside:
            return float(0.45 + 0.5 * self.car.landing_light)
        centre = np.array([placement.x, placement.prop.height / 2, placement.z])
        distance = float(np.linalg.norm(self._light - centre))
        return float(
            np.clip(self.car.ambient + 1.4 * self.car.light_strength / (1 + 0.3 * distance**2), 0.35, 1.3)
        )

    def _draw_placement(
        self, frame: Image, ids: Image, placement: Placement, index: int
    ) -> tuple[int, int, int, int] | None:
        """Paint one prop; returns the pixel bounds it may cover, or None when behind the camera."""
        camera = self.camera
        parts = placement.world_parts()
        all_uv, all_depth = camera.project(np.concatenate([world for _, world in parts]))
        if all_depth.min() < 0.15:
            return None
        projected = []
        start = 0
        for part, world in parts:
            stop = start + len(world)
            uv, depth = all_uv[start:stop], all_depth[start:stop]
            start = stop
            projected.append((float(depth.mean()), part, world, uv, depth))
        light = self._prop_light(placement)
        height = max(placement.prop.height, 0.3)
        projected.sort(key=lambda item: -item[0])
        for mean_depth, part, world, uv, _depth in projected:
            tone = light * (0.8 + 0.3 * float(world[:, 1].mean()) / height)
            colour = tuple(float(min(255.0, c * tone)) for c in part.colour)
            self._draw_part(frame, ids, part, world, uv, mean_depth, colour, index)
        pad = 4 + int(camera.focal * 0.12 / max(float(all_depth.min()), 0.15))
        height, width = ids.shape
        x1, y1 = (np.floor(all_uv.min(axis=0)).astype(int) - pad).tolist()
        x2, y2 = (np.ceil(all_uv.max(axis=0)).astype(int) + pad).tolist()
        return max(0, x1), max(0, y1), min(width, x2), min(height, y2)

    def _draw_part(
        self,
        frame: Image,
        ids: Image,
        part: Part,
        world: FloatArray,
        uv: FloatArray,
        mean_depth: float,
        colour: tuple[float, ...],
        index: int,
    ) -> None:
        focal = self.camera.focal
        points = np.round(uv * SCALE).astype(np.int32)
        aa = cv2.LINE_AA
        if part.kind == "capsule":
            radius = focal * part.radius / mean_depth
            a, b = (int(points[0, 0]), int(points[0, 1])), (int(points[1, 0]), int(points[1, 1]))
            # Rounded shading: a darker rim, then lighter cores nudged towards the ceiling light (up).
            rim = tuple(c * 0.62 for c in colour)
            if a == b or np.hypot(a[0] - b[0], a[1] - b[1]) < SCALE * 0.5:
                r = max(1, round(radius * SCALE))
                cv2.circle(frame, a, r, rim, -1, aa, SHIFT)
                cv2.circle(ids, a, r, index, -1, cv2.LINE_8, SHIFT)
                if radius > 2.5:
                    lift = round(radius * SCALE * 0.18)
                    cv2.circle(frame, (a[0], a[1] - lift), round(r * 0.75), colour, -1, aa, SHIFT)
                    highlight = tuple(min(255.0, c * 1.18) for c in colour)
                    cv2.circle(frame, (a[0], a[1] - 2 * lift), round(r * 0.35), highlight, -1, aa, SHIFT)
            else:
                thickness = max(1, round(2 * radius))
                cv2.line(frame, a, b, rim if thickness >= 4 else colour, thickness, aa, SHIFT)
                cv2.line(ids, a, b, index, thickness, cv2.LINE_8, SHIFT)
                if thickness >= 4:
                    lift = round(radius * SCALE * 0.15)
                    a2, b2 = (a[0], a[1] - lift), (b[0], b[1] - lift)
                    cv2.line(frame, a2, b2, colour, max(1, round(thickness * 0.7)), aa, SHIFT)
                    highlight = tuple(min(255.0, c * 1.15) for c in colour)
                    cv2.line(frame, a2, b2, highlight, max(1, round(thickness * 0.25)), aa, SHIFT)
        elif part.kind in ("ring", "arc"):
            thickness = max(1, round(focal * part.radius / mean_depth))
            closed = part.kind == "ring"
            cv2.polylines(frame, [points], closed, colour, thickness, aa, SHIFT)
            cv2.polylines(ids, [points], closed, index, thickness, cv2.LINE_8, SHIFT)
        elif part.kind == "poly":
            cv2.fillPoly(frame, [points], colour, aa, SHIFT)
            cv2.fillPoly(ids, [points], index, cv2.LINE_8, SHIFT)
        else:
            self._draw_box(frame, ids, part, world, points, colour, index)

    def _draw_box(
        self,
        frame: Image,
        ids: Image,
        part: Part,
        world: FloatArray,
        points: npt.NDArray[np.int32],
        colour: tuple[float, ...],
        index: int,
    ) -> None:
        centre = world.mean(axis=0)
        eye = self.camera.position
        for face in BOX_FACES:
            face_world = world[list(face)]
            face_centre = face_world.mean(axis=0)
            normal = face_centre - centre
            normal /= np.linalg.norm(normal) + 1e-9
            if float(np.dot(normal, eye - face_centre)) <= 0:
                continue
            shade = (
                1.15 if normal[1] > 0.5 else (0.55 if normal[1] < -0.5 else 0.78 + 0.18 * float(normal[0]))
            )
            face_points = points[list(face)]
            if part.kind == "wirebox":
                dark = tuple(c * 0.3 for c in colour)
                cv2.fillConvexPoly(frame, face_points, dark, cv2.LINE_AA, SHIFT)
                cv2.fillConvexPoly(ids, face_points, index, cv2.LINE_8, SHIFT)
                a, b, c, d = (face_points[i].astype(np.float64) for i in range(4))
                lines = [colour[0] * shade, colour[1] * shade, colour[2] * shade]
                for t in np.linspace(0, 1, 6):
                    p, q = a + (b - a) * t, d + (c - d) * t
                    cv2.line(
                        frame,
                        tuple(np.round(p).astype(int)),
                        tuple(np.round(q).astype(int)),
                        lines,
                        1,
                        cv2.LINE_AA,
                        SHIFT,
                    )
                    p, q = a + (d - a) * t, b + (c - b) * t
                    cv2.line(
                        frame,
                        tuple(np.round(p).astype(int)),
                        tuple(np.round(q).astype(int)),
                        lines,
                        1,
                        cv2.LINE_AA,
                        SHIFT,
                    )
            else:
                cv2.fillConvexPoly(
                    frame, face_points, tuple(min(255.0, c * shade) for c in colour), cv2.LINE_AA, SHIFT
                )
                cv2.fillConvexPoly(ids, face_points, index, cv2.LINE_8, SHIFT)

    def _shadows(self, frame: Image, placements: list[Placement]) -> None:
        # Soft shadows are drawn at quarter resolution: they are blurred anyway.
        factor = 4
        mask = np.zeros((frame.shape[0] // factor, frame.shape[1] // factor), dtype=np.uint8)
        for placement in placements:
            if placement.z > self.car.depth:
                continue
            prop = placement.prop
            angles = np.linspace(0, 2 * np.pi, 14)
            local_u = 0.55 * prop.length * np.cos(angles)
            local_v = 0.6 * prop.width * np.sin(angles)
            c, s = np.cos(placement.yaw), np.sin(placement.yaw)
            world = np.stack(
                [
                    placement.x + local_u * c - local_v * s,
                    np.full_like(angles, 0.005),
                    placement.z + local_u * s + local_v * c,
                ],
                axis=1,
            )
            uv, depth = self.camera.project(world)
            if depth.min() < 0.15:
                continue
            cv2.fillPoly(mask, [np.round(uv * SCALE / factor).astype(np.int32)], 150, cv2.LINE_AA, SHIFT)
        if mask.any():
            k = max(3, (mask.shape[1] // 40) | 1)
            soft = cv2.GaussianBlur(mask, (k, k), 0)
            light: Image = 255 - (soft.astype(np.uint16) * 3 // 5).astype(np.uint8)
            full = cv2.resize(light, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
            cv2.multiply(frame, cv2.cvtColor(full, cv2.COLOR_GRAY2BGR), dst=frame, scale=1 / 255)

    # ------------------------------------------------------------------------------------ frames

    def render(self, placements: list[Placement], opening: float, *, artefacts: bool = True) -> RenderedFrame:
        """Render one frame with the door open by ``opening`` (0..1)."""
        frame, through = self.background.compose(self.car, opening)
        ids = np.zeros(frame.shape[:2], dtype=np.uint8)
        if len(placements) > 250:
            raise ValueError("at most 250 props per frame")
        camera_position = self.camera.position
        order = sorted(
            range(len(placements)),
            key=lambda i: (
                -float(np.hypot(placements[i].x - camera_position[0], placements[i].z - camera_position[2]))
            ),
        )
        outside = [i for i in order if placements[i].z > self.car.depth]
        inside = [i for i in order if placements[i].z <= self.car.depth]
        full_area: dict[int, int] = {}
        if outside:
            for i in outside:
                self._draw_counted(frame, ids, placements[i], i + 1, full_area)
            # The front wall and door panels hide whatever is outside except through the opening.
            closed = ~through
            np.copyto(frame, self.background.closed, where=closed[..., None])
            ids[closed] = 0
        self._shadows(frame, [placements[i] for i in inside])
        for i in inside:
            self._draw_counted(frame, ids, placements[i], i + 1, full_area)

        # Visible fractions are measured before the lens bends areas; boxes after it.
        counts = np.bincount(ids.ravel(), minlength=len(placements) + 1)
        frame = self.camera.distort(frame)
        ids = self.camera.distort(ids, nearest=True)
        boxes: list[Box] = []
        visibility: dict[int, float] = {}
        for i, placement in enumerate(placements):
            total = full_area.get(i + 1, 0)
            visible = float(min(1.0, counts[i + 1] / total)) if total else 0.0
            visibility[placement.track_id] = visible
            if placement.prop.cls not in LABELLED_CLASSES or counts[i + 1] == 0:
                continue
            x, y, w, h = cv2.boundingRect((ids == i + 1).astype(np.uint8))
            if w == 0 or h == 0:
                continue
            boxes.append(
                Box(
                    placement.prop.cls,
                    float(x),
                    float(y),
                    float(x + w),
                    float(y + h),
                    placement.track_id,
                    visible,
                )
            )
        if artefacts:
            frame = self._artefacts(frame)
        return RenderedFrame(frame, boxes, visibility)

    def _draw_counted(
        self, frame: Image, ids: Image, placement: Placement, index: int, full_area: dict[int, int]
    ) -> None:
        bounds = self._draw_placement(frame, ids, placement, index)
        if bounds is not None:
            x1, y1, x2, y2 = bounds
            full_area[index] = int(np.count_nonzero(ids[y1:y2, x1:x2] == index))

    def _artefacts(self, frame: Image) -> Image:
        look = self.look
        rng = self.rng
        if look.motion_blur_px > 1:
            kernel = np.zeros((look.motion_blur_px, look.motion_blur_px), dtype=np.float32)
            kernel[look.motion_blur_px // 2, :] = 1.0 / look.motion_blur_px
            frame = cv2.filter2D(frame, -1, kernel)
        if look.blur_sigma > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), look.blur_sigma)
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if look.night_mode:
            frame = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        else:
            grey3 = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
            frame = cv2.addWeighted(frame, look.saturation, grey3, 1 - look.saturation, 0)
        frame = cv2.LUT(frame, self._tone_lut)
        height, width = frame.shape[:2]
        oy, ox = int(rng.integers(0, 32)), int(rng.integers(0, 32))
        frame = cv2.add(frame, self._noise_up[oy : oy + height, ox : ox + width])
        frame = cv2.subtract(frame, self._noise_down[oy : oy + height, ox : ox + width])
        if look.osd:
            scale = max(0.4, width / 1100)
            cv2.putText(
                frame,
                self._osd_text,
                (int(0.02 * width), int(0.06 * height)),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (235, 235, 235),
                max(1, int(scale * 2)),
                cv2.LINE_AA,
            )
        if look.jpeg_quality < 95:
            ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
            decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
            if decoded is not None:
                frame = decoded
        return frame
