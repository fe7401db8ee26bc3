"""Configuration of the street camera (illegal parking with soft enforcement): camera, detector, zones.

The device-level part (device id, site, MQTT, outbox) is the edge core's (edge/config.py); ``StreetConfig``
is what a ``street`` device adds. Zone corners are pixels of the camera's frame (``camera.width`` x
``camera.height``, origin top-left, y down). Zone hours are the device's local time (``timezone``). Only
pydantic (and the plain-Python geometry beside it) is imported here, so ``citywatch edge check``
validates a street config without loading numpy/OpenCV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.street.geometry import area, self_intersection
from edge.street.hours import parse_range, ranges_overlap
from edge.vision.config import DetectorConfig, FileSourceConfig, StreamSourceConfig, UsbSourceConfig

Pixel = tuple[float, float]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# The COCO detector's vehicle classes, renamed to ours; person stays for the privacy blur.
VEHICLE_LABELS = ("car", "truck", "bus", "motorbike", "ebike")
COCO_LABEL_MAP = {"car": "car", "bus": "bus", "truck": "truck", "motorcycle": "motorbike", "bicycle": "ebike"}


def _every_day() -> list[Day]:
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreetSimulatorSourceConfig(_Strict):
    """The street simulator (simulators/street), opened by name through the ``camera.street_simulator``
    entry point: the edge imports nothing from the simulators. The simulator's own source model extends
    this one (it also checks ``scenario`` against its presets)."""

    kind: Literal["street_simulator"] = "street_simulator"
    seed: int = Field(default=1, title="Scenario seed", description="The street, the camera and every trip.")
    scenario: str = Field(
        default="busy_mixed",
        pattern=r"^[a-z][a-z_]{0,31}$",
        title="Scenario",
        description="A preset of simulators/street (overstay, leaves_in_grace, drop_off, queue, jam, "
        "double_park, bus_stop, occluded, swap, busy_mixed; random: a held-out style mix from the seed).",
    )
    duration_s: float | None = Field(
        default=None,
        gt=0,
        title="Scenario length, seconds",
        description="None: the preset's own length. Then the source ends.",
    )
    time_of_day: Literal["day", "dusk", "night"] | None = Field(
        default=None, title="Time of day", description="The light; None: drawn from the seed."
    )
    weather: Literal["clear", "rain"] | None = Field(
        default=None, title="Weather", description="None: drawn from the seed."
    )
    start: AwareDatetime | None = Field(
        default=None,
        title="Scenario start, wall clock",
        description="The date and time the scenario's first frame shows, with its UTC offset (e.g. "
        "'2025-03-03T07:30:00+08:00'): frames carry it (plus scenario time) as their wall-clock time, so "
        "zone hours and event times follow the simulated day even when fast-forwarded. None: frames are "
        "stamped by the agent's clock (start of the run plus scenario time).",
    )
    speed: float = Field(
        default=1.0,
        gt=0,
        le=100,
        title="Time-lapse factor",
        description="Scenario seconds between frames = speed / fps (1: every frame interval is real time).",
    )
    dwell_s: float = Field(
        default=120.0, gt=0, title="Dwell, seconds", description="The rules the stories are planned around."
    )
    grace_s: float = Field(
        default=600.0, gt=0, title="Grace, seconds", description="The rules the stories are planned around."
    )
    realtime: bool = Field(default=True, title="Real-time pacing", description="False fast-forwards.")


StreetSourceConfig = Annotated[
    FileSourceConfig | StreamSourceConfig | UsbSourceConfig | StreetSimulatorSourceConfig,
    Field(discriminator="kind"),
]


class CloseUpConfig(_Strict):
    enabled: bool = Field(
        default=False,
        title="Zoom onto stopped vehicles",
        description="Read plates from a pan-tilt-zoom close-up of the vehicle instead of the fixed view "
        "(the source kind must be able to zoom: the street simulator can).",
    )
    fill: float = Field(
        default=0.85,
        gt=0.2,
        le=1.0,
        title="Share of the picture the vehicle fills",
        description="The zoom is chosen so the vehicle's box spans this share of the close-up's width or height.",
    )
    max_zoom: float = Field(
        default=30.0,
        ge=1.0,
        le=60.0,
        title="Longest zoom",
        description="The PTZ lens's optical zoom relative to the fixed camera's field of view.",
    )
    frames: int = Field(
        default=3,
        ge=1,
        le=10,
        title="Frames read per close-up",
        description="A plate is taken only when at least two of them read the same (one, when 1): a "
        "misread plate sends the notice to the wrong owner.",
    )
    retry_s: float = Field(
        default=60.0,
        gt=0,
        title="Close-up retry interval, seconds",
        description="While a case's plate is unread (hidden by another vehicle, say), zoom onto it again "
        "this often; a PTZ move takes seconds and the camera serves every case.",
    )


class StreetCameraConfig(_Strict):
    source: StreetSourceConfig = Field(title="Frame source")
    closeup: CloseUpConfig = Field(
        default_factory=CloseUpConfig,
        title="PTZ close-ups",
        description="A PTZ camera beside the fixed one, zoomed onto a stopped vehicle to read its plate.",
    )
    fps: float = Field(
        default=10.0,
        gt=0,
        le=60,
        title="Frame rate",
        description="Nominal frames per second (files are paced at their own rate).",
    )
    width: int = Field(
        default=1920, ge=64, le=8192, title="Frame width", description="Pixels; zone corners refer to it."
    )
    height: int = Field(
        default=1080, ge=64, le=8192, title="Frame height", description="Pixels; zone corners refer to it."
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, title="First reconnect delay, seconds")
    reconnect_max_s: float = Field(default=30.0, gt=0, title="Longest reconnect delay, seconds")

    @model_validator(mode="after")
    def _backoff_order(self) -> StreetCameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_initial_s ({self.reconnect_initial_s})"
            )
        return self


STREET_MODEL = Path("models/street-detector.onnx")
COCO_MODEL = Path("models/coco-centernet.onnx")


def street_detector(model: Path = STREET_MODEL) -> DetectorConfig:
    """The shipped street detector (the COCO detector fine-tuned on street scenes, COCO's labels) with its
    classes renamed to the street's vehicle classes; ``model`` may be any file with those labels."""
    return DetectorConfig(
        model=model,
        label_map=dict(COCO_LABEL_MAP),
        keep_labels=[*VEHICLE_LABELS, "person"],
    )


class StoppedRuleConfig(_Strict):
    max_move_fraction: float = Field(
        default=0.15,
        gt=0,
        le=1,
        title="Largest movement, fraction of the vehicle's length",
        description="A vehicle is at rest while its box stays within this fraction of its length (its box's "
        "longer side) of where it came to rest; moving further restarts the dwell clock. Measured on the "
        "box edge that moved least, so a pedestrian hiding one end does not count as movement.",
    )
    window_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        title="Rest window, seconds",
        description="At rest this long before it counts as stopped (the dwell clock still starts when it "
        "came to rest).",
    )


