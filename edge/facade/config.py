"""Configuration of the facade camera (objects thrown from height): camera, building, calibration, rules.

The device-level part (device id, site, MQTT, outbox) is the edge core's (edge/config.py); ``FacadeConfig``
is what a ``facade`` device adds. Pixel coordinates (calibration, columns, masks) refer to the camera's
frame (``camera.width`` x ``camera.height``, origin top-left, y down); facade coordinates are metres on the
facade plane: x across, height above the base of the ground floor. Only pydantic is imported here, so
``citywatch edge check`` validates a facade config without loading numpy/OpenCV.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.evidence.config import EvidenceConfig  # pydantic only
from edge.vision.config import FileSourceConfig, StreamSourceConfig, UsbSourceConfig

Pixel = tuple[float, float]
Segment = tuple[Pixel, Pixel]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FacadeSimulatorSourceConfig(_Strict):
    """The facade simulator (simulators/facade), opened by name through the ``camera.facade_simulator``
    entry point: the edge imports nothing from the simulators. The simulator's own source model extends
    this one (its callers may also choose the thrown object kinds)."""

    kind: Literal["facade_simulator"] = "facade_simulator"
    seed: int = Field(default=1, title="Scenario seed", description="The building, camera and events.")
    duration_s: float = Field(
        default=600.0, gt=0, title="Scenario length, seconds", description="Then the source ends."
    )
    throws: int | None = Field(
        default=None,
        ge=0,
        title="Throws",
        description="How many objects are thrown; None: drawn from the seed.",
    )
    time_of_day: Literal["day", "dusk", "night"] | None = Field(
        default=None, title="Time of day", description="None: drawn from the seed."
    )
    weather: Literal["clear", "rain", "snow", "wind"] | None = Field(
        default=None, title="Weather", description="None: drawn from the seed."
    )
    floors: int | None = Field(
        default=None, ge=6, le=33, title="Floors", description="None: drawn from the seed."
    )
    distractor_rate: float = Field(
        default=1.0,
        ge=0,
        title="Distractor rate",
        description="0: none; 1: a busy facade (birds, leaves...).",
    )
    realtime: bool = Field(default=True, title="Real-time pacing", description="False fast-forwards.")


FacadeSourceConfig = Annotated[
    FileSourceConfig | StreamSourceConfig | UsbSourceConfig | FacadeSimulatorSourceConfig,
    Field(discriminator="kind"),
]


class FacadeCameraConfig(_Strict):
    source: FacadeSourceConfig = Field(title="Frame source")
    fps: float = Field(
        default=25.0, gt=0, le=120, title="Frame rate", description="Nominal frames per second."
    )
    width: int = Field(
        default=1920,
        ge=64,
        le=8192,
        title="Frame width",
        description="Pixels; calibration pixels refer to it.",
    )
    height: int = Field(
        default=1080,
        ge=64,
        le=8192,
        title="Frame height",
        description="Pixels; calibration pixels refer to it.",
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, title="First reconnect delay, seconds")
    reconnect_max_s: float = Field(default=30.0, gt=0, title="Longest reconnect delay, seconds")

    @model_validator(mode="after")
    def _backoff_order(self) -> FacadeCameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_initial_s ({self.reconnect_initial_s})"
            )
        return self


class BuildingConfig(_Strict):
    floors: int = Field(
        ge=1, le=200, title="Floors", description="Storeys above ground, ground floor included."
    )
    floor_height_m: float = Field(
        default=3.0, ge=2.0, le=10.0, title="Floor height, metres", description="Floor to floor."
    )
    ground_floor_number: int = Field(
        default=1,
        ge=-1,
        le=2,
        title="Ground floor number",
        description="How the building numbers its street-level floor (1 in most of Asia and North America, "
        "0 in much of Europe). Reported floors use the building's numbering.",
    )
    ground_floor_height_m: float | None = Field(
        default=None,
        ge=2.0,
        le=15.0,
        title="Ground floor height, metres",
        description="When the ground floor (shops, lobby) is taller than the others; default floor_height_m.",
    )

    @property
    def top_floor(self) -> int:
        return self.ground_floor_number + self.floors - 1

    @property
    def height_m(self) -> float:
        return self.base_height_m(self.top_floor + 1)

    def base_height_m(self, floor: int) -> float:
        """Height of a floor's base above the ground floor's base (the floor above the top: the roof)."""
        storeys = floor - self.ground_floor_number
        if storeys <= 0:
            return storeys * self.floor_height_m
        ground = self.ground_floor_height_m or self.floor_height_m
        return ground + (storeys - 1) * self.floor_height_m


class FloorLinesCalibration(_Strict):
    method: Literal["floor_lines"] = "floor_lines"
    first_floor: int | None = Field(
        default=None,
        title="First line's floor",
        description="Floor number whose base is the first line; default the ground floor.",
    )
    lines: list[float | Segment] = Field(
        min_length=2,
        title="Floor base lines",
        description="Each floor's base from the lowest listed floor up, one per floor without gaps: a pixel "
        "row y (camera upright) or a segment [[x1, y1], [x2, y2]] along the floor's base (tilted or rolled "
        "camera). One line above the top floor marks the roof.",
    )

    @model_validator(mode="after")
    def _ascending(self) -> FloorLinesCalibration:
        # Image y grows downwards, so each higher floor's line must be higher up (smaller y) everywhere.
        for i in range(1, len(self.lines)):
            below, above = self.lines[i - 1], self.lines[i]
            for end in (0, 1):
                y_below, y_above = _line_end_y(below, end), _line_end_y(above, end)
                if y_above >= y_below:
                    raise ValueError(
                        f"floors not ascending: line {i + 1} (y={y_above:g}) is not above line {i} "
                        f"(y={y_below:g}); list floor bases from the lowest floor up (image y decreases "
                        "upwards) and lines must not cross"
                    )
        return self


def _line_end_y(line: float | Segment, end: int) -> float:
    return float(line) if isinstance(line, (int, float)) else line[end][1]


class FacadePoint(_Strict):
    pixel: Pixel = Field(title="Pixel", description="[x, y] in the frame.")
    facade: tuple[float, float] = Field(
        title="Facade position, metres",
        description="[x across the facade, height above the ground floor's base] of the same point.",
    )


class FourPointsCalibration(_Strict):
    method: Literal["four_points"] = "four_points"
    points: list[FacadePoint] = Field(
        min_length=4,
        max_length=4,
        title="Four facade points",
        description="Four points on the facade plane (e.g. corners of the facade or of a window grid), "
        "spread wide, no three in a row, each with its pixel and its facade position.",
    )

    @model_validator(mode="after")
    def _general_position(self) -> FourPointsCalibration:
        pixels = [p.pixel for p in self.points]
        facade = [p.facade for p in self.points]
        for a, b, c in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)):
            names = f"points {a + 1}, {b + 1} and {c + 1}"
            area_px = _signed_area(pixels[a], pixels[b], pixels[c])
            area_m = _signed_area(facade[a], facade[b], facade[c])
            if abs(area_px) < 50.0:
                raise ValueError(
                    f"degenerate quadrilateral: {names} are (nearly) on one line in the image; "
                    "choose four points spread over the facade, no three in a row"
                )
            if abs(area_m) < 0.5:
                raise ValueError(
                    f"degenerate quadrilateral: {names} are (nearly) on one line on the facade; "
                    "choose four points spread over the facade, no three in a row"
                )
            # Facade height points up, image y down: a camera in front sees every triangle mirrored.
            if (area_px > 0) == (area_m > 0):
                raise ValueError(
                    f"{names} are in a different order (or mirrored) in the image than on the facade; "
                    "give each point's pixel and facade position for the same physical point"
                )
        return self


def _signed_area(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return ((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) / 2.0


Calibration = Annotated[FloorLinesCalibration | FourPointsCalibration, Field(discriminator="method")]


class ColumnsConfig(_Strict):
    x_px: list[float] | None = Field(
        default=None,
        title="Column edges, pixels",
        description="Image x of the edges between window columns, left to right (N+1 edges for N columns); "
        "floor_lines calibration with an upright camera.",
    )
    x_m: list[float] | None = Field(
        default=None,
        title="Column edges, metres",
        description="Facade x of the edges between window columns, left to right; four_points calibration.",
    )
    first_column: int = Field(
        default=1, ge=1, title="First column's number", description="Left-most column's number."
    )

    @model_validator(mode="after")
    def _one_ascending_list(self) -> ColumnsConfig:
        if (self.x_px is None) == (self.x_m is None):
            raise ValueError("give exactly one of x_px (pixels) or x_m (facade metres)")
        edges = self.x_px if self.x_px is not None else self.x_m
        assert edges is not None
        if len(edges) < 2:
            raise ValueError("give at least two edges (N+1 edges for N columns)")
        if any(b <= a for a, b in pairwise(edges)):
            raise ValueError(f"column edges must increase from left to right, got {edges}")
        return self


class ParallaxConfig(_Strict):
    """Where the camera stands, so heights are measured where objects fall: in front of the facade.

    A camera at the foot of the tower sees a point ``d`` metres in front of the facade along the ray to
    a facade point higher up (``h_facade - h_camera`` grows by ``D / (D - d)``): 1.5 m out with the camera
    11 m away reads 4 m (a floor) too high at 30 m. Objects are taken to fall ``object_distance_m`` in
    front of the facade; every tracked position is moved back along its ray to that plane. An object
    tossed outwards leaves that plane as it falls: knowing where the camera stands, the fall fit also
    tries an outward speed for a track it would otherwise refuse (edge/facade/ballistic.py)."""

    camera_distance_m: float = Field(
        gt=1, le=500, title="Camera distance, metres", description="From the facade plane to the lens."
    )
    camera_height_m: float = Field(
        ge=-20, le=500, title="Camera height, metres", description="Lens above the ground floor's base."
    )
    camera_x_m: float | None = Field(
        default=None,
        title="Camera x, metres",
        description="Facade x in front of which the camera stands (corrects x too; four_points only).",
    )
    object_distance_m: float = Field(
        default=0.5,
        ge=0,
        title="Objects fall this far out, metres",
        description="Typical distance from the facade of a dropped or thrown object (an arm's length).",
    )

    @model_validator(mode="after")
    def _in_front(self) -> ParallaxConfig:
        if self.object_distance_m >= self.camera_distance_m:
            raise ValueError(
                f"object_distance_m ({self.object_distance_m}) must be less than camera_distance_m "
                f"({self.camera_distance_m}): objects fall between the facade and the camera"
            )
        return self


class MaskConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", title="Mask name")
    polygon: list[Pixel] = Field(
        min_length=3, title="Polygon", description="Corners as [x, y] pixels; motion inside is ignored."
    )


class DetectionConfig(_Strict):
    processing_width: int | None = Field(
        default=None,
        ge=160,
        le=8192,
        title="Processing width, pixels",
        description="Detect on frames scaled to this width (None: full resolution, smallest objects).",
    )
    background: Literal["gaussian", "mog2"] = Field(
        default="gaussian",
        title="Background model",
        description="gaussian: one running mean and variance per pixel (about 11 ms per 1080p frame on one "
        "core); mog2: OpenCV's mixture of Gaussians, copes with swaying or blinking backgrounds (~30 ms).",
    )
    var_threshold: float = Field(
        default=25.0,
        gt=0,
        le=400,
        title="Background threshold",
        description="A pixel is foreground when its squared difference exceeds this many variances.",
    )
    history_frames: int = Field(default=250, ge=10, title="Background history, frames")
    min_blob_area_px: int = Field(default=2, ge=1, title="Smallest blob, pixels (processing resolution)")
    max_blob_area_px: int = Field(default=4000, ge=1, title="Largest blob, pixels (processing resolution)")
    max_foreground_fraction: float = Field(
        default=0.03,
        gt=0,
        lt=1,
        title="Global change fraction",
        description="A frame with more changed pixels than this (lights, exposure, shake) yields no blobs.",
    )
    stabilize: bool = Field(
        default=True, title="Shake compensation", description="Align frames by phase correlation first."
    )
    stabilize_width: int = Field(default=320, ge=64, le=1920, title="Shake estimate width, pixels")
    shake_px: float = Field(
        default=8.0,
        gt=0,
        title="Shake, pixels",
        description="A frame-to-frame camera jump above this (frame pixels) marks the frame shaky: smaller "
        "ones are compensated; a track seen mostly in shaky frames is not reported (rules.max_shaky_fraction).",
    )

    @model_validator(mode="after")
    def _blob_bounds(self) -> DetectionConfig:
        if self.max_blob_area_px < self.min_blob_area_px:
            raise ValueError("max_blob_area_px must be >= min_blob_area_px")
        return self


class TrackingConfig(_Strict):
    gate_px: float = Field(
        default=30.0, gt=0, title="Match distance, pixels", description="Around the gravity-aware prediction."
    )
    max_gap_s: float = Field(
        default=0.4, gt=0, le=5, title="Track gap, seconds", description="Missed frames a track survives."
    )
    max_tracks: int = Field(default=64, ge=1, title="Simultaneous tracks")


class FallRulesConfig(_Strict):
    min_track_frames: int = Field(default=8, ge=4, title="Minimum track frames")
    min_duration_s: float = Field(default=0.3, gt=0, title="Minimum track duration, seconds")
    min_drop_m: float = Field(
        default=3.0, gt=0, title="Minimum drop, metres", description="Net descent seen."
    )
    min_accel_fraction: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        title="Minimum fall acceleration, fraction of g",
        description="Downward acceleration where the track starts; drag lowers it, gliding and floating "
        "things have none.",
    )
    max_accel_fraction: float = Field(
        default=1.1,
        gt=1,
        le=3,
        title="Largest acceleration, fraction of g",
        description="Nothing falls faster.",
    )
    min_terminal_velocity_mps: float = Field(
        default=5.0,
        gt=0,
        title="Slowest terminal velocity, m/s",
        description="Leaves, paper, bags and snow settle slower than this.",
    )
    max_residual_m: float = Field(
        default=0.5, gt=0, title="Largest fit residual, metres", description="RMS of height about the fit."
    )
    max_lateral_jitter_m: float = Field(
        default=0.5,
        gt=0,
        title="Largest lateral jitter, metres",
        description="RMS of x about a smooth drift.",
    )
    max_lateral_speed_mps: float = Field(default=8.0, gt=0, title="Largest lateral speed, m/s")
    max_parallel_tracks: int = Field(
        default=5,
        ge=1,
        title="Rain/snow: parallel tracks",
        description="More downward tracks than this at once are precipitation, not a throw.",
    )
    max_shaky_fraction: float = Field(
        default=0.3,
        gt=0,
        le=1,
        title="Shaky frames",
        description="Share of a track's frames with camera shake.",
    )
    height_sigma_m: float = Field(
        default=0.5,
        gt=0,
        title="Height uncertainty, metres",
        description="Calibration and depth error added to the fit's own when estimating the floor.",
    )


class FacadeConfig(_Strict):
    """What a ``facade`` device adds to the common device config."""

    camera: FacadeCameraConfig = Field(title="Camera")
    building: BuildingConfig = Field(title="Building")
    calibration: Calibration = Field(title="Facade calibration")
    columns: ColumnsConfig | None = Field(default=None, title="Window columns")
    parallax: ParallaxConfig | None = Field(
        default=None,
        title="Camera position (parallax)",
        description="Measure it on site when the camera stands close to the tower; None: objects are "
        "taken to fall on the facade plane.",
    )
    masks: list[MaskConfig] = Field(
        default_factory=list, title="Masks", description="Ignored regions: trees, road, flags, a lit sign."
    )
    detection: DetectionConfig = Field(default_factory=DetectionConfig, title="Motion detection")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, title="Tracking")
    rules: FallRulesConfig = Field(default_factory=FallRulesConfig, title="Fall rules")
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig,
        title="Evidence",
        description="The clip (pre_s before the object is first seen to post_s after the impact) and the "
        "still with the path drawn, sent after each event; privacy zones are frame pixels.",
    )

    @model_validator(mode="after")
    def _inside_the_frame(self) -> FacadeConfig:
        """Every pixel must lie in the frame, floors on the building, columns fit the calibration."""
        problems = []
        width, height = self.camera.width, self.camera.height
        size = f"the {width}x{height} frame"

        def outside(point: Pixel) -> bool:
            return not (0 <= point[0] <= width and 0 <= point[1] <= height)

        calibration = self.calibration
        if isinstance(calibration, FloorLinesCalibration):
            for i, line in enumerate(calibration.lines, start=1):
                ends = [(0.0, float(line))] if isinstance(line, (int, float)) else list(line)
                for point in ends:
                    if outside(point):
                        problems.append(f"calibration.lines[{i}]: point {_fmt(point)} is outside {size}")
            first = calibration.first_floor
            first = self.building.ground_floor_number if first is None else first
            last = first + len(calibration.lines) - 1
            if first < self.building.ground_floor_number or last > self.building.top_floor + 1:
                problems.append(
                    f"calibration.lines: {len(calibration.lines)} lines from floor {first} reach floor {last}, "
                    f"beyond the building (floors {self.building.ground_floor_number}.."
                    f"{self.building.top_floor}, plus one roof line)"
                )
        else:
            for i, facade_point in enumerate(calibration.points, start=1):
                if outside(facade_point.pixel):
                    problems.append(
                        f"calibration.points[{i}]: pixel {_fmt(facade_point.pixel)} is outside {size}"
                    )
        if self.columns is not None:
            if self.columns.x_px is not None:
                if not isinstance(calibration, FloorLinesCalibration):
                    problems.append(
                        "columns: x_px needs the floor_lines calibration; give x_m (facade metres)"
                    )
                elif any(not 0 <= x <= width for x in self.columns.x_px):
                    problems.append(f"columns.x_px: edges must lie in 0..{width}")
            elif isinstance(calibration, FloorLinesCalibration):
                problems.append("columns: x_m needs the four_points calibration; give x_px (pixels)")
        for zone in self.evidence.privacy.zones:
            for point in zone.polygon:
                if outside(point):
                    problems.append(
                        f"evidence.privacy.zones.{zone.name}: corner {_fmt(point)} is outside {size}"
                    )
                    break
        if self.evidence.clip_fps > self.camera.fps:
            problems.append(
                f"evidence.clip_fps ({self.evidence.clip_fps:g}) is above the camera's fps "
                f"({self.camera.fps:g}): a clip cannot have more frames than the camera gives"
            )
        for mask in self.masks:
            for point in mask.polygon:
                if outside(point):
                    problems.append(f"masks.{mask.name}: corner {_fmt(point)} is outside {size}")
                    break
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def first_line_floor(self) -> int:
        calibration = self.calibration
        if isinstance(calibration, FloorLinesCalibration) and calibration.first_floor is not None:
            return calibration.first_floor
        return self.building.ground_floor_number


def _fmt(point: Pixel) -> str:
    return f"[{point[0]:g}, {point[1]:g}]"
