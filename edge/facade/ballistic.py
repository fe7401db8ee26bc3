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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.facade.config import FallRulesConfig

G = 9.81
FloatArray = np.ndarray

# Coarse grid of terminal velocities (m/s): leaves ~1, a cigarette pack ~9, a bottle ~30, a brick ~60.
_VT_GRID = np.concatenate([np.geomspace(0.8, 150.0, 24), [np.inf]])
_COARSE_STEP_S = 0.08
_COARSE_POINTS = 24  # the coarse grid sees at most this many points (evenly spread); the zoom all given
_STILL_M = 0.3
_STILL_POINTS = 3
_STILL_HEAD_S = 0.4
BLOB_WOBBLE = 0.15  # pixels of centroid wobble allowed per pixel of blob size (sqrt of the area)


@dataclass(frozen=True, slots=True)
class TrackPoints:
    """A track in facade coordinates: times (s), x across (m), height (m); ``shaky`` flags camera motion."""

    t: FloatArray
    x: FloatArray
    h: FloatArray
    # Vertical metres per image pixel at each point (None: residuals are judged in metres only).
    scale: FloatArray | None = None
    size_px: float = 0.0  # median blob area, pixels

    def __post_init__(self) -> None:
        if not (len(self.t) == len(self.x) == len(self.h)):
            raise ValueError("t, x and h must have the same length")
        if self.scale is not None and len(self.scale) != len(self.t):
            raise ValueError("scale must have one value per point")


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
    residual_px: float = math.nan  # the same residual in image pixels (with the points' scale)
    explained: float = math.nan  # share of the apparent height's variance the fit explains (R^2)
    coverage: float = math.nan  # share of the frames over the fitted span that have a point
    release_depth_m: float = 0.0  # from the object plane, towards the camera (0 without a camera)
    outward_speed_mps: float = 0.0  # towards the camera at release

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
    full_t, full_h = t, h
    pick = _subsample(len(t), _COARSE_POINTS)
    t, h = full_t[pick], full_h[pick]
    sse, _ = sse_grid(release_ts, _VT_GRID)
    t, h = full_t, full_h
    # The best release time for each terminal velocity; zoom in on the three best of those (separate basins:
    # "released just before the first point" and "long at terminal velocity" can both fit a steady descent).
    best_per_vt = sse.min(axis=1)
    best = (math.inf, 0.0, 0.0, math.inf)
    for i in np.argsort(best_per_vt)[:3]:
        t_r, vt = float(release_ts[int(np.argmin(sse[i]))]), float(_VT_GRID[i])
        step_t, log_step = _COARSE_STEP_S, math.log(1.25)
        for _ in range(5):
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


def _release_sigma(
    ts: FloatArray, h: FloatArray, model: _Model, camera: CameraGeometry | None, rms: float
) -> float:
    """Standard error of the release height from the fit's Jacobian (numerical), scaled by the residual;
    with a camera the release depth (and its prior) widens it."""
    n = len(ts)
    free = [0, 1] if model.w > 1e-9 else [0]
    if camera is not None:
        free += [2, 3]
    base = camera.height_m if camera is not None else 0.0
    p0 = model.vector()
    release_h, _, _ = _solve(ts, h, model, camera)

    def heights(p: FloatArray, release: float) -> FloatArray:
        candidate = _Model(*p)
        m = _magnification(ts, candidate, camera)
        return base + (release - base - fall_distance(ts - candidate.release_t, candidate.vt)) * m

    reference = heights(p0, release_h)
    columns = [heights(p0, release_h + 1e-3) - reference]
    for k in free:
        step = 1e-4 if k == 0 else 1e-3
        q = p0.copy()
        q[k] += step
        columns.append((heights(q, release_h) - reference) * (1e-3 / step))
    jacobian = np.stack(columns, axis=1) / 1e-3
    dof = max(1, n - jacobian.shape[1])
    sigma2 = rms**2 * n / dof
    information = jacobian.T @ jacobian / sigma2
    if camera is not None:  # the depth prior
        information[free.index(2) + 1, free.index(2) + 1] += 1.0 / _DEPTH_SIGMA_M**2
    covariance = np.linalg.pinv(information)
    return float(math.sqrt(max(covariance[0, 0], 0.0)))