class ParkingZoneConfig(_Strict):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        title="Zone name",
        description="Lower case, digits, '_'; named in the event (details.zone).",
    )
    polygon: list[Pixel] = Field(
        title="Polygon",
        description="Corners as [x, y] pixels in order around the zone; tested at a vehicle box's bottom "
        "centre (where it stands). Draw it on the kerb or lane where stopping is banned, not on through "
        "lanes where traffic queues.",
    )
    hours: list[str] = Field(
        default_factory=lambda: ["00:00-24:00"],
        min_length=1,
        title="Hours",
        description="When the ban holds, device local time, e.g. ['07:00-09:00', '16:30-18:30']; end "
        "exclusive; '22:00-06:00' runs past midnight.",
    )
    days: list[Day] = Field(
        default_factory=_every_day,
        min_length=1,
        title="Days",
        description="Days of the week the hours apply to (mon..sun); a range past midnight belongs to the "
        "day it starts on.",
    )
    dwell_s: float = Field(
        default=120.0,
        gt=0,
        title="Dwell, seconds",
        description="Stopped this long inside the zone (within its hours): warning, first photo.",
    )
    grace_s: float = Field(
        default=600.0,
        title="Grace, seconds",
        description="Still there this long after the warning: violation, second photo (0: at once).",
    )
    exempt_classes: list[str] = Field(
        default_factory=list,
        title="Exempt vehicle classes",
        description="Classes that may stop here, e.g. [bus] at a bus stop.",
    )
    stopped: StoppedRuleConfig = Field(default_factory=StoppedRuleConfig, title="What counts as stopped")

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, value: list[Pixel]) -> list[Pixel]:
        if len(value) < 3:
            raise ValueError(f"a zone needs at least 3 corners, got {len(value)}")
        if len(set(value)) != len(value):
            raise ValueError("a corner is listed twice: give each corner once, in order around the zone")
        if (edges := self_intersection(value)) is not None:
            i, j = edges
            n = len(value)
            raise ValueError(
                f"the polygon crosses itself: edge {i + 1} ({_fmt(value[i])}->{_fmt(value[(i + 1) % n])}) "
                f"and edge {j + 1} ({_fmt(value[j])}->{_fmt(value[(j + 1) % n])}) intersect; list the "
                "corners in order around the zone"
            )
        if area(value) < 1.0:
            raise ValueError("the polygon has no area (its corners are on one line)")
        return value

    @field_validator("hours")
    @classmethod
    def _hour_ranges(cls, value: list[str]) -> list[str]:
        ranges = [parse_range(text) for text in value]
        for i, a in enumerate(ranges):
            for j in range(i + 1, len(ranges)):
                if ranges_overlap(a, ranges[j]):
                    raise ValueError(f"hour ranges {value[i]!r} and {value[j]!r} overlap: merge them")
        return value

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, value: list[Day]) -> list[Day]:
        if len(set(value)) != len(value):
            raise ValueError(f"a day is listed twice in {value}")
        return value

    @field_validator("grace_s")
    @classmethod
    def _grace_not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(
                f"grace_s ({value:g}) must be >= 0: the seconds a warned vehicle has to leave before the "
                "violation is recorded (0 records it with the warning)"
            )
        return value


