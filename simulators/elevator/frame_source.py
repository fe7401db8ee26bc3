"""The simulated elevator camera behind the camera agent's frame-source interface.

It is the ``simulator`` camera source kind: an entry point in the ``citywatch.edge_sources`` group
(pyproject.toml) points at ``SimulatorSource.from_config``, so the edge opens it by name and imports
nothing from the simulators itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from edge.vision.config import CameraConfig, SimulatorSourceConfig
from edge.vision.sources import Frame, SourceError
from simulators.elevator.ride import iter_ride_frames, make_ride


class SimulatorSource:
    """Rides from the elevator scene renderer, one after another with an empty car between them."""

    live = False

    def __init__(self, config: SimulatorSourceConfig, *, fps: float, size: tuple[int, int]) -> None:
        self.config = config
        self.fps = fps
        self.size = size
        self._frames: Iterator[Frame] | None = None

    @classmethod
    def from_config(cls, source: SimulatorSourceConfig, camera: CameraConfig) -> SimulatorSource:
        return cls(source, fps=camera.fps, size=(camera.width, camera.height))

    def _generate(self) -> Iterator[Frame]:
        offset = 0.0
        index = 0
        ride_number = 0
        while self.config.rides is None or ride_number < self.config.rides:
            ride = make_ride(self.config.seed + ride_number, self.config.ride_kind or None)
            last_t = 0.0
            for t, image, truth in iter_ride_frames(ride, fps=self.fps, size=self.size):
                yield Frame(t=offset + t, image=image, index=index, truth=truth)
                index += 1
                last_t = t
            offset += last_t + 1.0 / self.fps + self.config.idle_between_rides_s
            ride_number += 1

    def open(self) -> None:
        self._frames = self._generate()

    def read(self) -> Frame | None:
        if self._frames is None:
            raise SourceError("source is not open")
        return next(self._frames, None)

    def close(self) -> None:
        self._frames = None
