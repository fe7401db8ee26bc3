"""Facade scenes for the objects-thrown-from-height camera: seeded, with ground truth.

A tower of 6-33 floors seen by a camera at its foot looking up (pinhole + OpenCV radial distortion),
objects thrown from its windows under gravity and quadratic drag, and distractors (birds, leaves, paper
and plastic bags, insects near the lens, rain, snow, camera shake, window lights, clouds) by day, at
dusk and at night.

Interfaces (stable; the facade analyzer, its tests and the evaluation use them):

- ``make_scenario(seed, duration_s=60, throws=None, time_of_day=None, weather=None, floors=None,
  object_kinds=OBJECT_KINDS, distractor_rate=1.0, windows=None) -> Scenario`` plans everything; ``None`` draws from
  the seed.
- ``iter_frames(scenario, fps=25, size=(1920, 1080))`` yields ``(t, BGR frame, FrameTruth)``.
- ``FrameTruth(t, index, throws=((throw_id, u, v), ...), shake_px=(dx, dy))``.
- ``truth_document(scenario, size, fps)`` / ``calibration(scenario, size)``: JSON-ready dicts
  (format ``citywatch-facade-truth/1``, docs/evaluation.md "Facade scenarios").
- ``write_scenario_video(scenario, path, fps=25, size=...)`` writes the video and ``<stem>.json``;
  ``read_facade_truth(path)`` reads one back.
- ``scenario.camera(size) -> FacadeCamera``: ``project``, ``facade_to_pixels``, ``pixels_to_facade``,
  ``homography``, ``camera_matrix``, ``dist_coeffs``.
- ``simulate_fall(spec, start_m, velocity, ...) -> Fall`` and ``make_object(rng, kind)``: the physics.
- ``FacadeSimulatorSource`` (``frame_source``): the ``camera.facade_simulator`` edge source.
"""

from simulators.facade.camera import CameraPose, FacadeCamera
from simulators.facade.physics import OBJECT_KINDS, Fall, G, ObjectSpec, make_object, simulate_fall
from simulators.facade.render import FrameTruth
from simulators.facade.scenario import (
    TIMES_OF_DAY,
    TRUTH_FORMAT,
    WEATHERS,
    Scenario,
    Throw,
    calibration,
    make_scenario,
    truth_document,
)
from simulators.facade.video import iter_frames, read_facade_truth, write_scenario_video

__all__ = [
    "OBJECT_KINDS",
    "TIMES_OF_DAY",
    "TRUTH_FORMAT",
    "WEATHERS",
    "CameraPose",
    "FacadeCamera",
    "Fall",
    "FrameTruth",
    "G",
    "ObjectSpec",
    "Scenario",
    "Throw",
    "calibration",
    "iter_frames",
    "make_object",
    "make_scenario",
    "read_facade_truth",
    "simulate_fall",
    "truth_document",
    "write_scenario_video",
]
