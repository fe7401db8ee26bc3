"""``citywatch device check DEVICE_ID``: the commissioning report on site, from the gateway's view.

Each line passes or fails and says what to do: provisioned, online, session (its birth accepted),
clock, config (the desired version is the one it runs), telemetry at the expected rate, and by kind:
frames flowing (cameras, from their health telemetry), plausible readings (culverts: valid level
samples, none below the road), and on request the actuator test (door-hold relay and voice, through
the ``test_actuators`` command). ``--json`` gives the same for the installer's app; any failure makes
the command exit 1.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from edge.installer.api import ApiError, GatewayApi

CAMERA_KINDS = ("elevator", "facade", "street")


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def render(self) -> str:
        text = f"{'PASS' if self.ok else 'FAIL'}  {self.name:<12} {self.detail}"
        return text + (f"\n      -> {self.fix}" if self.fix and not self.ok else "")


@dataclass
class Commissioning:
    device_id: str
    lines: list[Line] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines)

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> None:
        self.lines.append(Line(name, ok, detail, fix))

    def as_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "ok": self.ok, "checks": [asdict(line) for line in self.lines]}

    def render(self) -> str:
        verdict = "commissioned" if self.ok else f"{sum(not line.ok for line in self.lines)} check(s) failed"
        return "\n".join([*(line.render() for line in self.lines), f"{self.device_id}: {verdict}"])


@dataclass(frozen=True, slots=True)
class CheckWindow:
    """How far back telemetry counts, and what rate is expected (one health message per interval)."""

    window_s: float = 600.0
    health_interval_s: float = 300.0
    clock_tolerance_s: float = 30.0


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def commission(
    api: GatewayApi,
    device_id: str,
    *,
    window: CheckWindow = CheckWindow(),
    actuators: bool = False,
    now: datetime | None = None,
) -> Commissioning:
    report = Commissioning(device_id)
    try:
        device = api.get(f"/devices/{device_id}")
    except ApiError as exc:
        if exc.status == 404:
            report.add(
                "provisioned",
                False,
                "the gateway does not know this device",
                f"provision it: citywatch gateway devices add {device_id} --site SITE --type KIND",
            )
        else:
            report.add("gateway", False, exc.text, "check the gateway address and the token")
        return report
    now = now or datetime.now(UTC)
    kind = device["device_type"]
    report.add("provisioned", True, f"{kind} at site {device['site']}")
    _presence(report, device, now)
    _clock(report, api, device, now, window)
    _config(report, device)
    since = now - timedelta(seconds=window.window_s)
    health = _series(api, device_id, "health", "rss_mb", since, now)
    # Counted from the later of the window's start and the current session's birth (a device just
    # powered on has not had the whole window), with a fifth of slack for timers and transit.
    born = _parse(device.get("presence_changed_at")) if device.get("online") else None
    span_s = (now - max(since, born)).total_seconds() if born else window.window_s
    expected = max(1, int(span_s * 0.8 // window.health_interval_s))
    report.add(
        "telemetry",
        len(health) >= expected,
        f"{len(health)} health report(s) in the last {span_s:.0f} s (expected >= {expected})",
        "the agent is not reporting: check its log (journalctl -u citywatch) and its outbox depth",
    )
    if kind in CAMERA_KINDS:
        fps = _series(api, device_id, "health", "fps_in", since, now)
        last = fps[-1] if fps else None
        report.add(
            "frames",
            last is not None and last > 0,
            f"{last:g} frames/s coming in" if last is not None else "no frame rate reported",
            "the camera sends no frames: check its power, cable or stream URL (config check --online)",
        )
    elif kind == "culvert":
        _readings(report, api, device_id, since, now)
    if actuators:
        _actuators(report, api, device_id)
    return report


def _presence(report: Commissioning, device: dict[str, Any], now: datetime) -> None:
    presence = device["presence"]
    last_seen = _parse(device.get("last_seen"))
    seen = f"last heard {(now - last_seen).total_seconds():.0f} s ago" if last_seen else "never heard from"
    report.add(
        "online",
        presence == "online",
        f"{presence}, {seen}",
        "power it, check its network and broker address (its log says why it cannot connect)",
    )
    report.add(
        "session",
        bool(device.get("online")) and device.get("session", 0) >= 1,
        f"session {device.get('session')} since {device.get('session_started_at') or '?'}"
        + ("" if device.get("online") else ": no accepted birth"),
        "its birth was refused or never came: check the refusals in GET /devices/{id} and its clock",
    )


def _clock(
    report: Commissioning, api: GatewayApi, device: dict[str, Any], now: datetime, window: CheckWindow
) -> None:
    try:
        health = api.get("/health")
    except ApiError:
        health = {}
    clocks = health.get("device_clocks") or {}
    listed = any(entry.get("device_id") == device["id"] for entry in clocks.get("off", []))
    last_seen = _parse(device.get("last_seen"))
    ahead = (last_seen - now).total_seconds() if last_seen else 0.0
    report.add(
        "clock",
        not listed and ahead <= window.clock_tolerance_s,
        "in sync with the gateway"
        if not listed and ahead <= window.clock_tolerance_s
        else f"its messages are timestamped {ahead:.0f} s ahead of the gateway"
        if ahead > 0
        else "the gateway refuses its messages for their time",
        "set its clock (NTP: timedatectl set-ntp true) and restart the agent",
    )


def _config(report: Commissioning, device: dict[str, Any]) -> None:
    desired, reported = device.get("desired_config_version"), device.get("config_version")
    if desired is None:
        report.add(
            "config",
            reported is not None,
            f"runs config {reported} (none pushed through the gateway)",
            "no config version reported: is its birth accepted?",
        )
        return
    report.add(
        "config",
        desired == reported,
        f"runs {reported}, desired {desired}",
        "it did not take the pushed config: read its ack in GET /devices/{id}/audit, fix and push again",
    )


def _series(
    api: GatewayApi, device_id: str, measurement: str, name: str, start: datetime, stop: datetime
) -> list[float]:
    query = urlencode(
        {"measurement": measurement, "field": name, "start": start.isoformat(), "stop": stop.isoformat()}
    )
    try:
        points = api.get(f"/devices/{device_id}/telemetry?{query}")
    except ApiError:
        return []
    return [float(point["value"]) for point in points]


def _readings(
    report: Commissioning, api: GatewayApi, device_id: str, start: datetime, stop: datetime
) -> None:
    valid = _series(api, device_id, "water_level", "valid", start, stop)
    levels = _series(api, device_id, "water_level", "level_cm", start, stop)
    good = sum(1 for v in valid if v >= 1)
    plausible = bool(valid) and good == len(valid) and all(-5.0 <= level <= 300.0 for level in levels)
    shown = f"levels {min(levels):.1f}..{max(levels):.1f} cm" if levels else "no level"
    report.add(
        "readings",
        plausible,
        f"{good}/{len(valid)} valid sample report(s), {shown}",
        "the sensor reads nothing usable: check its aim (nothing under it), mount_height_mm and the cable",
    )


def _actuators(report: Commissioning, api: GatewayApi, device_id: str, timeout_s: float = 15.0) -> None:
    try:
        sent = api.post(f"/devices/{device_id}/cmd", {"command": "test_actuators", "args": {"hold_s": 1.0}})
    except ApiError as exc:
        report.add("actuators", False, exc.text, "the gateway could not send the test: is it connected?")
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        trail = api.get(f"/devices/{device_id}/audit?limit=50")
        ack = next((e for e in trail if e["action"] == "ack" and e["cmd_id"] == sent["cmd_id"]), None)
        if ack is not None:
            report.add(
                "actuators",
                ack["note"].startswith("ok"),
                ack["note"],
                "check the relay and voice module wiring and the GPIO pins in the config",
            )
            return
        time.sleep(0.5)
    report.add("actuators", False, f"no answer to the test within {timeout_s:g} s", "is the agent running?")