class QueueConfig(_Strict):
    """Traffic is not parking: what keeps queues at a light and jams from being warned."""

    sync_s: float = Field(
        default=15.0,
        ge=0,
        title="Stopped together, seconds",
        description="Vehicles that came to rest within this many seconds of each other, close together, "
        "stopped with the traffic.",
    )
    gap_lengths: float = Field(
        default=1.5,
        gt=0,
        title="Queue gap, vehicle lengths",
        description="Largest distance between neighbours of a queue (ground points, in vehicle lengths).",
    )
    hold_max_s: float = Field(
        default=300.0,
        ge=0,
        title="Longest queue hold, seconds",
        description="A vehicle still stopped with its queue this long past its dwell is warned all the "
        "same (0: queues are not held, only the dwell and the zones keep traffic out).",
    )


class TrackingConfig(_Strict):
    max_gap_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        title="Track gap, seconds",
        description="A moving vehicle not seen this long is gone.",
    )
    iou_gate: float = Field(
        default=0.2, gt=0, lt=1, title="Match overlap", description="Least IoU with the predicted box."
    )
    reid_min_similarity: float = Field(
        default=0.6,
        gt=0,
        le=1,
        title="Re-identification similarity",
        description="Colour similarity (0..1, Bhattacharyya coefficient of colour histograms) a vehicle "
        "reappearing after an occlusion needs to be taken for the one that stood there.",
    )
    min_similarity: float = Field(
        default=0.3,
        ge=0,
        le=1,
        title="Frame-to-frame similarity",
        description="Least colour similarity for a match between consecutive sightings (vetoes a passing "
        "vehicle of another colour taking over a parked one's track).",
    )


class PlateConfig(_Strict):
    reader: str = Field(
        default="citywatch",
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        title="Plate reader",
        description="citywatch: the project's ONNX reader (models/plates/); none: plates are not read "
        "(edge/street/plates.py lists the readers; `citywatch edge check` loads it).",
    )
    min_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        title="Least plate confidence",
        description="Readings below it are not put in the event.",
    )
    retry_s: float = Field(
        default=10.0,
        gt=0,
        title="Retry interval, seconds",
        description="While a case is open and its plate not read with confidence, try again this often.",
    )


