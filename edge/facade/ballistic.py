"""Is a track a fall? Fit its height to free fall with quadratic drag, check the rules, trace the release.

Model (height ``h`` up, time ``t``): a body at rest at the release ``(t_r, h_r)`` falling with quadratic
drag of terminal velocity ``v_t`` follows

    h(t) = h_r - (v_t**2 / g) * ln cosh(g * (t - t_r) / v_t)        (v_t = inf: h_r - g (t - t_r)**2 / 2)

which is close to free fall at first and tends to a steady ``v_t`` descent. ``ln cosh`` is even, so a short
toss upward before the apex is modelled as the mirror of the fall (drag barely matters at those speeds).
``h_r`` enters linearly; ``t_r`` and ``v_t`` are found by a coarse grid and a finer grid around its best
point, vectorised (a track holds tens to a few hundred points). Missing frames need nothing special: the
fit uses each point's own time.

Release (the origin): the fitted apex, where the vertical speed is zero. That is exact for an object
dropped or tossed sideways from a window, and for one tossed upwards it is the top of the toss (a metre or
so above the hand). ``t_r`` may lie before the first observed point (small objects near the roof are seen
late); it is bounded to ``max_unseen_s`` before it.

Why the drag model and not only ``h = h0 + v0 t - a t**2 / 2``: a light object (a cigarette pack, v_t
~9 m/s) is near its terminal velocity after a second, so a quadratic over a long track averages its
acceleration far below g. The quadratic fit is still computed (``quad_accel_mps2``) and bounds the
acceleration from above (nothing falls faster than g); the acceleration that must be near g is the fitted
model's at the first observed point (``start_accel_mps2``): a glide, a settling leaf or rain at terminal
velocity has none, a fall seen from near its release has g or nearly.

Tossed towards the camera: a track's heights lie on one plane in front of the facade (the calibration's
parallax plane), but an object tossed outwards leaves it, and seen from below it seems to fall slower, to
rise, or near the lens faster than g. Where the camera's position is known (``view``), a track the plain
fit refuses for such a reason is fitted again with an outward speed (slowed by the same drag), its heights
moved to the planes it crossed, and judged by the same rules there (``fit_fall``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from edge.facade.config import FallRulesConfig

G = 9.81
FloatArray = np.ndarray

# Coarse grid of terminal velocities (m/s): leaves ~1, a cigarette pack ~9, a bottle ~30, a brick ~60.
_VT_GRID = np.concatenate([np.geomspace(0.8, 150.0, 48), [np.inf]])
_COARSE_STEP_S = 0.04
_STILL_M = 0.3
_STILL_POINTS = 3
_STILL_HEAD_S = 0.4
# Tossed towards the camera: outward speeds tried (m/s; a hard toss is ~5), and the search's coarser grids
# (it runs only for tracks the plain fit refused, and only where the camera's position is known).
_OUTWARD_MPS = np.arange(0.5, 5.01, 0.5)
_OUTWARD_VT_GRID = np.concatenate([_VT_GRID[::3], [np.inf]])
_OUTWARD_STEP_S = 0.08
_OUTWARD_POINTS = 30
# ...and a toss is fitted only from a release seen (nearly): one assumed long before the first point
# leaves the speed, the drag and the unseen part free enough to bend a distractor's track into a fall.
_OUTWARD_UNSEEN_S = 0.4
# A toss upwards peaks within this long of the first point (2.5 m/s up is a hard toss): the apex searched.
_OUTWARD_APEX_S = 0.5
# The outward speed is one more free parameter: its fit must follow the track this much closer than the
# plain fit's max_residual_m (a twitching speck near the roof fits a slow toss at 0.2-0.25 m rms).
_OUTWARD_RESIDUAL_FRACTION = 0.4
# Refusals an object flying towards the camera can cause: it seems to fall slower (not_falling, floating,
# not_accelerating) or, nearer the lens, faster than g (and so not to fit: erratic). It may seem to climb
# for a while, but a track that ends higher than it began is not tried (see ``fit_fall``).
OUTWARD_REASONS = frozenset({"not_falling", "floating", "not_accelerating", "faster_than_gravity", "erratic"})


@dataclass(frozen=True, slots=True)
class TrackPoints:
    """A track in facade coordinates: times (s), x across (m), height (m); ``shaky`` flags camera motion."""

    t: FloatArray
    x: FloatArray
    h: FloatArray

    def __post_init__(self) -> None:
        if not (len(self.t) == len(self.x) == len(self.h)):
            raise ValueError("t, x and h must have the same length")


@dataclass(frozen=True, slots=True)
class ViewGeometry:
    """Where the camera stands (ParallaxConfig): lets the fit follow an object thrown towards it.

    A track's heights lie on the plane ``plane_distance_m`` in front of the facade; an object tossed
    outwards leaves that plane, and seen from below it seems to fall slower (even to climb) than it does.
    """

    camera_distance_m: float
    camera_height_m: float
    plane_distance_m: float
    camera_x_m: float | None = None  # corrects x too when known


@dataclass(frozen=True, slots=True)
class FallFit:
    accepted: bool
    reason: str  # "fall" or why not: too_few_frames, stationary, climbing, not_falling, erratic, ...
    frames: int
    release_t: float = math.nan
    release_h_m: float = math.nan
    release_x_m: float = math.nan
    release_sigma_m: float = math.nan  # the fit's own uncertainty of release_h_m
    terminal_velocity_mps: float = math.inf
    start_accel_mps2: float = math.nan
    quad_accel_mps2: float = math.nan
    quad_accel_se_mps2: float = math.nan
    residual_m: float = math.nan
    lateral_jitter_m: float = math.nan
    lateral_speed_mps: float = math.nan
    impact_t: float = math.nan
    impact_h_m: float = math.nan
    impact_x_m: float = math.nan
    impact: str = ""  # "ground" (the fit's ground crossing) or "stopped" (where it came to rest, seen)
    confidence: float = 0.0
    outward_mps: float = 0.0  # speed away from the facade the fit needed (0: it fell on the track's plane)

    @property
    def fall_height_m(self) -> float:
        return self.release_h_m - self.impact_h_m

    @property
    def fall_duration_s(self) -> float:
        return self.impact_t - self.release_t

    @property
    def start_accel_g(self) -> float:
        return self.start_accel_mps2 / G

    @property
    def quad_accel_g(self) -> float:
        return self.quad_accel_mps2 / G


def fall_distance(tau: FloatArray, vt: FloatArray | float) -> FloatArray:
    """Distance fallen ``tau`` seconds from rest (mirrored for tau < 0) with terminal velocity ``vt``."""
    tau = np.asarray(tau, np.float64)
    vt_arr = np.asarray(vt, np.float64)
    finite = np.isfinite(vt_arr)
    safe_vt = np.where(finite, vt_arr, 1.0)
    z = np.abs(G * tau / safe_vt)
    log_cosh = z + np.log1p(np.exp(-2.0 * z)) - math.log(2.0)  # stable for large z
    dragged = safe_vt**2 / G * log_cosh
    return np.where(finite, dragged, 0.5 * G * tau**2)


def model_height(t: FloatArray, release_t: float, release_h: float, vt: float) -> FloatArray:
    return release_h - fall_distance(np.asarray(t, np.float64) - release_t, vt)


def _fit_drag(t: FloatArray, h: FloatArray, t_lo: float, t_hi: float) -> tuple[float, float, float, float]:
    """Least squares (release_t, release_h, vt, rms): a coarse grid, then zooming in on its best few."""

    def sse_grid(release_ts: FloatArray, vts: FloatArray) -> tuple[FloatArray, FloatArray]:
        tau = t[None, None, :] - release_ts[None, :, None]  # (vt, t_r, points)
        d = fall_distance(tau, vts[:, None, None])
        release_h = (h[None, None, :] + d).mean(axis=2)  # the linear parameter in closed form
        residual = h[None, None, :] - (release_h[..., None] - d)
        return (residual**2).sum(axis=2), release_h

    release_ts = np.arange(t_lo, t_hi + _COARSE_STEP_S, _COARSE_STEP_S)
    sse, _ = sse_grid(release_ts, _VT_GRID)
    # The best release time for each terminal velocity; zoom in on the three best of those (separate basins:
    # "released just before the first point" and "long at terminal velocity" can both fit a steady descent).
    best_per_vt = sse.min(axis=1)
    best = (math.inf, 0.0, 0.0, math.inf)
    for i in np.argsort(best_per_vt)[:3]:
        t_r, vt = float(release_ts[int(np.argmin(sse[i]))]), float(_VT_GRID[i])
        step_t, log_step = _COARSE_STEP_S, math.log(1.12)
        for _ in range(4):
            ts = np.clip(t_r + step_t * np.arange(-3, 4), t_lo, t_hi)
            if math.isfinite(vt):
                vts = vt * np.exp(log_step * np.arange(-3, 4))
            else:
                vts = np.concatenate([np.geomspace(100.0, 400.0, 6), [np.inf]])
            zoom_sse, zoom_h = sse_grid(ts, vts)
            a, b = np.unravel_index(int(np.argmin(zoom_sse)), zoom_sse.shape)
            t_r, vt = float(ts[b]), float(vts[a])
            step_t, log_step = step_t / 3, log_step / 3
            if zoom_sse[a, b] < best[0]:
                best = (float(zoom_sse[a, b]), t_r, float(zoom_h[a, b]), vt)
    sse_best, t_r, release_h, vt = best
    return t_r, release_h, vt, math.sqrt(sse_best / len(t))


def _release_sigma(t: FloatArray, release_t: float, release_h: float, vt: float, rms: float) -> float:
    """Standard error of release_h from the fit's Jacobian (numerical), scaled by the residual."""
    n = len(t)
    params = [release_t, math.log(vt)] if math.isfinite(vt) else [release_t]

    def heights(p: list[float]) -> FloatArray:
        return model_height(t, p[0], release_h, math.exp(p[1]) if len(p) > 1 else math.inf)

    columns = [np.ones(n)]
    for k in range(len(params)):
        step = 1e-4 if k == 0 else 1e-3
        up, down = list(params), list(params)
        up[k] += step
        down[k] -= step
        columns.append((heights(up) - heights(down)) / (2 * step))
    jacobian = np.stack(columns, axis=1)
    dof = max(1, n - jacobian.shape[1])
    sigma2 = rms**2 * n / dof
    covariance = np.linalg.pinv(jacobian.T @ jacobian) * sigma2
    return float(math.sqrt(max(covariance[0, 0], 0.0)))


