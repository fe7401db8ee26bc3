"""`citywatch gateway broker-acl`: Mosquitto's accounts and ACL from the registry, on a real broker with
the gateway logged in: a device publishes under its own topics only, a wrong password and anonymous
clients are refused, a revoked device is locked out after the files are written again and reloaded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from citywatch.broker.auth import hash_password
from citywatch.broker.mosquitto import BrokerAuth, MosquittoBroker, free_port, mosquitto_binary
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import DeviceType, TelemetryMessage
from citywatch.protocol.topics import Channel, Topic
from edge.uplink import Uplink
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.citywatch.broker.accounts import AccountCollector, connect_result
from tests.gateway.conftest import SITE
from tests.gateway.tokens import api_client
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed"),
]
PASSWORDS = {"culvert-1": "c1-secret", "culvert-2": "c2-secret"}


def _broker_acl(data_dir: Path, mqtt_url: str, out: Path) -> str:
    env = {**os.environ, "CITYWATCH_DATA_DIR": str(data_dir), "CITYWATCH_MQTT_URL": mqtt_url}
    result = subprocess.run(
        [sys.executable, "-m", "citywatch.cli", "gateway", "broker-acl", "--out", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GatewayApp, MosquittoBroker, httpx.Client, Path]]:
    port = free_port()
    gateway_url = f"mqtt://gateway:gw-secret@127.0.0.1:{port}"
    settings = Settings(MQTT_URL=gateway_url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    app = GatewayApp(settings).start(wait_mqtt_s=0)  # the broker needs the registry's files first
    installer = api_client(app, Role.INSTALLER)
    broker = MosquittoBroker(
        data_dir=tmp_path / "mosquitto",
        port=port,
        auth=BrokerAuth(tmp_path / "acl/passwd", tmp_path / "acl/acl"),
    )
    try:
        with app.session_factory() as session, session.begin():
            for device_id in PASSWORDS:
                devices_service.provision(
                    session=session, device_id=device_id, site=SITE, device_type="culvert"
                )
        for device_id, password in PASSWORDS.items():  # as `config flash --register` does
            answer = installer.put(
                f"/devices/{device_id}/mqtt-credential",
                json={"username": device_id, "password_hash": hash_password(password)},
            )
            assert answer.status_code == 200, answer.text
            assert "password_hash" not in answer.text and answer.json()["mqtt_username"] == device_id
        printed = _broker_acl(tmp_path / "gateway", gateway_url, tmp_path / "acl")
        assert "2 device account(s), the gateway 'gateway'" in printed
        broker.start()
        assert app.ingest.wait_connected(15), "the gateway logs in with the user and password of its URL"
        yield app, broker, installer, tmp_path
    finally:
        installer.close()
        app.stop()
        broker.stop()


def _uplink(broker: MosquittoBroker, device_id: str, password: str, outbox: Path) -> Uplink:
    options = MqttOptions(host=broker.host, port=broker.port, username=device_id, password=password)
    return Uplink(
        options,
        SITE,
        device_id,
        DeviceType.CULVERT,
        "cfg-1",
        outbox,
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    )


def test_the_registry_decides_who_may_publish_what(
    setup: tuple[GatewayApp, MosquittoBroker, httpx.Client, Path],
) -> None:
    app, broker, installer, tmp_path = setup
    device = _uplink(broker, "culvert-1", PASSWORDS["culvert-1"], tmp_path / "c1.sqlite3").start()
    try:
        assert device.wait_connected(10)
        # culvert-1 tries to speak for culvert-2 first, then for itself.
        with AccountCollector(
            broker.url, "citywatch/v1/none", username="culvert-1", password=PASSWORDS["culvert-1"]
        ) as impostor:
            fake = TelemetryMessage(
                device_id="culvert-2", ts=datetime.now(UTC), measurement="health", fields={"x": 1.0}
            )
            impostor.publish(str(Topic(SITE, "culvert-2", Channel.TELEMETRY)), fake.to_json())
        device.send(
            Channel.TELEMETRY,
            TelemetryMessage(
                device_id="culvert-1", ts=datetime.now(UTC), measurement="health", fields={"x": 2.0}
            ),
        )
        wait_until(
            lambda: installer.get("/devices/culvert-1").json()["last_seen"], what="culvert-1's message stored"
        )
        assert installer.get("/devices/culvert-1").json()["presence"] == "online"
        assert installer.get("/devices/culvert-2").json()["presence"] == "never_seen", "the ACL dropped it"
    finally:
        device.stop()
    assert connect_result(broker.url, username=None, password=None).is_failure
    assert connect_result(broker.url, username="culvert-1", password="wrong").is_failure
    # Revoked: locked out once the files are written again and Mosquitto has reloaded them.
    assert installer.delete("/devices/culvert-1/mqtt-credential").json()["mqtt_username"] is None
    printed = _broker_acl(tmp_path / "gateway", app.settings.MQTT_URL, tmp_path / "acl")
    assert "1 device account(s)" in printed
    assert "culvert-1" not in (tmp_path / "acl/passwd").read_text()
    broker.reload()
    wait_until(
        lambda: connect_result(broker.url, username="culvert-1", password=PASSWORDS["culvert-1"]).is_failure,
        what="culvert-1 refused after the reload",
    )
    assert not connect_result(broker.url, username="culvert-2", password=PASSWORDS["culvert-2"]).is_failure
    trail = installer.get("/devices/culvert-1/audit").json()
    assert [e["note"] for e in trail if e["action"] == "mqtt_credential"] == [
        "MQTT user culvert-1 set (new password)",
        "MQTT user culvert-1 revoked",
    ]


def test_a_user_belongs_to_one_device(setup: tuple[GatewayApp, MosquittoBroker, httpx.Client, Path]) -> None:
    _app, _broker, installer, _ = setup
    answer = installer.put(
        "/devices/culvert-2/mqtt-credential",
        json={"username": "culvert-1", "password_hash": hash_password("x")},
    )
    assert answer.status_code == 409 and "belongs to device 'culvert-1'" in answer.text
    bad = installer.put(
        "/devices/culvert-2/mqtt-credential", json={"username": "c2", "password_hash": "plain"}
    )
    assert bad.status_code == 422
    with api_client(_app, Role.VIEWER) as viewer:
        assert viewer.delete("/devices/culvert-2/mqtt-credential").status_code == 403
