"""The simulated facade camera behind the camera agent's frame-source interface.

It is the ``facade_simulator`` camera source kind: an entry point ``camera.facade_simulator`` in the
``citywatch.edge_sources`` group (pyproject.toml) points at ``FacadeSimulatorSource.from_config``, so
the edge opens it by name and imports nothing from the simulators. The source section of the device
config may be this package's ``FacadeSimulatorSourceConfig`` or any model (or mapping) with the same
fields; the camera section gives the frame rate and size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.vision.sources import Frame, SourceError
from simulators.facade.physics import OBJECT_KINDS
from simulators.facade.render import FacadeRenderer
from simulators.facade.scenario import Scenario, calibration, make_scenario, truth_document
from simulators.facade.video import frame_count


class FacadeSimulatorSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["facade_simulator"] = Field(default="facade_simulator", title="Source kind")
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
    object_kinds: list[str] = Field(
        default_factory=lambda: list(OBJECT_KINDS),
        title="Thrown object kinds",
        description=f"Some of {', '.join(OBJECT_KINDS)}.",
    )
    distractor_rate: float = Field(
        default=1.0,
        ge=0,
        title="Distractor rate",
        description="0: none; 1: a busy facade (birds, leaves, insects...).",
    )
    realtime: bool = Field(default=True, title="Real-time pacing", description="False fast-forwards.")


class FacadeSimulatorSource:
    """Frames of one seeded facade scenario; ``Frame.truth`` is the renderer's ``FrameTruth``."""

    live = False

    def __init__(self, config: FacadeSimulatorSourceConfig, *, fps: float, size: tuple[int, int]) -> None:
        self.config = config
        self.fps = fps
        self.size = size
        self.scenario: Scenario = make_scenario(
            config.seed,
            duration_s=config.duration_s,
            throws=config.throws,
            time_of_day=config.time_of_day,
            weather=config.weather,
            floors=config.floors,
            object_kinds=tuple(config.object_kinds),
            distractor_rate=config.distractor_rate,
        )
        self._frames: Iterator[Frame] | None = None

    @classmethod
    def from_config(cls, source: Any, camera: Any) -> FacadeSimulatorSource:
        """``source``: the config section (this package's model, another with the same fields, or a
        mapping); ``camera``: anything with ``fps``, ``width`` and ``height``."""
        if not isinstance(source, FacadeSimulatorSourceConfig):
            fields = source if isinstance(source, Mapping) else source.model_dump()
            source = FacadeSimulatorSourceConfig.model_validate(dict(fields))
        return cls(source, fps=float(camera.fps), size=(int(camera.width), int(camera.height)))

    def calibration(self) -> dict[str, Any]:
        """The facade calibration at this source's size (see ``scenario.calibration``)."""
        return calibration(self.scenario, self.size)

    def truth(self) -> dict[str, Any]:
        """The whole ground truth at this source's size and rate (``citywatch-facade-truth/1``)."""
        return truth_document(self.scenario, self.size, self.fps)

    def _generate(self) -> Iterator[Frame]:
        renderer = FacadeRenderer(self.scenario, self.size, self.fps)
        for index in range(frame_count(self.scenario, self.fps)):
            image, truth = renderer.render(index)
            yield Frame(t=truth.t, image=image, index=index, truth=truth)

    def open(self) -> None:
        self._frames = self._generate()

    def read(self) -> Frame | None:
        if self._frames is None:
            raise SourceError("source is not open")
        return next(self._frames, None)

    def close(self) -> None:
        self._frames = None
