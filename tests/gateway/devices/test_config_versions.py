"""Desired vs reported config versions, through a real gateway, Mosquitto and an agent booted from a
bundle: `citywatch config push` signs at the desk, the gateway relays and records; a device stuck on
another version opens a config_drift event, which ends when it runs the desired one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from citywatch.protocol.messages import config_version
from edge.agent import build_agent
from edge.config import load_config
from edge.installer import keys
from edge.installer.api import GatewayApi
from edge.installer.bundle import load_bundle
from edge.installer.document import device_document, signed_message
from edge.installer.flash import flash
from edge.installer.live import LiveAgent
from edge.installer.push import push, request_body
from gateway.auth.roles import Role
from gateway.devices.monitor import PresenceOptions
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.edge.installer.helpers import desk_config, site_keys
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.devices.test_devices_presence import MovableClock
from tests.gateway.tokens import api_client, issue_token
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway and an agent per test

DEVICE = "culvert-1"
DRIFT_AFTER_S = 120.0


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def gateway(gateway_settings: Settings, clock: MovableClock) -> Iterator[GatewayApp]:
    settings = gateway_settings.model_copy(
        update={"CONFIG_DRIFT_AFTER_S": DRIFT_AFTER_S, "DEVICE_OFFLINE_AFTER_S": 86_400.0}
    )
    app = GatewayApp(
        settings, delivery=FAST_RETRIES, presence=PresenceOptions(check_every_s=0.05, clock=clock)
    )
    yield from running_with_devices(app)


@pytest.fixture
def installer(gateway: GatewayApp) -> Iterator[httpx.Client]:
    with api_client(gateway, Role.INSTALLER) as client:
        yield client


@pytest.fixture
def agent(
    gateway: GatewayApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, LiveAgent]]:
    """culvert-1 booted from a flashed bundle, running as `citywatch edge run --bundle` does."""
    site_keys(tmp_path / "keys", SITE)
    desk = desk_config(tmp_path / "desk" / "c.yaml", gateway.settings.MQTT_URL, device_id=DEVICE, site=SITE)
    flash(desk, tmp_path / "card", keys.signing_keys(SITE, tmp_path / "keys"))
    boot = load_bundle(tmp_path / "card")
    monkeypatch.chdir(tmp_path / "card")
    live = LiveAgent(boot.config, build=build_agent, boot=boot).start()
    stop = threading.Event()
    restarts = threading.Thread(target=live.run_until, args=(stop,), daemon=True)
    restarts.start()
    try:
        yield desk, live
    finally:
        stop.set()
        restarts.join(10)
        live.stop()


def _device(client: httpx.Client) -> dict[str, Any]:
    device: dict[str, Any] = client.get(f"/devices/{DEVICE}").json()
    return device


def _drift_events(client: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/events", params={"type": "config_drift"}).json()["items"]
    return items


def test_desired_and_reported_versions_and_config_drift(
    gateway: GatewayApp,
    installer: httpx.Client,
    agent: tuple[Path, LiveAgent],
    clock: MovableClock,
    tmp_path: Path,
) -> None:
    desk, live = agent
    flashed = live.config.version
    wait_until(lambda: _device(installer)["config_version"] == flashed, what="the birth's version")
    device = _device(installer)
    assert (
        len(flashed) == 12 and device["desired_config_version"] is None and device["config_in_sync"] is None
    )

    # Pushed from the desk (signed), relayed by the gateway, applied live: desired == reported.
    api = GatewayApi(gateway.url, issue_token(gateway, Role.INSTALLER))
    desk_config(desk, gateway.settings.MQTT_URL, notice_cm=10.0, device_id=DEVICE, site=SITE)
    signing = keys.signing_keys(SITE, tmp_path / "keys")
    pushed = push(load_config(desk), signing, api, wait_s=20)
    assert pushed.accepted, pushed.ack
    assert pushed.sent["config_version"] == pushed.config_version == live.config.version
    device = _device(installer)
    assert device["desired_config_version"] == device["config_version"] == pushed.config_version
    assert device["config_in_sync"] is True
    assert installer.get("/devices").json()[0]["desired_config_version"] == pushed.config_version

    # A config the device refuses (signed by a key it does not trust): desired moves, reported does not.
    stranger = keys.init("elsewhere", tmp_path / "other-keys")
    desk_config(desk, gateway.settings.MQTT_URL, notice_cm=11.0, device_id=DEVICE, site=SITE)
    refused = signed_message(device_document(load_config(desk)), [stranger])
    answer = installer.post(f"/devices/{DEVICE}/config", json=request_body(refused))
    assert answer.status_code == 202, answer.text

    def trail():
        return [e for e in installer.get(f"/devices/{DEVICE}/audit").json() if e["cmd_id"] == refused.cmd_id]

    wait_until(lambda: any(e["action"] == "ack" for e in trail()), what="the refusal")
    assert next(e for e in trail() if e["action"] == "ack")["note"].startswith("not done (unknown_key)")
    assert "signed by" in next(e for e in trail() if e["action"] == "config")["note"]
    device = _device(installer)
    assert device["desired_config_version"] == refused.config_version != device["config_version"]
    assert device["config_version"] == pushed.config_version and device["config_in_sync"] is False
    assert _drift_events(installer) == [], "not before CONFIG_DRIFT_AFTER_S"
    clock.jump(DRIFT_AFTER_S + 1)
    wait_until(lambda: _drift_events(installer), what="a config_drift event")
    (drift,) = _drift_events(installer)
    assert drift["device_id"] == DEVICE and drift["severity"] == "notice"
    assert drift["details"]["desired_version"] == refused.config_version
    assert drift["details"]["reported_version"] == pushed.config_version

    # Signed properly this time, from the command line: applied, reported == desired, the drift ends.
    env = {**os.environ, "GATEWAY_API_URL": gateway.url, "GATEWAY_API_TOKEN": api.token}
    cli = [
        sys.executable,
        "-m",
        "citywatch.cli",
        "config",
        "push",
        str(desk),
        "--keys-dir",
        str(tmp_path / "keys"),
    ]
    fixed = subprocess.run(cli, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "device answered: ok: applied live, no restart" in fixed.stdout
    ended = lambda: installer.get(f"/events/{drift['id']}").json()["cleared_at"]  # noqa: E731
    wait_until(ended, what="the drift to end")
    assert _device(installer)["config_in_sync"] is True
    assert len(_drift_events(installer)) == 1


def test_a_partial_unsigned_config_is_named_by_the_version_the_device_runs(
    gateway: GatewayApp, installer: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a plain YAML (no trusted keys), an agent takes unsigned configs. Given one without its
    defaults, the gateway's hash of what it was sent is not what the device runs once it has filled them
    in: the device's accepted answer names its version, and the gateway takes it as the desired one."""
    desk = desk_config(tmp_path / "c.yaml", gateway.settings.MQTT_URL, device_id=DEVICE, site=SITE)
    monkeypatch.chdir(tmp_path)
    live = LiveAgent(load_config(desk), build=build_agent).start()
    try:
        wait_until(lambda: _device(installer)["config_version"] == live.config.version, what="the birth")
        partial = yaml.safe_load(desk.read_text())  # as written at the desk: defaults left out
        partial["culvert"]["thresholds"]["notice_cm"] = 11.0
        sent = installer.post(f"/devices/{DEVICE}/config", json={"config": partial}).json()
        assert sent["config_version"] == config_version(partial) and len(sent["config_version"]) == 12
        wait_until(lambda: _device(installer)["config_in_sync"], what="desired and reported to agree")
    finally:
        live.stop()
    device = _device(installer)
    assert device["config_version"] == live.config.version != sent["config_version"]
    assert live.config.culvert.thresholds.notice_cm == 11.0  # type: ignore[attr-defined]
    assert datetime.fromisoformat(device["desired_config_at"]) <= datetime.now(UTC)
