"""The ``evidence`` section of a camera device: clip window, sizes, byte bounds and privacy.

Pixel polygons refer to the camera's frame (its configured width x height), like every other pixel
coordinate of the device; the camera's own config checks they lie inside it. Pydantic only.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Pixel = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrivacyZoneConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", title="Zone name", description="e.g. balcony_12_3.")
    polygon: list[Pixel] = Field(
        min_length=3,
        title="Polygon",
        description="Corners as [x, y] frame pixels; blurred entirely in clips and stills, except a corridor "
        "around the thrown object's path.",
    )


class PrivacyConfig(_Strict):
    blur_faces: bool = Field(
        default=False,
        title="Blur faces",
        description="Find faces with OpenCV's Haar cascade and blur them. It finds upright frontal faces "
        "from about 60 pixels wide in the evidence frame: people near the camera, not on balconies higher "
        "up (there a face is a few pixels wide); use zones for balconies and windows. Costs seconds of "
        "background CPU per clip.",
    )
    face_cascade: Path | None = Field(
        default=None,
        title="Face cascade file",
        description="A Haar cascade XML; default haarcascade_frontalface_default.xml from OpenCV's data "
        "(cv2.data, or Debian's opencv-data in /usr/share/opencv4/haarcascades).",
    )
    zones: list[PrivacyZoneConfig] = Field(
        default_factory=list,
        title="Privacy zones",
        description="Balconies, windows, terraces: blurred entirely in the evidence.",
    )
    track_corridor_px: float = Field(
        default=40.0,
        ge=0,
        le=400,
        title="Track corridor, pixels",
        description="Half-width (frame pixels) of the corridor along the object's path and fitted curve "
        "left sharp inside zones, so the evidence still shows the fall.",
    )

    @field_validator("zones")
    @classmethod
    def _unique_names(cls, zones: list[PrivacyZoneConfig]) -> list[PrivacyZoneConfig]:
        names = [zone.name for zone in zones]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"privacy zone names must be unique; repeated: {', '.join(repeated)}")
        return zones


class EvidenceConfig(_Strict):
    """What a camera keeps of an event: a clip from ``pre_s`` before the object was first seen to
    ``post_s`` after the impact, and a still with the path drawn. Frames are kept scaled down and
    JPEG-compressed at ``clip_fps`` so the ring fits a Pi-class device."""

    enabled: bool = Field(default=True, title="Evidence", description="Send a clip and a still per event.")
    pre_s: float = Field(
        default=3.0, ge=0, le=30, title="Before, seconds", description="Clip start before the first sighting."
    )
    post_s: float = Field(
        default=3.0, ge=0, le=30, title="After, seconds", description="Clip end after the impact."
    )
    max_event_s: float = Field(
        default=8.0,
        gt=0,
        le=60,
        title="Longest event, seconds",
        description="From the first sighting to the event being reported (a long fall with drag, plus the "
        "track's end). The ring holds pre_s plus this; a clip reaching back further starts later.",
    )
    clip_fps: float = Field(
        default=12.5,
        gt=0,
        le=60,
        title="Clip frame rate",
        description="Frames kept per second (at most the camera's); only these are scaled and encoded.",
    )
    clip_width: int = Field(
        default=960, ge=160, le=3840, title="Clip width, pixels", description="Even; height keeps the aspect."
    )
    max_clip_bytes: int = Field(
        default=3_000_000,
        ge=100_000,
        le=50_000_000,
        title="Largest clip, bytes",
        description="A clip over this is written again smaller, then shorter (said in the log).",
    )
    still_width: int = Field(
        default=960,
        ge=160,
        le=3840,
        title="Still width, pixels",
        description="The ring keeps frames at the larger of this and clip_width. Half the camera's width "
        "is cheapest (1920 -> 960: about 5 ms to scale and encode a kept frame on one core); 1280 costs "
        "about three times as much.",
    )
    jpeg_quality: int = Field(
        default=85, ge=30, le=100, title="JPEG quality", description="Of the kept frames and the still."
    )
    buffer_max_mb: float = Field(
        default=48.0,
        ge=2,
        le=1024,
        title="Ring budget, MB",
        description="Bytes of compressed frames the ring may hold; the oldest go first past it.",
    )
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, title="Privacy")

    @field_validator("clip_width")
    @classmethod
    def _even_width(cls, width: int) -> int:
        if width % 2:
            raise ValueError(f"clip_width must be even (video codecs need even sizes), got {width}")
        return width

    @model_validator(mode="after")
    def _fits_the_budget(self) -> EvidenceConfig:
        # A kept 1280x720 facade frame at quality 85 measured about 80 kB: 0.1 byte per pixel (16:9).
        store_width = max(self.clip_width, self.still_width)
        frame_bytes = store_width * store_width * 9 / 16 * 0.1
        needed_mb = frame_bytes * self.clip_fps * (self.pre_s + self.max_event_s) / 1e6
        if needed_mb > self.buffer_max_mb:
            raise ValueError(
                f"buffer_max_mb ({self.buffer_max_mb:g}) cannot hold pre_s + max_event_s "
                f"({self.pre_s + self.max_event_s:g} s) of {store_width}-wide frames at {self.clip_fps:g} fps "
                f"(about {needed_mb:.0f} MB); raise it or lower clip_fps, the widths or the times"
            )
        return self

    @property
    def store_width(self) -> int:
        """Width the ring keeps frames at: enough for the clip and the still."""
        return max(self.clip_width, self.still_width)

    @property
    def ring_span_s(self) -> float:
        return self.pre_s + self.max_event_s
