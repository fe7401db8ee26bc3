"""Configuration of the elevator camera agent's vision part (Frigate-like: strict, titled, explained).

The device-level part (device id, site, MQTT, outbox) is the edge core's; ``ElevatorConfig`` here is
what an ``elevator`` device adds. Every time constant of the analyzer is a field with its unit in the
name. Only pydantic is imported here, so ``citywatch edge check`` validates a camera config without
loading numpy/OpenCV/onnxruntime.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.vision.types import DEFAULT_SCORE_THRESHOLD


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSourceConfig(_Strict):
    kind: Literal["file"] = "file"
    path: Path = Field(title="Video file", description="Any file OpenCV (FFmpeg) can read: mp4, avi, mkv.")
    loop: bool = Field(default=False, title="Loop", description="Start over at the end (demos, soak tests).")
    realtime: bool = Field(
        default=True,
        title="Real-time pacing",
        description="Deliver frames at the file's frame rate; false reads as fast as the pipeline takes them.",
    )


class StreamSourceConfig(_Strict):
    kind: Literal["stream"] = "stream"
    url: str = Field(
        title="Stream URL",
        description="rtsp://, http(s):// (MJPEG or HLS) as OpenCV's FFmpeg backend reads them.",
        examples=["rtsp://user:pass@10.0.0.20:554/stream1"],
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")):
            raise ValueError(f"stream URL {value!r} must start with rtsp://, http(s)://, udp:// or tcp://")
        return value


class UsbSourceConfig(_Strict):
    kind: Literal["usb"] = "usb"
    index: int = Field(default=0, ge=0, title="Camera index", description="/dev/videoN's N.")
    width: int | None = Field(default=None, gt=0, title="Requested width")
    height: int | None = Field(default=None, gt=0, title="Requested height")


class SimulatorSourceConfig(_Strict):
    kind: Literal["simulator"] = "simulator"
    seed: int = Field(default=1, title="First ride seed", description="Rides use seed, seed+1, ...")
    ride_kind: str | None = Field(
        default=None,
        title="Ride kind",
        description="ebike, bicycle, stroller, wheelchair, people_only, bags, ...; None draws one per seed.",
    )
    rides: int | None = Field(
        default=None, ge=1, title="Rides", description="Stop after this many; None: forever."
    )
    realtime: bool = Field(default=True, title="Real-time pacing", description="False fast-forwards.")
    idle_between_rides_s: float = Field(default=5.0, ge=0, title="Empty car between rides, seconds")


SourceConfig = Annotated[
    FileSourceConfig | StreamSourceConfig | UsbSourceConfig | SimulatorSourceConfig,
    Field(discriminator="kind"),
]


class CameraConfig(_Strict):
    source: SourceConfig = Field(title="Frame source")
    fps: float = Field(
        default=15.0, gt=0, le=60, title="Frame rate", description="Nominal rate (simulator) and pacing."
    )
    width: int = Field(default=1280, gt=0, title="Frame width", description="Simulator render width.")
    height: int = Field(default=720, gt=0, title="Frame height", description="Simulator render height.")
    reconnect_initial_s: float = Field(default=0.5, gt=0, title="First reconnect delay, seconds")
    reconnect_max_s: float = Field(default=30.0, gt=0, title="Longest reconnect delay, seconds")

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_initial_s "
                f"({self.reconnect_initial_s}): the backoff grows from the first to the longest delay"
            )
        return self


class MotionConfig(_Strict):
    enabled: bool = Field(
        default=True, title="Motion gating", description="False runs the detector on every frame."
    )
    width: int = Field(default=160, ge=32, le=640, title="Analysis width, pixels")
    threshold: int = Field(default=25, ge=1, le=255, title="Pixel change threshold (0-255 grey levels)")
    min_changed_fraction: float = Field(
        default=0.004,
        gt=0,
        lt=1,
        title="Motion area",
        description="Fraction of changed pixels that counts as motion.",
    )
    full_check_interval_s: float = Field(
        default=2.0,
        gt=0,
        title="Full check interval, seconds",
        description="Run the detector at least this often.",
    )
    busy_interval_s: float = Field(
        default=0.0,
        ge=0,
        title="Busy interval, seconds",
        description="While objects are tracked or the analyzer is deciding, run at least this often (0: every frame).",
    )
    roi: bool = Field(
        default=True, title="Region of interest", description="Detect on the moving region only."
    )


class DetectorConfig(_Strict):
    model: Path = Field(title="ONNX model file", examples=["models/ebike-detector.onnx"])
    layout: Literal["auto", "citywatch", "yolo"] = Field(
        default="auto",
        title="Output layout",
        description="citywatch: boxes [1,N,4] + scores [1,N,C]; yolo: one [1,4+C,N] output (YOLOv8/11/9 "
        "exports); auto reads the model's metadata and output shapes.",
    )
    threads: int = Field(default=1, ge=1, le=16, title="onnxruntime intra-op threads")
    score_threshold: float = Field(default=DEFAULT_SCORE_THRESHOLD, gt=0, lt=1, title="Minimum score")
    iou_threshold: float = Field(default=0.45, gt=0, lt=1, title="NMS IoU threshold")
    input_size: int | None = Field(
        default=None,
        ge=32,
        le=2048,
        title="Input size",
        description="Only for models with dynamic input shapes.",
    )
    labels: list[str] | None = Field(
        default=None,
        title="Labels",
        description="Class names in output order; default: the model's metadata (labels or names).",
    )
    class_thresholds: dict[str, float] = Field(
        default_factory=dict,
        title="Per-class minimum scores",
        description="Minimum score per label as the detector reports it, i.e. after label_map, e.g. "
        "{ebike: 0.4}; with label_map {motorcycle: ebike, bicycle: ebike} it applies to both. A label "
        "that label_map renames (motorcycle there) is refused: give the threshold to its new name. "
        "Labels not listed use score_threshold.",
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        title="Label map",
        description="Rename the model's labels to ours, e.g. {motorcycle: ebike} for a generic YOLO export.",
    )
    keep_labels: list[str] = Field(
        default_factory=list,
        title="Kept labels",
        description="Only these labels (after label_map) are reported; empty keeps every class.",
    )

    @model_validator(mode="after")
    def _thresholds_after_label_map(self) -> DetectorConfig:
        if problem := renamed_threshold_problem(self.label_map, self.class_thresholds):
            raise ValueError(problem)
        return self


def renamed_threshold_problem(
    label_map: Mapping[str, str], class_thresholds: Mapping[str, float]
) -> str | None:
    """Why ``class_thresholds`` names a label that ``label_map`` renames away, or None.

    Thresholds apply to the reported labels; a renamed source label is never reported (unless another
    label is mapped to its name), so its threshold would silently do nothing.
    """
    targets = set(label_map.values())
    renamed = sorted(
        label
        for label in class_thresholds
        if label in label_map and label_map[label] != label and label not in targets
    )
    if not renamed:
        return None
    moves = ", ".join(f"{label} -> {label_map[label]}" for label in renamed)
    return (
        f"class_thresholds names {renamed}, which label_map renames ({moves}): thresholds apply to the "
        f"labels after label_map, so give it to {sorted({label_map[label] for label in renamed})}"
    )


class TrackerConfig(_Strict):
    iou_threshold: float = Field(default=0.3, gt=0, lt=1, title="Match IoU")
    max_age_s: float = Field(default=1.5, gt=0, title="Track memory, seconds")


class ZoneConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", title="Zone name")
    polygon: list[tuple[float, float]] = Field(
        min_length=3,
        title="Polygon",
        description="Corners as [x, y] fractions of the frame (0..1), tested at a box's bottom centre.",
    )

    @field_validator("polygon")
    @classmethod
    def _relative(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for x, y in value:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"corner [{x}, {y}] is outside 0..1: give corners as fractions of the frame")
        return value


class EbikeAnalyzerConfig(_Strict):
    trigger_labels: list[str] = Field(
        default_factory=lambda: ["ebike"],
        min_length=1,
        title="Trigger labels",
        description="Only these classes trigger; bicycles, strollers and wheelchairs never do.",
    )
    lookalike_labels: list[str] = Field(
        default_factory=lambda: ["bicycle", "stroller", "wheelchair"],
        title="Look-alike labels",
        description="An e-bike box overlapping a more confident box of one of these (see lookalike_iou) is not counted.",
    )
    lookalike_iou: float = Field(
        default=0.5,
        gt=0,
        le=1,
        title="Look-alike overlap",
        description="IoU at which an e-bike box and a look-alike box are taken for the same object.",
    )
    provisional_score: float = Field(
        default=0.55,
        gt=0,
        lt=1,
        title="Provisional score",
        # Our model's scores estimate box quality (IoU), so a clear e-bike scores about 0.5-0.75.
        description="A sighting this confident holds the door (the scale is the model's).",
    )
    window_s: float = Field(
        default=1.5,
        gt=0,
        title="Confirmation window, seconds",
        description="Recent history the vote looks at.",
    )
    confirm_min_s: float = Field(
        default=1.5,
        ge=0,
        title="Earliest confirmation, seconds",
        description="Time after the first sighting before a confirmation may happen.",
    )
    confirm_fraction: float = Field(
        default=0.6,
        gt=0,
        le=1,
        title="Confirmation fraction",
        description="Share of analysed frames in the window that must hold an e-bike.",
    )
    confirm_min_frames: int = Field(default=3, ge=1, title="Minimum e-bike frames in the window")
    confirm_timeout_s: float = Field(
        default=3.0,
        gt=0,
        title="Confirmation timeout, seconds",
        description="Not confirmed this long after the first sighting: release the door, cool down.",
    )
    cooldown_s: float = Field(
        default=5.0, ge=0, title="Cool-down, seconds", description="Quiet time after an unconfirmed sighting."
    )
    gone_after_s: float = Field(
        default=4.0,
        gt=0,
        title="Gone after, seconds",
        description="No e-bike this long after confirmation: release the door and end the event.",
    )
    update_interval_s: float = Field(
        default=10.0,
        gt=0,
        title="Event update interval, seconds",
        description="Rate limit of 'update' messages.",
    )
    voice_repeat_s: float = Field(
        default=10.0,
        gt=0,
        title="Voice repeat, seconds",
        description="Repeat the warning while the e-bike stays.",
    )
    hold_door: bool = Field(default=True, title="Hold the door", description="False: warn and report only.")

    @model_validator(mode="after")
    def _timing(self) -> EbikeAnalyzerConfig:
        if both := sorted(set(self.trigger_labels) & set(self.lookalike_labels)):
            raise ValueError(f"{both} cannot both trigger and be look-alikes that veto a trigger")
        if self.confirm_timeout_s < self.confirm_min_s:
            raise ValueError(
                f"confirm_timeout_s ({self.confirm_timeout_s}) must be >= confirm_min_s ({self.confirm_min_s}): "
                "otherwise a sighting times out before it may be confirmed"
            )
        return self


class SnapshotConfig(_Strict):
    max_width: int = Field(default=640, ge=64, le=4096, title="Largest width, pixels")
    jpeg_quality: int = Field(default=80, ge=20, le=100, title="First JPEG quality")
    max_bytes: int = Field(
        default=120_000,
        ge=4_000,
        le=140_000,
        title="Largest JPEG, bytes",
        description="Downscaled and re-encoded until it fits (base64 grows it by 4/3; the contract allows 200,000 chars).",
    )
    privacy: Literal["none", "blur_people", "pixelate_people"] = Field(
        default="blur_people",
        title="Privacy filter",
        description="Blur or pixelate people's boxes before the image leaves the device.",
    )


class ActuatorConfig(_Strict):
    kind: Literal["logging", "gpio"] = Field(
        default="logging", title="Actuators", description="gpio on a Raspberry Pi (needs the 'gpio' extra)."
    )
    door_hold_pin: int | None = Field(default=None, ge=0, le=40, title="Door-hold relay GPIO (BCM)")
    voice_pin: int | None = Field(
        default=None,
        ge=0,
        le=40,
        title="Voice module trigger GPIO (BCM)",
        description="Pulsed to play the warning.",
    )
    voice_pulse_s: float = Field(default=0.3, gt=0, title="Voice trigger pulse, seconds")
    door_open_pin: int | None = Field(
        default=None,
        ge=0,
        le=40,
        title="Door-open input GPIO (BCM)",
        description="Optional door state input: a contact closing to ground while the door is open (pulled up).",
    )

    @model_validator(mode="after")
    def _pins_for_gpio(self) -> ActuatorConfig:
        if self.kind == "gpio" and self.door_hold_pin is None and self.voice_pin is None:
            raise ValueError("actuators kind 'gpio' needs door_hold_pin and/or voice_pin")
        return self


class ElevatorConfig(_Strict):
    """What an ``elevator`` device adds to the common device config."""

    camera: CameraConfig = Field(title="Camera")
    detector: DetectorConfig = Field(title="Detector")
    motion: MotionConfig = Field(default_factory=MotionConfig, title="Motion gate")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, title="Tracker")
    zones: list[ZoneConfig] = Field(
        default_factory=list,
        title="Zones",
        description="Only objects standing in a zone count; none: everywhere.",
    )
    masks: list[ZoneConfig] = Field(
        default_factory=list,
        title="Masks",
        description="Objects standing here are ignored (mirrors, screens).",
    )
    ebike: EbikeAnalyzerConfig = Field(default_factory=EbikeAnalyzerConfig, title="E-bike analyzer")
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig, title="Snapshots")
    actuators: ActuatorConfig = Field(default_factory=ActuatorConfig, title="Actuators")
