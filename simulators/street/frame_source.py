"""The simulated street camera behind the camera agent's frame-source interface.

It is the ``street_simulator`` camera source kind: an entry point ``camera.street_simulator`` in the
``citywatch.edge_sources`` group (pyproject.toml) points at ``StreetSimulatorSource.from_config``, so
the edge opens it by name and imports nothing from the simulators. The source section of the device
config may be this package's ``StreetSimulatorSourceConfig`` or any model (or mapping) with its fields;
the camera section gives the frame rate and size. Frames carry the scenario's clock in ``Frame.t``
(``index * speed / fps`` seconds), the renderer's ``FrameTruth`` and, when the config gives the
scenario's ``start``, their wall-clock time in ``Frame.wall`` (``start + t``: zone hours follow the
simulated day, fast-forwarded or not); with ``realtime`` the agent paces them to the wall clock, without
it reads them as fast as they render (fast-forward).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from pydantic import model_validator

from edge.street.closeup import CloseUp
from edge.street.config import StreetSimulatorSourceConfig as EdgeStreetSimulatorSourceConfig
from edge.vision.sources import Frame, SourceError
from simulators.street.render import StreetRenderer
from simulators.street.scenario import PRESETS, Scenario, StreetRules, make_scenario
from simulators.street.truth import frame_count, truth_document, zone_polygons

PTZ_FPS = 25.0  # the close-up camera's frame rate (a burst's frames are this far apart)


class StreetSimulatorSourceConfig(EdgeStreetSimulatorSourceConfig):
    """The edge's ``street_simulator`` source section (edge/street/config.py), with the scenario checked
    against the presets this package has."""

    @model_validator(mode="after")
    def _known_scenario(self) -> StreetSimulatorSourceConfig:
        if self.scenario not in PRESETS:
            raise ValueError(f"scenario {self.scenario!r} is not a preset: use one of {', '.join(PRESETS)}")
        return self


class StreetSimulatorSource:
    """Frames of one seeded street scenario; ``Frame.truth`` is the renderer's ``FrameTruth``."""

    live = False

    def __init__(self, config: StreetSimulatorSourceConfig, *, fps: float, size: tuple[int, int]) -> None:
        self.config = config
        self.fps = fps
        self.size = size
        self.rules = StreetRules(config.dwell_s, config.grace_s)
        self.scenario: Scenario = make_scenario(
            config.seed,
            config.scenario,
            duration_s=config.duration_s,
            time_of_day=config.time_of_day,
            weather=config.weather,
            rules=self.rules,
        )
        self._frames: Iterator[Frame] | None = None

    @classmethod
    def from_config(cls, source: Any, camera: Any) -> StreetSimulatorSource:
        """``source``: the config section (this package's model, another with the same fields, or a
        mapping); ``camera``: anything with ``fps``, ``width`` and ``height``."""
        if not isinstance(source, StreetSimulatorSourceConfig):
            fields = source if isinstance(source, Mapping) else source.model_dump()
            source = StreetSimulatorSourceConfig.model_validate(dict(fields))
        return cls(source, fps=float(camera.fps), size=(int(camera.width), int(camera.height)))

    def zones(self) -> list[dict[str, Any]]:
        """The scenario's no-parking zones as pixel polygons at this source's size."""
        return zone_polygons(self.scenario, self.size)

    def truth(self) -> dict[str, Any]:
        """The whole ground truth at this source's size and rate (``citywatch-street-truth/1``)."""
        return truth_document(self.scenario, self.size, self.fps, speed=self.config.speed, rules=self.rules)

    def closeup(
        self,
        box: tuple[float, float, float, float],
        t: float,
        *,
        fill: float,
        max_zoom: float,
        frames: int = 3,
    ) -> CloseUp:
        """The pole's PTZ camera turned and zoomed onto ``box`` (this source's pixels) at scenario time
        ``t``: the same street from the same place, rendered anew at this source's size, ``frames``
        frames at the PTZ's 25 fps (each with its own sensor noise), rendered one at a time as read."""
        camera = self.scenario.camera(self.size)
        aimed = camera.aimed_at(box, fill=fill, max_zoom=max_zoom)
        scenario = dataclasses.replace(self.scenario, pose=aimed.pose)
        renderer = StreetRenderer(scenario, self.size, PTZ_FPS, visibility=False)
        first = round(t * PTZ_FPS)
        burst = (renderer.render(first + k)[0] for k in range(max(1, frames)))  # rendered as read
        # The aimed centre lands at the picture's centre, the box grown by the focal lengths' ratio.
        zoom = aimed.focal / camera.focal
        cx, cy = self.size[0] / 2, self.size[1] / 2
        half_w, half_h = (box[2] - box[0]) * zoom / 2, (box[3] - box[1]) * zoom / 2
        return CloseUp(frames=burst, box=(cx - half_w, cy - half_h, cx + half_w, cy + half_h), zoom=zoom)

    def _generate(self) -> Iterator[Frame]:
        renderer = StreetRenderer(self.scenario, self.size, self.fps, speed=self.config.speed)
        start = self.config.start
        for index in range(frame_count(self.scenario, self.fps, self.config.speed)):
            image, truth = renderer.render(index)
            wall = None if start is None else start + timedelta(seconds=truth.t)
            yield Frame(t=truth.t, image=image, index=index, truth=truth, wall=wall)

    def open(self) -> None:
        self._frames = self._generate()

    def read(self) -> Frame | None:
        if self._frames is None:
            raise SourceError("source is not open")
        return next(self._frames, None)

    def close(self) -> None:
        self._frames = None