def fit_fall(
    points: TrackPoints,
    rules: FallRulesConfig,
    *,
    ground_h_m: float = 0.0,
    max_unseen_s: float = 3.0,
    view: ViewGeometry | None = None,
) -> FallFit:
    """Fit ``points`` to a fall and apply the rules; ``accepted`` with reason "fall" or the first rule failed.

    With ``view``, a track the plain fit refuses for a reason an outward toss explains (OUTWARD_REASONS)
    is fitted again as an object moving towards the camera at a constant outward speed slowed by the
    same drag (``_toward_camera``); the rules then judge its heights on the planes it really crossed.
    """
    plain = _fit_plain(points, rules, ground_h_m=ground_h_m, max_unseen_s=max_unseen_s)
    if plain.accepted or view is None or plain.reason not in OUTWARD_REASONS or len(points.t) < 4:
        return plain
    if len(points.t) < 2 * rules.min_track_frames or _reversals(points) > 1:
        return plain  # too short to tell a toss from a wobble, or it swings (laundry, a bird turning)
    h = points.h[np.argsort(points.t)]
    if float(np.median(h[:3]) - np.median(h[-3:])) < rules.min_drop_m / 3:
        # A toss ends lower in the picture than it began, too: a track that does not came straight at
        # the lens or climbed (a bird), and an outward speed would explain any such track away.
        return plain
    unseen_s = min(max_unseen_s, _OUTWARD_UNSEEN_S)
    corrected, outward = _toward_camera(points, view, unseen_s)
    if corrected is None:
        return plain
    tossed = _fit_plain(
        corrected, rules, ground_h_m=ground_h_m, max_unseen_s=unseen_s, latest_release_s=_OUTWARD_APEX_S
    )
    if not tossed.accepted or tossed.residual_m > _OUTWARD_RESIDUAL_FRACTION * rules.max_residual_m:
        return plain
    return replace(tossed, outward_mps=outward)