@dataclass(frozen=True, slots=True)
class CameraGeometry:
    """Where the camera stands relative to the plane the track's positions are measured on (the
    calibration's object plane): an object ``z`` metres nearer the camera than that plane shows
    ``D / (D - z)`` times further from the camera's foot point ``(x_m, height_m)`` than it is."""

    distance_m: float  # camera to the object plane
    height_m: float  # lens height
    x_m: float | None = None  # facade x in front of which it stands (None: x is not metric there)


# The depth fit: release depth from the object plane and speed towards the camera, both bounded.
_DEPTH_RANGE_M = (-0.5, 1.5)
_DEPTH_SIGMA_M = 0.7  # prior: most objects leave within an arm's length of the object plane
_MAX_OUTWARD_MPS = 6.0
_MAX_W = 1.0 / 0.8  # 1 / slowest terminal velocity on the grid
_LM_ITERATIONS = 15
_GOOD_ENOUGH_M = 0.15  # a refined planar start this close (rms) needs no other start
_LM_POINTS = 32  # the search runs on at most this many points (evenly spread); the result on all


@dataclass(frozen=True, slots=True)
class _Model:
    """One candidate trajectory: release time, 1 / terminal velocity, release depth, speed outwards."""

    release_t: float
    w: float
    depth_m: float = 0.0
    outward_mps: float = 0.0

    @property
    def vt(self) -> float:
        return 1.0 / self.w if self.w > 1e-9 else math.inf

    def vector(self) -> FloatArray:
        return np.array([self.release_t, self.w, self.depth_m, self.outward_mps])


def _batch(
    ts: FloatArray, h: FloatArray, params: FloatArray, camera: CameraGeometry | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """For each row of ``params`` (release time, 1/vt, depth, speed outwards): (release heights,
    residuals, magnifications). The release height enters linearly and is solved in closed form; the
    magnification is how much further from the camera's foot point the object shows than it is."""
    release_t, w = params[:, 0:1], params[:, 1:2]
    tau = ts[None, :] - release_t
    vt = np.where(w > 1e-9, 1.0 / np.maximum(w, 1e-9), np.inf)
    dropped = fall_distance(tau, vt)
    if camera is None:
        m = np.ones_like(tau)
        base = 0.0
    else:
        base = camera.height_m
        outward, depth0 = params[:, 3:4], params[:, 2:3]
        ahead = np.maximum(tau, 0.0)
        k = G * w * w  # quadratic drag slows the outward flight as it does the fall
        slow = k * outward
        travel = np.where(slow < 1e-9, outward * ahead, np.log1p(slow * ahead) / np.maximum(k, 1e-12))
        depth = np.minimum(depth0 + travel, 0.9 * camera.distance_m)
        m = camera.distance_m / (camera.distance_m - depth)
    target = h[None, :] - base + dropped * m  # = (release_h - base) * m for a perfect fit
    above = (m * target).sum(axis=1) / (m * m).sum(axis=1)
    return above + base, target - above[:, None] * m, m


def _solve(
    ts: FloatArray, h: FloatArray, model: _Model, camera: CameraGeometry | None
) -> tuple[float, FloatArray, FloatArray]:
    """(release height, residuals, magnification) of one model."""
    release, residual, m = _batch(ts, h, model.vector()[None, :], camera)
    return float(release[0]), residual[0], m[0]


def _magnification(ts: FloatArray, model: _Model, camera: CameraGeometry | None) -> FloatArray:
    return _solve(ts, np.zeros_like(ts), model, camera)[2]


def _refine(
    ts: FloatArray, h: FloatArray, start: _Model, camera: CameraGeometry, bounds: tuple[FloatArray, FloatArray]
) -> tuple[_Model, float]:
    """Levenberg-Marquardt over (release time, 1/vt, depth, speed outwards) from ``start``; SSE with the
    depth prior. Finite-difference Jacobian, the five evaluations in one batch."""
    low, high = bounds
    prior = max(float(np.std(h)) * 0.02, 0.05) / _DEPTH_SIGMA_M  # the prior's weight, metres of residual

    def residuals(rows: FloatArray) -> FloatArray:
        _, r, _ = _batch(ts, h, rows, camera)
        return np.concatenate([r, prior * rows[:, 2:3]], axis=1)

    steps = np.array([1e-3, 1e-3, 1e-2, 1e-2])
    p = start.vector()
    r = residuals(p[None, :])[0]
    cost = float(r @ r)
    damping = 1e-2
    for _ in range(_LM_ITERATIONS):
        signed = np.where(p + steps <= high, steps, -steps)
        rows = np.vstack([p, p + np.diag(signed)])
        evaluated = residuals(rows)
        jacobian = ((evaluated[1:] - evaluated[0]) / signed[:, None]).T
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ r
        improved = False
        for _attempt in range(6):
            try:
                delta = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-9), -gradient)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            q = np.clip(p + delta, low, high)
            r_new = residuals(q[None, :])[0]
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                relative = (cost - cost_new) / max(cost, 1e-12)
                p, r, cost = q, r_new, cost_new
                damping = max(damping / 3, 1e-7)
                improved = relative > 1e-3
                break
            damping *= 4
        if not improved:
            break
    return _Model(*p), cost


