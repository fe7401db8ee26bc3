"""Commands and configuration pushes through the REST API, on a real Mosquitto with the project's own
device uplink answering: role checks, validation, the audit with the caller, expiry, a broker away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import AckMessage, CommandMessage, ConfigMessage, DeviceType
from citywatch.protocol.topics import Channel, Topic
from edge.uplink import Uplink
from gateway.auth.roles import Role
from gateway.db import utcnow
from gateway.runner import GatewayApp
from tests.gateway.conftest import SITE
from tests.gateway.tokens import api_client
from tests.support.mqtt import Collector, Publisher
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway and a device on Mosquitto per test

DEVICE = "culvert-1"


@pytest.fixture
def admin(gateway: GatewayApp) -> Iterator[httpx.Client]:
    with api_client(gateway, Role.ADMIN) as client:
        yield client


@pytest.fixture
def installer(gateway: GatewayApp) -> Iterator[httpx.Client]:
    with api_client(gateway, Role.INSTALLER) as client:
        yield client


@pytest.fixture
def commands(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    """What the gateway publishes to the device (it must be valid by the protocol models)."""
    with Collector(mosquitto.url, f"citywatch/v1/{SITE}/{DEVICE}/+") as collector:
        yield collector


class Device:
    """The project's own uplink as culvert-1, answering report_now."""

    def __init__(self, broker: MosquittoBroker, outbox: Path) -> None:
        self.run: list[str] = []
        self.uplink = Uplink(
            MqttOptions.from_url(broker.url),
            SITE,
            DEVICE,
            DeviceType.CULVERT,
            "cfg-1",
            outbox,
            on_command=self._on_command,
            reconnect_min_s=0.1,
            reconnect_max_s=0.5,
            receipts=None,
        )

    def _on_command(self, command: CommandMessage) -> tuple[bool, str] | None:
        self.run.append(command.cmd_id)
        return (True, "reporting") if command.command == "report_now" else None

    def start(self) -> Device:
        self.uplink.start()
        assert self.uplink.wait_subscribed(10), "the broker never acknowledged the command subscription"
        return self

    def stop(self) -> None:
        self.uplink.stop()


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    """JSON as the standard library writes it: ASCII, a lone surrogate escaped (httpx would refuse it)."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def _acks(client: httpx.Client) -> dict[str, dict[str, Any]]:
    trail = client.get(f"/devices/{DEVICE}/audit").json()
    return {entry["cmd_id"]: entry for entry in trail if entry["action"] == "ack"}


def _answered(client: httpx.Client, cmd_id: str) -> dict[str, Any]:
    ack = wait_until(lambda: _acks(client).get(cmd_id), what=f"the device's ack of {cmd_id}")
    assert ack is not None
    return ack


def test_an_installer_sends_a_command_the_device_runs_it_and_both_are_audited(
    gateway: GatewayApp,
    installer: httpx.Client,
    commands: Collector,
    mosquitto: MosquittoBroker,
    tmp_path: Path,
) -> None:
    device = Device(mosquitto, tmp_path / "outbox.sqlite3").start()
    try:
        wait_until(lambda: installer.get(f"/devices/{DEVICE}").json()["presence"] == "online", what="online")
        before = utcnow()
        answer = installer.post(f"/devices/{DEVICE}/cmd", json={"command": "report_now", "expires_in_s": 120})
        assert answer.status_code == 202, answer.text
        sent = answer.json()
        assert sent["channel"] == "cmd" and sent["topic"] == str(Topic(SITE, DEVICE, Channel.CMD))
        expires = datetime.fromisoformat(sent["expires"])
        assert before + timedelta(seconds=120) <= expires <= utcnow() + timedelta(seconds=120)
        ack = _answered(installer, sent["cmd_id"])
        assert ack["actor"] == DEVICE and ack["role"] == "device" and ack["note"] == "ok: reporting"
        assert device.run == [sent["cmd_id"]]
        # What went over the wire is the protocol's own message (the collector decodes it by the models).
        (published,) = [m for m in commands.of(CommandMessage) if m.cmd_id == sent["cmd_id"]]
        assert published.command == "report_now" and published.expires == expires
        # The default expiry, and an unknown command: answered, not run.
        other = installer.post(
            f"/devices/{DEVICE}/cmd", json={"command": "self_destruct", "cmd_id": "c-0002"}
        )
        assert other.status_code == 202
        default = datetime.fromisoformat(other.json()["expires"]) - datetime.fromisoformat(other.json()["ts"])
        assert default == timedelta(seconds=gateway.settings.COMMAND_EXPIRY_S)
        assert _answered(installer, "c-0002")["note"].startswith("not done (unknown_command)")
    finally:
        device.stop()
    trail = installer.get(f"/devices/{DEVICE}/audit").json()
    (sent_entry,) = [e for e in trail if e["action"] == "cmd" and e["cmd_id"] == sent["cmd_id"]]
    assert sent_entry["actor"] == "test-installer" and sent_entry["role"] == "installer"
    assert "report_now" in sent_entry["note"] and "expires" in sent_entry["note"]


def test_a_config_push_is_retained_validated_by_the_device_and_audited_without_its_values(
    gateway: GatewayApp, admin: httpx.Client, commands: Collector, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    # A wrong scheme: the device quotes the URL in its answer, password and all.
    secret_url = "http://culvert-1:hunter2-password@broker.example:1883"
    config = {"kind": "culvert", "device": {"id": DEVICE}, "mqtt": {"url": secret_url}}
    answer = admin.post(f"/devices/{DEVICE}/config", json={"config": config, "cmd_id": "cfg-0001"})
    assert answer.status_code == 202, answer.text
    sent = answer.json()
    assert sent["retained"] is True and sent["expires"] is None and len(sent["config_version"]) == 12
    (published,) = commands.of(ConfigMessage)
    assert published.config == config
    with Collector(mosquitto.url, str(Topic(SITE, DEVICE, Channel.CONFIG))) as later:
        wait_until(lambda: later.messages, what="the retained config for a later subscriber")
        assert later.messages[0].retain
    # The device was away: it gets the retained config when it connects, and refuses it (incomplete).
    device = Device(mosquitto, tmp_path / "outbox.sqlite3").start()
    try:
        ack = _answered(admin, "cfg-0001")
    finally:
        device.stop()
    assert ack["note"].startswith("not done (invalid)") and "culvert-1:***@broker.example" in ack["note"]
    audit_text = admin.get(f"/devices/{DEVICE}/audit").text
    assert "hunter2" not in audit_text and "hunter2" not in answer.text


@pytest.mark.parametrize("role", [Role.VIEWER, Role.DISPATCH_CENTRE, Role.DISPATCHER])
def test_other_roles_may_not_send_to_devices(gateway: GatewayApp, commands: Collector, role: Role) -> None:
    with api_client(gateway, role) as client:
        for path, body in (("cmd", {"command": "ping"}), ("config", {"config": {}})):
            answer = client.post(f"/devices/{DEVICE}/{path}", json=body)
            assert answer.status_code == 403 and role.value in answer.json()["detail"]
        assert client.get(f"/devices/{DEVICE}/audit").status_code == 200  # reading the trail is for all
    assert httpx.post(f"{gateway.url}/devices/{DEVICE}/cmd", json={"command": "ping"}).status_code == 401
    assert commands.messages == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": "Report Now"},
        {"command": "ping", "expires_in_s": 0},
        {"command": "ping", "expires_in_s": 86_401},
        {"command": "ping", "cmd_id": "has space"},
        {"command": "ping", "args": []},
        {"command": "ping", "colour": "red"},
        {"command": "ping", "args": {"text": "\ud800"}},  # valid JSON, not valid UTF-8
    ],
)
def test_bad_command_bodies_are_422_and_nothing_is_sent(
    gateway: GatewayApp, admin: httpx.Client, commands: Collector, body: dict[str, Any]
) -> None:
    assert _post(admin, f"/devices/{DEVICE}/cmd", body).status_code == 422
    assert commands.messages == [] and admin.get(f"/devices/{DEVICE}/audit").json() == []


def test_bad_config_bodies_are_422_and_an_unknown_device_is_404(
    gateway: GatewayApp, admin: httpx.Client, commands: Collector
) -> None:
    for body in (
        {},
        {"config": []},
        {"config": {}, "config_version": ""},
        {"config": {}, "extra": 1},
        {"config": {"\udfff": 1}},
        {"config": {}, "config_version": "v\ud800"},
    ):
        assert _post(admin, f"/devices/{DEVICE}/config", body).status_code == 422
    for path, body in (("cmd", {"command": "ping"}), ("config", {"config": {}})):
        answer = admin.post(f"/devices/culvert-404/{path}", json=body)
        assert answer.status_code == 404 and "culvert-404" in answer.json()["detail"]
    assert admin.get("/devices/culvert-404/audit").status_code == 404
    assert commands.messages == []


def test_with_the_broker_away_a_command_is_503_and_not_audited(
    gateway: GatewayApp, admin: httpx.Client, mosquitto: MosquittoBroker
) -> None:
    mosquitto.stop()
    wait_until(lambda: not gateway.ingest.connected, what="the gateway notices the broker is gone")
    answer = admin.post(f"/devices/{DEVICE}/cmd", json={"command": "ping"})
    assert answer.status_code == 503 and "not connected" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "5"
    assert admin.get(f"/devices/{DEVICE}/audit").json() == []


def test_a_command_that_expires_while_the_device_is_away_is_not_run_and_its_ack_says_so(
    gateway: GatewayApp, admin: httpx.Client, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    device = Device(mosquitto, tmp_path / "outbox.sqlite3").start()
    device.stop()  # away: its persistent session queues what is sent to it
    answer = admin.post(f"/devices/{DEVICE}/cmd", json={"command": "report_now", "expires_in_s": 1})
    assert answer.status_code == 202
    expires = datetime.fromisoformat(answer.json()["expires"])
    wait_until(lambda: utcnow() > expires + timedelta(seconds=0.1), what="the command expired")
    device = Device(mosquitto, tmp_path / "outbox.sqlite3").start()
    try:
        ack = _answered(admin, answer.json()["cmd_id"])
    finally:
        device.stop()
    assert device.run == [] and ack["note"].startswith("not done (expired)")


def test_a_repeated_ack_is_recorded_once(
    gateway: GatewayApp, admin: httpx.Client, mosquitto: MosquittoBroker
) -> None:
    """QoS 1 repeats an ack; a device answers a retained config again at every connect."""
    ack = AckMessage(device_id=DEVICE, cmd_id="cfg-0009", ts=utcnow(), ok=True, message="already running")
    with Publisher(mosquitto.url) as publisher:
        for _ in range(3):
            publisher.publish(Topic(SITE, DEVICE, Channel.ACK), ack.to_json())
    wait_until(lambda: gateway.stats.snapshot()["accepted"].get("ack") == 3, what="three acks taken")
    trail = admin.get(f"/devices/{DEVICE}/audit").json()
    assert [(e["action"], e["cmd_id"], e["note"]) for e in trail] == [
        ("ack", "cfg-0009", "ok: already running")
    ]