def _reversals(points: TrackPoints, pieces: int = 6, noise_m: float = 0.3) -> int:
    """How often the track's height turns between going up and going down, piece by piece (a toss turns
    at most once: up to its apex, then down)."""
    order = np.argsort(points.t)
    means = [float(np.mean(part)) for part in np.array_split(points.h[order], pieces) if len(part)]
    signs = [math.copysign(1.0, b - a) for a, b in pairwise(means) if abs(b - a) > noise_m]
    return sum(1 for a, b in pairwise(signs) if a != b)


def _gudermann(z: FloatArray) -> FloatArray:
    return 2.0 * np.arctan(np.tanh(z / 2.0))


def _outward_m(tau: FloatArray, vt: FloatArray, speed: float) -> FloatArray:
    """Distance moved away from the facade ``tau`` s after release at ``speed`` m/s: quadratic drag, with
    the speed mostly vertical, slows it by ``sech(g tau / vt)``, whose integral is the Gudermannian."""
    tau = np.maximum(tau, 0.0)
    finite = np.isfinite(vt)
    safe_vt = np.where(finite, vt, 1.0)
    return speed * np.where(finite, safe_vt / G * _gudermann(G * tau / safe_vt), tau)


def _toward_camera(
    points: TrackPoints, view: ViewGeometry, max_unseen_s: float
) -> tuple[TrackPoints | None, float]:
    """The track's positions on the planes an object tossed outwards crossed, and its outward speed.

    Searched on a coarse grid (outward speed, terminal velocity, release time) by the height residual in
    the track's own plane (where the measurement noise is), the release height in closed form.
    """
    order = np.argsort(points.t)
    t, x, h = _trim_still_start(points.t[order], points.x[order], points.h[order])
    distance, d0 = view.camera_distance_m, view.plane_distance_m
    pick = np.unique(np.linspace(0, len(t) - 1, min(len(t), _OUTWARD_POINTS)).round().astype(int))
    ts = t - t[0]
    ts_s, rise_s = ts[pick], h[pick] - view.camera_height_m
    last_release = min(float(ts[-1]), _OUTWARD_APEX_S)
    release_ts = np.arange(-max_unseen_s, last_release + _OUTWARD_STEP_S / 2, _OUTWARD_STEP_S / 2)
    vts = _OUTWARD_VT_GRID[:, None, None]
    tau = ts_s[None, None, :] - release_ts[None, :, None]
    dist = fall_distance(tau, vts)
    best = (math.inf, 0.0, 0.0, math.inf)
    for speed in _OUTWARD_MPS:
        scale = (distance - d0 - _outward_m(tau, vts, float(speed))) / (distance - d0)
        weight = 1.0 / np.maximum(scale, 0.05) ** 2
        r = view.camera_height_m + rise_s * scale + dist
        release_h = (weight * r).sum(axis=2) / weight.sum(axis=2)
        sse = (weight * (r - release_h[..., None]) ** 2).sum(axis=2)
        sse[(scale < 0.1).any(axis=2)] = math.inf  # it would have passed the camera
        k = int(np.argmin(sse))
        if sse.flat[k] < best[0]:
            a, b = np.unravel_index(k, sse.shape)
            best = (float(sse.flat[k]), float(speed), float(release_ts[b]), float(_OUTWARD_VT_GRID[a]))
    if not math.isfinite(best[0]):
        return None, 0.0
    _, speed, release_t, vt = best
    scale = (distance - d0 - _outward_m(ts - release_t, np.asarray(vt), speed)) / (distance - d0)
    h_on = view.camera_height_m + (h - view.camera_height_m) * scale
    x_on = x if view.camera_x_m is None else view.camera_x_m + (x - view.camera_x_m) * scale
    return TrackPoints(t=t, x=x_on, h=h_on), speed