def _subsample(n: int, limit: int) -> FloatArray:
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))


def _fit_3d(
    ts: FloatArray, h: FloatArray, camera: CameraGeometry | None, t_lo: float
) -> tuple[_Model, float, float]:
    """(model, release height, rms): the planar grid fit, then (with a camera) depth refinements."""
    pick = _subsample(len(ts), _LM_POINTS)
    release_t, _release_h, vt, _rms = _fit_drag(ts[pick], h[pick], t_lo, float(ts[-1]))
    best = _Model(release_t, 0.0 if math.isinf(vt) else 1.0 / vt)
    if camera is not None:
        low = np.array([t_lo, 0.0, _DEPTH_RANGE_M[0], 0.0])
        high = np.array([float(ts[-1]), _MAX_W, _DEPTH_RANGE_M[1], _MAX_OUTWARD_MPS])
        # From the planar fit; when that leaves much unexplained, also from a toss towards the camera
        # (whose picture may even climb at first).
        candidates = [_refine(ts[pick], h[pick], best, camera, (low, high))]
        if candidates[0][1] > (_GOOD_ENOUGH_M**2) * len(pick):
            for start in (_Model(release_t, best.w, 0.5, 2.5), _Model(min(release_t, 0.0), 0.05, 0.5, 4.0)):
                candidates.append(_refine(ts[pick], h[pick], start, camera, (low, high)))
        best = min(candidates, key=lambda candidate: candidate[1])[0]
    release_h, residual, _ = _solve(ts, h, best, camera)
    return best, release_h, float(np.sqrt(np.mean(residual**2)))


