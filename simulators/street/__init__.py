"""Street scenes for the illegal-parking camera: seeded, with ground truth (issue 15).

A two-lane street with kerbside strips seen from a pole on the pavement (pinhole camera, real-world
metres), painted no-parking zones (a yellow kerb line, a bus stop, a fire lane, hatched no-stopping
boxes) and legal bays, a traffic light with a stop line and zebra, street lamps; vehicles of five
classes (car, truck for vans and trucks, bus, motorbike, ebike for e-bikes and tricycles) with
rendered Chinese plates, in traffic integrated with a car-following model: queues at the light, jams,
parking, drop-offs, double parking with overtaking, buses at their stop, pedestrians; day, dusk,
night with headlights and street lamps, rain.

Interfaces (stable; the parking analyzer, its tests and the evaluation use them):

- ``make_scenario(seed, preset="random", duration_s=None, time_of_day=None, weather=None, rules=None)
  -> Scenario``: presets in ``PRESETS`` (``overstay``, ``leaves_in_grace``, ``drop_off``, ``queue``, ``jam``,
  ``double_park``, ``bus_stop``, ``occluded``, ``swap``, ``busy_mixed``; ``random`` mixes them for held-out
  sets, see ``held_out_scenarios``). ``scenario.stops`` lists every stop (``Stop``).
- ``StreetRules(dwell_s=120, grace_s=600)``: the timing the stories are planned around and judged by.
- ``iter_frames(scenario, fps=10, size=(1920, 1080), speed=1.0)`` yields ``(t, BGR frame, FrameTruth)``;
  ``StreetRenderer`` renders frame by frame.
- ``truth_document(scenario, size, fps, speed=1.0, rules=None)`` (format ``citywatch-street-truth/1``,
  docs/evaluation.md "Street scenes"); ``write_scenario_video(scenario, path, ...)`` writes an MP4/AVI or a
  JPEG frame directory and the JSON; ``read_street_truth(path)`` reads one back.
- ``occlusions(scenario)``: when a standing vehicle was less than half in sight, and behind what.
- ``StreetSimulatorSource`` (``frame_source``): the ``camera.street_simulator`` edge source.
- ``plates.random_plate`` / ``plates.render_plate``: the plates.
"""

from simulators.street.camera import CameraPose, StreetCamera
from simulators.street.render import FrameTruth, StreetRenderer, VehicleInView
from simulators.street.scenario import (
    HELD_OUT_FIRST_SEED,
    PARKING_KINDS,
    PRESETS,
    TIMES_OF_DAY,
    WEATHERS,
    Scenario,
    Stop,
    StreetRules,
    held_out_scenarios,
    make_scenario,
)
from simulators.street.truth import TRUTH_FORMAT, judge, truth_document, zone_polygons
from simulators.street.vehicles import VEHICLE_CLASSES, make_vehicle
from simulators.street.video import iter_frames, read_street_truth, write_scenario_video
from simulators.street.visibility import Occlusion, occlusions

__all__ = [
    "HELD_OUT_FIRST_SEED",
    "PARKING_KINDS",
    "PRESETS",
    "TIMES_OF_DAY",
    "TRUTH_FORMAT",
    "VEHICLE_CLASSES",
    "WEATHERS",
    "CameraPose",
    "FrameTruth",
    "Occlusion",
    "Scenario",
    "Stop",
    "StreetCamera",
    "StreetRenderer",
    "StreetRules",
    "VehicleInView",
    "held_out_scenarios",
    "iter_frames",
    "judge",
    "make_scenario",
    "make_vehicle",
    "occlusions",
    "read_street_truth",
    "truth_document",
    "write_scenario_video",
    "zone_polygons",
]
