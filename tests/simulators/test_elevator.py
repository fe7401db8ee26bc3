"""The elevator scene renderer: seeded stills and rides, ground truth that matches the pictures."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from simulators.elevator import (
    LABELLED_CLASSES,
    RIDE_KINDS,
    FirstVisibleWatch,
    iter_ride_frames,
    make_ride,
    read_ride_truth,
    render_still,
    write_ride_video,
)
from simulators.elevator.scenes import render_stills

SMALL = (320, 180)


def test_still_is_seeded_and_its_boxes_are_valid() -> None:
    image, boxes = render_still(11, (400, 300))
    again, boxes_again = render_still(11, (400, 300))
    other, _ = render_still(12, (400, 300))
    assert image.shape == (300, 400, 3) and image.dtype == np.uint8
    assert np.array_equal(image, again) and boxes == boxes_again
    assert not np.array_equal(image, other)
    for box in boxes:
        assert box.cls in LABELLED_CLASSES
        assert 0 <= box.x1 < box.x2 <= 400 and 0 <= box.y1 < box.y2 <= 300
        assert 0.25 <= box.visible <= 1.0


@pytest.mark.slow
def test_stills_cover_every_class_across_seeds() -> None:
    seen: set[str] = set()
    for seed in range(6):
        for _, boxes in render_stills(seed, 4, (256, 192)):
            seen.update(box.cls for box in boxes)
    assert seen == set(LABELLED_CLASSES)


def test_boxes_mark_where_the_picture_changed() -> None:
    """A labelled object's box covers pixels that differ from the empty scene's."""
    image, boxes = render_still(5, (400, 300), artefacts=False)
    assert boxes, "seed 5 should show someone"
    # The same scene without artefacts is deterministic, so a box must hold real content, not background.
    for box in boxes:
        crop = image[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]
        assert crop.size > 0 and float(crop.std()) > 3.0


def test_unknown_ride_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown ride kind 'tram'.*ebike"):
        make_ride(1, "tram")


def test_random_kind_is_drawn_from_the_seed() -> None:
    kinds = {make_ride(seed).kind for seed in range(40)}
    assert kinds <= set(RIDE_KINDS) and len(kinds) >= 5
    assert make_ride(3).kind == make_ride(3).kind


@pytest.mark.parametrize("kind", ["ebike", "escooter"])
@pytest.mark.slow
def test_ebike_ride_truth_matches_its_frames(kind: str) -> None:
    ride = make_ride(21, kind)
    truth = ride.truth
    assert truth.has_ebike and truth.ebike_first_full_s is not None and "ebike" in truth.kinds
    assert 0 < truth.ebike_first_full_s < ride.duration_s
    if truth.ebike_left_s is not None:
        assert truth.ebike_left_s > truth.ebike_first_full_s
    ebike_times = [
        t
        for t, _, frame in iter_ride_frames(ride, fps=4, size=SMALL)
        if any(b.cls == "ebike" for b in frame.boxes)
    ]
    assert ebike_times, "an e-bike ride must show the e-bike"
    # Boxes appear while it comes in (through the door) and it is boxed once it is fully in.
    assert min(ebike_times) <= truth.ebike_first_full_s + 0.25
    assert any(abs(t - truth.ebike_first_full_s) <= 1.0 for t in ebike_times)


@pytest.mark.parametrize("kind", ["bicycle", "stroller", "wheelchair", "people_only", "bags"])
def test_rides_without_ebike_never_label_one(kind: str) -> None:
    ride = make_ride(31, kind)
    assert not ride.truth.has_ebike and ride.truth.ebike_first_full_s is None
    labelled: set[str] = set()
    for _, _, frame in iter_ride_frames(ride, fps=2, size=SMALL):
        labelled.update(b.cls for b in frame.boxes)
    assert "ebike" not in labelled
    if kind in ("bicycle", "stroller", "wheelchair"):
        assert kind in labelled


def test_late_ebike_enters_at_the_second_stop() -> None:
    ride = make_ride(8, "ebike_late")
    first_stop_closes = ride.doors[0][1]
    assert ride.truth.has_ebike and ride.truth.ebike_first_full_s is not None
    assert ride.truth.ebike_first_full_s > first_stop_closes


def test_door_opens_and_closes_during_a_ride() -> None:
    ride = make_ride(4, "people_only")
    openings = [ride.door_opening(t) for t in np.arange(0, ride.duration_s, 0.1)]
    assert openings[0] == 0.0 and openings[-1] == 0.0 and max(openings) == 1.0
    rising = [b - a for a, b in itertools.pairwise(openings) if b != a]
    assert any(d > 0 for d in rising) and any(d < 0 for d in rising)


@pytest.mark.slow
def test_ride_video_and_ground_truth_file(tmp_path: Path) -> None:
    ride = make_ride(13, "ebike")
    truth_path = write_ride_video(ride, tmp_path / "ride13.avi", fps=5, size=SMALL)
    document = json.loads(truth_path.read_text())
    assert document["format"] == "citywatch-ride-truth/1" and document["video"] == "ride13.avi"
    assert (document["width"], document["height"], document["fps"]) == (320, 180, 5)
    assert document["has_ebike"] is True and document["ebike_first_full_s"] == ride.truth.ebike_first_full_s
    capture = cv2.VideoCapture(str(tmp_path / "ride13.avi"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == len(document["frames"]) == int(ride.duration_s * 5)
    boxes = [box for frame in document["frames"] for box in frame["boxes"]]
    assert {"cls", "x1", "y1", "x2", "y2", "track_id", "visible"} <= set(boxes[0])
    # The full appearance is the first frame, once wholly inside, showing at least half the e-bike.
    first_visible = document["ebike_first_visible_s"]
    assert first_visible == min(
        frame["t"]
        for frame in document["frames"]
        if frame["t"] >= ride.truth.ebike_first_full_s
        and any(b["cls"] == "ebike" and b["visible"] >= 0.5 for b in frame["boxes"])
    )
    assert read_ride_truth(truth_path) == dataclasses.replace(ride.truth, ebike_first_visible_s=first_visible)


@pytest.mark.slow
def test_full_appearance_waits_for_a_hidden_ebike_to_be_seen() -> None:
    # An e-scooter wheeled in behind its rider: wholly inside and in view at 9.3 s, but hidden
    # (none of it visible) until the people in front of it move, about 9 s later.
    ride = make_ride(97_000_033, "escooter")
    first_full = ride.truth.ebike_first_full_s
    assert first_full is not None and ride.truth.ebike_first_visible_s is None  # the plan cannot know
    watch = FirstVisibleWatch(first_full)
    for _, _, frame in iter_ride_frames(ride, fps=5, size=SMALL):
        watch.observe(frame)
    assert watch.seen_s is not None and watch.seen_s > first_full + 5


def test_a_truth_file_without_a_visible_time_counts_from_first_full(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text(
        json.dumps(
            {"format": "citywatch-ride-truth/1", "has_ebike": True, "ebike_first_full_s": 3.5, "kinds": []}
        )
    )
    assert read_ride_truth(path).ebike_first_visible_s == 3.5


def test_reading_a_foreign_truth_file_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "clip.json"
    path.write_text(json.dumps({"format": "something-else", "has_ebike": True}))
    with pytest.raises(ValueError, match="not a citywatch-ride-truth/1 ground-truth file"):
        read_ride_truth(path)


def test_unwritable_video_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises((OSError, FileExistsError, NotADirectoryError)):
        write_ride_video(make_ride(1, "bags"), blocker / "ride.avi", fps=2, size=SMALL)


def test_command_writes_rides_ready_for_scoring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulators.elevator.__main__ import main

    assert (
        main(
            [
                "rides",
                "--out",
                str(tmp_path),
                "--count",
                "2",
                "--seed",
                "40",
                "--size",
                "160x90",
                "--fps",
                "2",
                "--format",
                "avi",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ride-40.avi",
        "ride-40.json",
        "ride-41.avi",
        "ride-41.json",
    ]
    assert read_ride_truth(tmp_path / "ride-41.json") == make_ride(41).truth
    assert "[2/2] ride-41.avi" in capsys.readouterr().out


def test_the_camera_agent_opens_the_simulator_by_its_source_kind() -> None:
    from edge.vision.config import CameraConfig, SimulatorSourceConfig
    from edge.vision.sources import make_source
    from simulators.elevator.frame_source import SimulatorSource

    camera = CameraConfig(
        source=SimulatorSourceConfig(seed=3, ride_kind="ebike", rides=1),
        fps=5,
        width=SMALL[0],
        height=SMALL[1],
    )
    source = make_source(camera)
    assert isinstance(source, SimulatorSource)
    source.open()
    try:
        frames = [source.read() for _ in range(3)]
    finally:
        source.close()
    assert [f.index for f in frames if f is not None] == [0, 1, 2]
    assert [f.t for f in frames if f is not None] == pytest.approx([0.0, 0.2, 0.4])
    assert all(f is not None and f.image.shape == (SMALL[1], SMALL[0], 3) for f in frames)
