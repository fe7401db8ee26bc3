"""The simulated facade camera behind the camera agent's frame-source interface.

It is the ``facade_simulator`` camera source kind: an entry point ``camera.facade_simulator`` in the
``citywatch.edge_sources`` group (pyproject.toml) points at ``FacadeSimulatorSource.from_config``, so
the edge opens it by name and imports nothing from the simulators. The source section of the device
config may be this package's ``FacadeSimulatorSourceConfig`` or any model (or mapping) with the same
fields; the camera section gives the frame rate and size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import Field

from edge.facade.config import FacadeSimulatorSourceConfig as EdgeFacadeSimulatorSourceConfig
from edge.vision.sources import Frame, SourceError
from simulators.facade.physics import OBJECT_KINDS
from simulators.facade.render import FacadeRenderer
from simulators.facade.scenario import Scenario, calibration, make_scenario, truth_document
from simulators.facade.video import frame_count


class FacadeSimulatorSourceConfig(EdgeFacadeSimulatorSourceConfig):
    """The edge's ``facade_simulator`` source section, plus what only the simulator's own callers choose."""

    object_kinds: list[str] = Field(
        default_factory=lambda: list(OBJECT_KINDS),
        title="Thrown object kinds",
        description=f"Some of {', '.join(OBJECT_KINDS)}.",
    )


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
