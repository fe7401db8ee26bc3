"""`citywatch device check`: the commissioning report against a real gateway, Mosquitto and agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from citywatch.protocol.messages import CommandMessage
from edge.agent import build_agent
from edge.config import load_config
from edge.installer.api import GatewayApi
from edge.installer.commissioning import CheckWindow, commission
from edge.installer.live import LiveAgent
from gateway.auth.roles import Role
from gateway.runner import GatewayApp
from tests.edge.installer.helpers import desk_config
from tests.gateway.conftest import SITE
from tests.gateway.tokens import api_client, issue_token
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow

DEVICE = "culvert-1"
WINDOW = CheckWindow(window_s=30, health_interval_s=1)


@pytest.fixture
def agent(gateway: GatewayApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveAgent]:
    path = desk_config(tmp_path / "c.yaml", gateway.settings.MQTT_URL, device_id=DEVICE, site=SITE)
    raw = yaml.safe_load(path.read_text())
    raw["telemetry"] = {"health_interval_s": 1}
    raw["culvert"]["dry_interval_s"] = 1
    raw["culvert"]["wet_interval_s"] = 1
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    live = LiveAgent(load_config(path), build=build_agent).start()
    yield live
    live.stop()


def _api(gateway: GatewayApp) -> GatewayApi:
    return GatewayApi(gateway.url, issue_token(gateway, Role.INSTALLER))


def test_a_working_culvert_passes_every_line(gateway: GatewayApp, agent: LiveAgent) -> None:
    api = _api(gateway)
    with api_client(gateway, Role.VIEWER) as viewer:
        wait_until(
            lambda: (
                len(
                    viewer.get(
                        f"/devices/{DEVICE}/telemetry", params={"measurement": "health", "field": "rss_mb"}
                    ).json()
                )
                >= 3
            ),
            what="three health reports",
        )
    report = commission(api, DEVICE, window=WINDOW)
    assert report.ok, report.render()
    names = [line.name for line in report.lines]
    assert names == ["provisioned", "online", "session", "clock", "config", "telemetry", "readings"]
    readings = next(line for line in report.lines if line.name == "readings")
    assert "levels 12.0..12.0 cm" in readings.detail
    # The actuator test on a culvert: it has none, and says so.
    with_actuators = commission(api, DEVICE, window=WINDOW, actuators=True)
    line = with_actuators.lines[-1]
    assert (line.name, line.ok) == ("actuators", False) and "has no actuators" in line.detail


def test_failures_say_what_to_do_and_the_command_exits_1(gateway: GatewayApp, tmp_path: Path) -> None:
    api = _api(gateway)
    never = commission(api, "culvert-2", window=WINDOW)  # provisioned, never powered
    failed = {line.name for line in never.lines if not line.ok}
    assert failed >= {"online", "session", "telemetry", "readings"} and not never.ok
    online = next(line for line in never.lines if line.name == "online")
    assert "never heard from" in online.detail and "power it" in online.fix
    unknown = commission(api, "culvert-404", window=WINDOW)
    assert [(line.name, line.ok) for line in unknown.lines] == [("provisioned", False)]
    assert "citywatch gateway devices add culvert-404" in unknown.lines[0].fix
    env = {**os.environ, "GATEWAY_API_URL": gateway.url, "GATEWAY_API_TOKEN": api.token}
    run = subprocess.run(
        [sys.executable, "-m", "citywatch.cli", "device", "check", "culvert-2", "--json"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    answer = json.loads(run.stdout)
    assert answer["ok"] is False and answer["device_id"] == "culvert-2"
    assert {c["name"] for c in answer["checks"] if not c["ok"]} == failed


def test_the_actuator_test_holds_the_door_and_plays_the_voice(tmp_path: Path) -> None:
    """On an agent with actuators (the elevator's), as the report's test_actuators command runs it."""
    from edge.vision.actuators import LoggingActuators

    class WithActuators:
        def __init__(self, _config: object) -> None:
            self.actuators = LoggingActuators()

    live = LiveAgent(load_config(desk_config(tmp_path / "c.yaml", "mqtt://127.0.0.1:1")), build=WithActuators)
    live.agent = WithActuators(None)
    command = CommandMessage(
        cmd_id="t1", ts=datetime.now(UTC), command="test_actuators", args={"hold_s": 0.1}
    )
    assert live._command(command) == (
        True,
        "door held 0.1 s and released, voice warning played; door contact: unknown (no door contact)",
    )
    assert [action for action, _ in live.agent.actuators.history] == [
        "hold_door",
        "release_door",
        "voice_warning",
    ]
    assert live._command(command.model_copy(update={"command": "ping"})) is None, "others go to the agent"