def fit_fall(
    points: TrackPoints,
    rules: FallRulesConfig,
    *,
    ground_h_m: float = 0.0,
    max_unseen_s: float = 3.0,
    camera: CameraGeometry | None = None,
) -> FallFit:
    """Fit ``points`` to a fall and apply the rules; ``accepted`` with reason "fall" or the first rule failed.

    With ``camera`` the object may also fly towards the camera (tossed out), which the picture shows as
    a slower fall, a curve, or even a climb at first: the fit then has two more unknowns, the release
    depth and the outward speed, and the rules judge the de-magnified heights (the object's own)."""
    order = np.argsort(points.t)
    t, x, h = points.t[order], points.x[order], points.h[order]
    scale = points.scale[order] if points.scale is not None else np.full(len(t), math.nan)
    n = len(t)
    if n < rules.min_track_frames or (t[-1] - t[0]) < rules.min_duration_s:
        return FallFit(False, "too_few_frames", n)
    steps = np.diff(t)
    frame_s = float(steps[steps > 1e-6].min()) if (steps > 1e-6).any() else 1.0
    extent = math.hypot(float(np.ptp(x)), float(np.ptp(h)))
    if extent < max(rules.min_drop_m / 2, 2 * rules.max_residual_m):
        return FallFit(False, "stationary", n)
    head = len(t)
    t, x, h = _trim_still_start(t, x, h)
    scale = scale[head - len(t) :]
    t, x, h, stopped = _trim_stop(t, x, h)
    scale = scale[: len(t)]
    n = len(t)
    if n < rules.min_track_frames or (t[-1] - t[0]) < rules.min_duration_s:
        return FallFit(False, "too_few_frames", n)
    apparent_drop = float(np.median(h[:3]) - np.median(h[-3:]))
    if camera is None:
        if apparent_drop < -rules.max_residual_m:
            return FallFit(False, "climbing", n)
        if apparent_drop < rules.min_drop_m:
            return FallFit(False, "not_falling", n)
    t0 = float(t[0])
    ts = t - t0
    # Cheap before the fit: whatever falls moves smoothly; a low polynomial follows it closely.
    smooth = np.polyfit(ts, h, min(4, n - 4))
    if float(np.sqrt(np.mean((h - np.polyval(smooth, ts)) ** 2))) > 2 * rules.max_residual_m:
        return FallFit(False, "erratic", n)

    model, release_h, rms = _fit_3d(ts, h, camera, -max_unseen_s)
    _, residual, _ = _solve(ts, h, model, camera)
    rms_px = float(np.sqrt(np.nanmean((residual / scale) ** 2))) if np.isfinite(scale).all() else math.nan
    coverage = n / (float(ts[-1]) / frame_s + 1.0)
    spread = float(np.sum((h - h.mean()) ** 2))
    explained = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else 0.0
    release_t, vt = model.release_t, model.vt
    m = _magnification(ts, model, camera)
    # The object's own heights and x, de-magnified (the same as observed without a camera).
    base_h = camera.height_m if camera is not None else 0.0
    y = base_h + (h - base_h) / m
    base_x = camera.x_m if camera is not None and camera.x_m is not None else None
    own_x = x if base_x is None else base_x + (x - base_x) / m
    drop = float(np.median(y[:3]) - np.median(y[-3:]))

    quad, quad_cov = np.polyfit(ts, y, 2, cov="unscaled")
    quad_resid = y - np.polyval(quad, ts)
    quad_sigma2 = float((quad_resid**2).sum()) / max(1, n - 3)
    quad_accel = -2.0 * float(quad[0])
    quad_se = 2.0 * math.sqrt(max(float(quad_cov[0, 0]) * quad_sigma2, 0.0))

    # x drifts smoothly (lateral drag only slows it): jitter about a quadratic is flutter or a bird's turns.
    x_fit = np.polyfit(ts, own_x, 2 if n >= 6 else 1)
    jitter = float(np.sqrt(np.mean((own_x - np.polyval(x_fit, ts)) ** 2)))
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
    sigma = _release_sigma(ts, h, model, camera, rms)

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
        residual_px=rms_px,
        explained=explained,
        coverage=coverage,
        release_depth_m=model.depth_m,
        outward_speed_mps=model.outward_mps,
    )
    # A big blob's centroid wobbles more (it tumbles, and windows and railings cut into it).
    residual_px_limit = rules.max_residual_px + BLOB_WOBBLE * math.sqrt(points.size_px) if points.size_px else rules.max_residual_px
    reason = "fall"
    if quad_accel - 2.0 * quad_se > rules.max_accel_fraction * G:
        reason = "faster_than_gravity"  # (the drag model cannot follow it either: checked first to say so)
    elif rms > rules.max_residual_m or rms_px > residual_px_limit or explained < rules.min_explained:
        reason = "erratic"
    elif coverage < rules.min_coverage:
        reason = "gappy"
    elif drop < -rules.max_residual_m:
        reason = "climbing"
    elif drop < rules.min_drop_m:
        reason = "not_falling"
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

    impact_t, impact_h, impact = float(ts[-1]), float(y[-1]), "stopped"
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
