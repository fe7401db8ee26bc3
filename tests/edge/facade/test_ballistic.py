"""The fall fit on analytic trajectories (noise, missing frames, drag) and the rules on scripted distractors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.facade.ballistic import G, TrackPoints, ViewGeometry, _outward_m, fit_fall, model_height
from edge.facade.calibration import Floors
from edge.facade.config import BuildingConfig, FallRulesConfig

RULES = FallRulesConfig()
FLOORS = Floors(BuildingConfig(floors=30, floor_height_m=3.0))
FPS = 25.0


def observed(
    release_h: float,
    *,
    vt: float = math.inf,
    first_t: float = 0.2,
    duration_s: float = 2.0,
    noise_m: float = 0.12,
    missing: float = 0.0,
    vx: float = 0.4,
    toss_up_mps: float = 0.0,
    seed: int = 0,
) -> TrackPoints:
    """A fall released at rest at t=0 (or tossed up: the apex is later), seen from ``first_t`` on."""
    rng = np.random.default_rng(seed)
    t = np.arange(first_t, first_t + duration_s, 1 / FPS)
    t = t[rng.random(len(t)) >= missing]
    apex_t = toss_up_mps / G
    apex_h = release_h + toss_up_mps**2 / (2 * G)
    h = model_height(t, apex_t, apex_h, vt) + rng.normal(0, noise_m, len(t))
    x = 5.0 + vx * t + rng.normal(0, noise_m, len(t))
    return TrackPoints(t=t, x=x, h=h)


@pytest.mark.parametrize("seed", range(12))
def test_free_fall_with_noise_and_missing_frames(seed: int) -> None:
    # Released from floor 17 (base 48 m) at hand height; a third of the frames lost; 12 cm noise.
    points = observed(49.2, missing=0.33, seed=seed)
    fit = fit_fall(points, RULES)
    assert fit.accepted, fit.reason
    assert fit.quad_accel_mps2 == pytest.approx(G, rel=0.08)
    assert fit.start_accel_g > 0.9
    assert fit.release_h_m == pytest.approx(49.2, abs=0.4)
    assert fit.release_t == pytest.approx(0.0, abs=0.06)
    assert fit.release_x_m == pytest.approx(5.0, abs=0.3)
    assert FLOORS.floor_at(fit.release_h_m) == 17
    assert (
        FLOORS.estimate(fit.release_h_m, math.hypot(fit.release_sigma_m, RULES.height_sigma_m)).confidence
        > 0.9
    )


def test_the_fit_reaches_the_ground_at_the_analytic_time() -> None:
    fit = fit_fall(observed(49.2, noise_m=0.05), RULES)
    assert fit.impact == "ground"
    assert fit.impact_t == pytest.approx(math.sqrt(2 * 49.2 / G), abs=0.05)
    assert fit.fall_height_m == pytest.approx(49.2, abs=0.2)
    assert fit.fall_duration_s == pytest.approx(math.sqrt(2 * 49.2 / G), abs=0.05)
    assert fit.impact_x_m == pytest.approx(5.0 + 0.4 * fit.impact_t, abs=0.3)


@pytest.mark.parametrize(("vt", "seed"), [(9.0, 1), (9.0, 2), (15.0, 3), (30.0, 4)])
def test_a_fall_slowed_by_drag_is_still_a_fall(vt: float, seed: int) -> None:
    # A cigarette pack (vt ~9 m/s) from floor 25 seen for 4 s: its average acceleration is far below g.
    points = observed(73.0, vt=vt, duration_s=4.0, seed=seed)
    fit = fit_fall(points, RULES)
    assert fit.accepted, fit.reason
    assert fit.terminal_velocity_mps == pytest.approx(vt, rel=0.15)
    assert fit.start_accel_g > 0.8
    assert FLOORS.floor_at(fit.release_h_m) == 25
    if vt < 10:
        assert fit.quad_accel_g < RULES.min_accel_fraction  # a plain quadratic rule would have missed it


def test_a_toss_upward_is_traced_to_its_apex() -> None:
    fit = fit_fall(observed(31.0, toss_up_mps=3.0, first_t=0.0, noise_m=0.05), RULES)
    assert fit.accepted, fit.reason
    apex_h = 31.0 + 9.0 / (2 * G)
    assert fit.release_h_m == pytest.approx(apex_h, abs=0.2)
    assert fit.release_t == pytest.approx(3.0 / G, abs=0.05)


def test_a_fall_first_seen_late_keeps_its_floor() -> None:
    # A bottle near the roof is too small to see: first detected after a second (about 5 m) of fall.
    fit = fit_fall(observed(85.0, vt=35.0, first_t=1.0, duration_s=2.5, seed=7), RULES)
    assert fit.accepted, fit.reason
    assert FLOORS.floor_at(fit.release_h_m) == 29
    assert fit.release_t == pytest.approx(0.0, abs=0.1)


def scripted(
    t: np.ndarray, x: np.ndarray, h: np.ndarray, seed: int = 0, noise_m: float = 0.08
) -> TrackPoints:
    rng = np.random.default_rng(seed)
    return TrackPoints(t=t, x=x + rng.normal(0, noise_m, len(t)), h=h + rng.normal(0, noise_m, len(t)))


T = np.arange(0.0, 3.0, 1 / FPS)


@pytest.mark.parametrize(
    ("name", "points", "reasons"),
    [
        # A gull gliding down past the facade at a steady 7 m/s: no acceleration at all.
        ("gliding bird", scripted(T, 2 + 6 * T, 50 - 7 * T), {"not_accelerating"}),
        # A pigeon climbing to the roof.
        ("climbing bird", scripted(T, 2 + 3 * T, 20 + 4 * T), {"climbing"}),
        # A swift turning: descends while its path curls (x and height swing).
        (
            "turning bird",
            scripted(T, 10 + 4 * np.sin(2.5 * T), 40 - 4 * T + 2.5 * np.sin(5 * T)),
            {"erratic", "fluttering"},
        ),
        # A bird crossing fast and sinking a little.
        ("crossing bird", scripted(T, 12 * T, 40 - 1.5 * T - 0.2 * T**2), {"not_falling", "lateral"}),
        # A leaf: settles at ~1.2 m/s swinging from side to side.
        ("fluttering leaf", scripted(T, 8 + 1.0 * np.sin(2 * np.pi * 1.5 * T), 40 - 1.2 * T), {"fluttering"}),
        # A plastic bag: slow steady sink without much swing.
        ("plastic bag", scripted(T, 8 + 0.2 * T, 45 - 2.5 * T), {"floating"}),
        # A light switching on and off, a curtain: no displacement.
        (
            "stationary flicker",
            scripted(T, np.full_like(T, 6.0), np.full_like(T, 30.0), noise_m=0.1),
            {"stationary"},
        ),
        # A raindrop at terminal velocity, seen for long.
        ("rain", scripted(T, 3 + 0.6 * T, 60 - 8.5 * T), {"not_accelerating"}),
        # Faster than g: two things joined by the tracker, or a pushed object.
        (
            "faster than g",
            scripted(T[:40], 0 * T[:40], 60 - 0.5 * 16.0 * T[:40] ** 2),
            {"faster_than_gravity"},
        ),
        ("too short", scripted(T[:5], 0 * T[:5], 60 - 0.5 * G * T[:5] ** 2), {"too_few_frames"}),
    ],
)
def test_distractors_are_rejected_with_a_reason(name: str, points: TrackPoints, reasons: set[str]) -> None:
    fit = fit_fall(points, RULES)
    assert not fit.accepted, f"{name} taken for a fall"
    assert fit.reason in reasons, f"{name}: {fit.reason}"
    # Knowing where the camera stands (the outward-toss fit) must not turn any of them into a fall.
    for distance in (8.0, 15.0, 30.0):
        view = ViewGeometry(camera_distance_m=distance, camera_height_m=2.0, plane_distance_m=0.5)
        again = fit_fall(points, RULES, view=view)
        assert not again.accepted, f"{name} taken for a fall tossed towards a camera {distance} m out"
        assert again.reason == fit.reason


def seen_from_below(
    release_h: float, outward_mps: float, view: ViewGeometry, *, vt: float, seconds: float, seed: int = 0
) -> TrackPoints:
    """A fall released at t=0 moving out towards the camera, placed on the track's plane as the calibration
    would place it (where the camera's ray through it meets that plane)."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.04, seconds, 1 / FPS)
    y = model_height(t, 0.0, release_h, vt)
    z = view.plane_distance_m + _outward_m(t, np.asarray(vt), outward_mps)
    d = view.camera_distance_m
    h = view.camera_height_m + (y - view.camera_height_m) * (d - view.plane_distance_m) / (d - z)
    return TrackPoints(t=t, x=5.0 + 0.3 * t + rng.normal(0, 0.05, len(t)), h=h + rng.normal(0, 0.05, len(t)))


@pytest.mark.parametrize(
    ("outward", "distance", "vt"), [(3.0, 12.0, 10.4), (2.0, 9.0, 30.0), (4.0, 20.0, 25.0)]
)
def test_an_object_tossed_towards_the_camera_is_fitted_on_its_way_out(
    outward: float, distance: float, vt: float
) -> None:
    # Floor 9 (base 24 m): seen from below, the toss towards the camera hides most of its descent.
    view = ViewGeometry(camera_distance_m=distance, camera_height_m=2.0, plane_distance_m=0.5)
    points = seen_from_below(25.2, outward, view, vt=vt, seconds=1.8)
    assert not fit_fall(points, RULES).accepted  # on one plane it does not look like a fall
    fit = fit_fall(points, RULES, view=view)
    assert fit.accepted, fit.reason
    assert fit.outward_mps == pytest.approx(outward, abs=0.75)
    assert FLOORS.floor_at(fit.release_h_m) == 9


def test_an_object_landing_on_a_canopy_stops_there() -> None:
    t = np.arange(0.0, 3.0, 1 / FPS)
    h = np.maximum(model_height(t, 0.0, 28.0, math.inf), 6.0)  # lands on a canopy 6 m up, stays
    fit = fit_fall(scripted(t, 4 + 0.3 * t, h, noise_m=0.03), RULES)
    assert fit.accepted, fit.reason
    assert fit.impact == "stopped"
    assert fit.impact_h_m == pytest.approx(6.0, abs=0.2)
    assert fit.impact_t == pytest.approx(math.sqrt(2 * 22.0 / G), abs=0.1)
    assert fit.fall_height_m == pytest.approx(22.0, abs=0.3)


def test_a_track_that_rested_before_falling_is_judged_from_the_fall() -> None:
    # A flower pot on a sill for a second (tracked as a still blob), then pushed off.
    t = np.arange(0.0, 3.0, 1 / FPS)
    h = np.where(t < 1.0, 31.0, model_height(t, 1.0, 31.0, math.inf))
    fit = fit_fall(scripted(t, np.full_like(t, 7.0), h, noise_m=0.05), RULES)
    assert fit.accepted, fit.reason
    assert fit.release_t == pytest.approx(1.0, abs=0.08)
    assert FLOORS.floor_at(fit.release_h_m) == 11
