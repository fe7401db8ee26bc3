"""Elevator-car scene renderer (numpy + OpenCV): stills for datasets and seeded rides for evaluation.

Interfaces (stable; the vision runtime and the training pipeline use them):

- ``render_still(rng_or_seed, size=None) -> (image BGR uint8, list[Box])``
- ``Box(cls, x1, y1, x2, y2, track_id=-1, visible=1.0)``: pixels, x2/y2 exclusive; ``cls`` is one of
  ``LABELLED_CLASSES`` = person, ebike, bicycle, stroller, wheelchair.
- ``make_ride(seed, kind=None) -> Ride``; ``RIDE_KINDS`` lists the kinds; ``None`` draws one by seed.
- ``iter_ride_frames(ride, fps=15, size=(1280, 720))`` yields ``(t_seconds, frame, FrameTruth)``.
- ``ride.truth`` is a ``RideTruth(has_ebike, ebike_first_full_s, ebike_left_s, kinds,
  ebike_first_visible_s)``; the last needs the rendered frames: ``FirstVisibleWatch`` finds it.
- ``write_ride_video(ride, path)`` writes the video and ``<path>.json`` ground truth
  (format in docs/evaluation.md) and returns the JSON path.
"""

from simulators.elevator.props import LABELLED_CLASSES
from simulators.elevator.render import Box
from simulators.elevator.ride import (
    RIDE_KINDS,
    FirstVisibleWatch,
    FrameTruth,
    Ride,
    RideTruth,
    iter_ride_frames,
    make_ride,
    read_ride_truth,
    write_ride_video,
)
from simulators.elevator.scenes import render_still

__all__ = [
    "LABELLED_CLASSES",
    "RIDE_KINDS",
    "Box",
    "FirstVisibleWatch",
    "FrameTruth",
    "Ride",
    "RideTruth",
    "iter_ride_frames",
    "make_ride",
    "read_ride_truth",
    "render_still",
    "write_ride_video",
]