class EvidenceConfig(_Strict):
    max_width: int = Field(default=1280, ge=160, le=4096, title="Photo width, pixels")
    jpeg_quality: int = Field(default=85, ge=30, le=100, title="JPEG quality")
    blur_other_plates: bool = Field(
        default=True,
        title="Blur other plates",
        description="Other vehicles' plates are blurred (where no plate is found, the lower part of their "
        "box): plates are personal data.",
    )
    blur_faces: bool = Field(default=True, title="Blur faces", description="Faces and people are blurred.")
    plate_crop: bool = Field(
        default=True, title="Plate crop", description="Send a crop of the read plate with the photos."
    )


class StreetConfig(_Strict):
    """What a ``street`` device adds to the common device config."""

    camera: StreetCameraConfig = Field(title="Camera")
    timezone: str = Field(
        default="Asia/Shanghai",
        title="Time zone",
        description="IANA name of the device's local time, which zone hours are read in.",
    )
    detector: DetectorConfig = Field(
        default_factory=street_detector,
        title="Detector",
        description="Default: the street detector (models/street-detector.onnx: the COCO detector "
        "fine-tuned on street scenes, input 512) with car, bus, truck, motorcycle, bicycle renamed to car, "
        "bus, truck, motorbike, ebike. models/coco-centernet.onnx (the original, real photographs) takes the "
        "same label_map; a YOLO export works as a drop-in with a label_map onto the same classes.",
    )
    vehicle_classes: list[str] = Field(
        default_factory=lambda: list(VEHICLE_LABELS),
        min_length=1,
        title="Vehicle classes",
        description="Detector labels (after label_map) that are vehicles.",
    )
    privacy_classes: list[str] = Field(
        default_factory=lambda: ["person"],
        title="People classes",
        description="Detector labels blurred in the evidence photos.",
    )
    zones: list[ParkingZoneConfig] = Field(
        min_length=1,
        title="No-parking zones",
        description="Each with its own hours, days, dwell, grace and exemptions. Where zones overlap, the "
        "first listed that is in force and does not exempt the vehicle judges it: list stricter ones first.",
    )
    occlusion_tolerance_s: float = Field(
        default=30.0,
        ge=0,
        le=600,
        title="Occlusion tolerance, seconds",
        description="A stopped vehicle hidden (passing bus, pedestrians) up to this long keeps its case and "
        "clocks when it is seen again at the same place with the same colours.",
    )
    queue: QueueConfig = Field(default_factory=QueueConfig, title="Queues")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, title="Tracking")
    plate: PlateConfig = Field(default_factory=PlateConfig, title="Plate reading")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, title="Evidence photos")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: give an IANA name such as 'Asia/Shanghai' or 'Europe/Berlin'"
            ) from None
        return value

    @model_validator(mode="after")
    def _zones_fit(self) -> StreetConfig:
        problems = []
        width, height = self.camera.width, self.camera.height
        seen: set[str] = set()
        for zone in self.zones:
            if zone.name in seen:
                problems.append(f"zones: the name {zone.name!r} is used twice; zone names must differ")
            seen.add(zone.name)
            outside = [p for p in zone.polygon if not (0 <= p[0] <= width and 0 <= p[1] <= height)]
            if outside:
                problems.append(
                    f"zones.{zone.name}: corner {_fmt(outside[0])} is outside the {width}x{height} frame "
                    "(corners are pixels of camera.width x camera.height)"
                )
            unknown = sorted(set(zone.exempt_classes) - set(self.vehicle_classes))
            if unknown:
                problems.append(
                    f"zones.{zone.name}.exempt_classes: {unknown} are not vehicle classes {self.vehicle_classes}"
                )
        keep = self.detector.keep_labels
        if keep:
            dropped = sorted(set(self.vehicle_classes) - set(keep))
            if dropped:
                problems.append(
                    f"detector.keep_labels drops the vehicle classes {dropped}: add them or remove them "
                    "from vehicle_classes"
                )
        if both := sorted(set(self.vehicle_classes) & set(self.privacy_classes)):
            problems.append(f"{both} cannot be both vehicle and people classes")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _fmt(point: Pixel) -> str:
    return f"[{point[0]:g}, {point[1]:g}]"