def _fit_plain(
    points: TrackPoints,
    rules: FallRulesConfig,
    *,
    ground_h_m: float,
    max_unseen_s: float,
    latest_release_s: float = math.inf,
) -> FallFit:
    """The fit and the rules on the track's own plane; the release searched from ``max_unseen_s`` before
    the first point to ``latest_release_s`` after it (or the last point)."""
    order = np.argsort(points.t)
    t, x, h = points.t[order], points.x[order], points.h[order]
    n = len(t)
    if n < rules.min_track_frames or (t[-1] - t[0]) < rules.min_duration_s:
        return FallFit(False, "too_few_frames", n)
    extent = math.hypot(float(np.ptp(x)), float(np.ptp(h)))
    if extent < max(rules.min_drop_m / 2, 4 * rules.max_residual_m):
        return FallFit(False, "stationary", n)
    t, x, h = _trim_still_start(t, x, h)
    t, x, h, stopped = _trim_stop(t, x, h)
    n = len(t)
    if n < rules.min_track_frames or (t[-1] - t[0]) < rules.min_duration_s:
        return FallFit(False, "too_few_frames", n)
    drop = float(np.median(h[:3]) - np.median(h[-3:]))
    if drop < -rules.max_residual_m:
        return FallFit(False, "climbing", n)
    if drop < rules.min_drop_m:
        return FallFit(False, "not_falling", n)

    t0 = float(t[0])
    ts = t - t0
    quad, quad_cov = np.polyfit(ts, h, 2, cov="unscaled")
    quad_resid = h - np.polyval(quad, ts)
    quad_sigma2 = float((quad_resid**2).sum()) / max(1, n - 3)
    quad_accel = -2.0 * float(quad[0])
    quad_se = 2.0 * math.sqrt(max(float(quad_cov[0, 0]) * quad_sigma2, 0.0))

    release_t, release_h, vt, rms = _fit_drag(ts, h, -max_unseen_s, min(float(ts[-1]), latest_release_s))
    # x drifts smoothly (lateral drag only slows it): jitter about a quadratic is flutter or a bird's turns.
    x_fit = np.polyfit(ts, x, 2 if n >= 6 else 1)
    jitter = float(np.sqrt(np.mean((x - np.polyval(x_fit, ts)) ** 2)))
    lateral_speed = float(np.median(np.abs(np.polyval(np.polyder(x_fit), ts))))
    tau_first = 0.0 - release_t
    if tau_first <= 0 or math.isinf(vt):
        start_accel = G
    else:
        start_accel = G / math.cosh(min(G * tau_first / vt, 350.0)) ** 2
    if release_t >= 0:
        release_x = float(np.polyval(x_fit, release_t))
    else:  # before the first point: extrapolate linearly (a quadratic would overshoot)
        slope = float(np.polyval(np.polyder(x_fit), 0.0))
        release_x = float(np.polyval(x_fit, 0.0)) + slope * release_t
    sigma = _release_sigma(ts, release_t, release_h, vt, rms)

    common = dict(
        frames=n,
        release_t=release_t + t0,
        release_h_m=release_h,
        release_x_m=release_x,
        release_sigma_m=sigma,
        terminal_velocity_mps=vt,
        start_accel_mps2=start_accel,
        quad_accel_mps2=quad_accel,
        quad_accel_se_mps2=quad_se,
        residual_m=rms,
        lateral_jitter_m=jitter,
        lateral_speed_mps=lateral_speed,
    )
    reason = "fall"
    if quad_accel - 2.0 * quad_se > rules.max_accel_fraction * G:
        reason = "faster_than_gravity"  # (the drag model cannot follow it either: checked first to say so)
    elif rms > rules.max_residual_m:
        reason = "erratic"
    elif jitter > rules.max_lateral_jitter_m:
        reason = "fluttering"
    elif lateral_speed > rules.max_lateral_speed_mps:
        reason = "lateral"
    elif vt < rules.min_terminal_velocity_mps:
        reason = "floating"
    elif start_accel < rules.min_accel_fraction * G or quad_accel - 2.0 * quad_se <= 0:
        # The start must accelerate by the fit, and the track as a whole must bend downwards for real
        # (a steady descent fits "released just before it was seen" too, without any curvature in the data).
        reason = "not_accelerating"
    if reason != "fall":
        return FallFit(False, reason, **common)  # type: ignore[arg-type]

    impact_t, impact_h, impact = float(ts[-1]), float(h[-1]), "stopped"
    if not stopped and release_h > ground_h_m:
        # Not seen to stop: it left the frame, went behind a canopy or reached the ground in view; the
        # fitted fall says when it reached the ground (before or after the last point).
        drop_to_ground = release_h - ground_h_m
        if math.isinf(vt):
            tau = math.sqrt(2 * drop_to_ground / G)
        else:
            tau = vt / G * math.acosh(math.exp(min(G * drop_to_ground / vt**2, 700.0)))
        impact_t, impact_h, impact = release_t + tau, ground_h_m, "ground"
    impact_x = float(np.polyval(x_fit, ts[-1])) + float(np.polyval(np.polyder(x_fit), ts[-1])) * (
        impact_t - float(ts[-1])
    )
    # Confidence: how well the physics fits and how clearly the start accelerates, each in 0..1.
    fit_quality = max(0.0, 1.0 - rms / rules.max_residual_m)
    accel_margin = (start_accel / G - rules.min_accel_fraction) / (1.0 - rules.min_accel_fraction)
    length = min(1.0, n / (2.0 * rules.min_track_frames))
    confidence = round(max(0.0, min(1.0, 0.4 * fit_quality + 0.4 * min(1.0, accel_margin) + 0.2 * length)), 3)
    return FallFit(
        True,
        "fall",
        impact_t=impact_t + t0,
        impact_h_m=impact_h,
        impact_x_m=impact_x,
        impact=impact,
        confidence=confidence,
        **common,  # type: ignore[arg-type]
    )


def _trim_still_start(
    t: FloatArray, x: FloatArray, h: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cut a still head (the track began on a light or a flower pot before it fell): keep its last point,
    the moment the fall began. Still: within ``_STILL_M`` of it for ``_STILL_HEAD_S`` or longer (a fall
    from rest leaves that circle sooner)."""
    k = 0
    while k + 1 < len(t) - 2 and np.all(np.hypot(x[: k + 2] - x[k + 1], h[: k + 2] - h[k + 1]) < _STILL_M):
        k += 1
    if t[k] - t[0] < _STILL_HEAD_S:
        return t, x, h
    return t[k:], x[k:], h[k:]


def _trim_stop(
    t: FloatArray, x: FloatArray, h: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, bool]:
    """Cut the still tail of a track that came to rest (landed on a canopy): keep its first still point.

    Still means the last ``_STILL_POINTS`` or more points lie within ``_STILL_M`` of the final one; fewer
    could be noise on a fast track's last frames."""
    end = len(t)
    while end > 2 and math.hypot(x[end - 2] - x[-1], h[end - 2] - h[-1]) < _STILL_M:
        end -= 1
    if len(t) - end < _STILL_POINTS:
        return t, x, h, False
    return t[:end], x[:end], h[:end], True
