"""The broker's password and ACL files (citywatch/broker/auth.py) and its TLS listener, on a real Mosquitto:
anonymous and wrong passwords refused, each device under its own topics only, a revoked device locked
out after a reload, TLS with a CA made in the test."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citywatch.broker.auth import (
    DeviceAccount,
    GatewayAccount,
    acl_file,
    check_password,
    hash_password,
    password_file,
)
from citywatch.broker.mosquitto import BrokerAuth, BrokerTls, MosquittoBroker, free_port, mosquitto_binary
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import DeviceType
from edge.uplink import Uplink
from tests.citywatch.broker.accounts import AccountCollector, connect_result
from tests.citywatch.broker.tls import make_ca
from tests.support.polling import wait_until

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")
SITE = "s1"
PASSWORDS = {"gateway": "gw-secret", "c1": "c1-secret", "c2": "c2-secret"}


@dataclass
class Accounts:
    broker: MosquittoBroker
    auth: BrokerAuth

    def write(self, devices: tuple[str, ...]) -> None:
        gateway = GatewayAccount("gateway", hash_password(PASSWORDS["gateway"]))
        accounts = [DeviceAccount(d, hash_password(PASSWORDS[d]), SITE, d) for d in devices]
        self.auth.password_file.write_text(password_file(gateway, accounts))
        self.auth.acl_file.write_text(acl_file("gateway", accounts))


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    auth = BrokerAuth(tmp_path / "passwd", tmp_path / "acl")
    tls = make_ca(tmp_path / "ca")
    broker = MosquittoBroker(
        data_dir=tmp_path / "mosquitto",
        auth=auth,
        tls=BrokerTls(free_port(), tls.ca_file, tls.cert_file, tls.key_file),
    )
    setup = Accounts(broker, auth)
    setup.write(("c1", "c2"))
    broker.start()
    yield setup
    broker.stop()


def test_the_hash_is_mosquitto_passwd_s() -> None:
    hashed = hash_password("secret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and check_password("secret", hashed)
    assert not check_password("Secret", hashed)


def _gateway(broker: MosquittoBroker) -> AccountCollector:
    return AccountCollector(broker.url, "citywatch/#", username="gateway", password=PASSWORDS["gateway"])


def _device(broker: MosquittoBroker, name: str, topic: str) -> AccountCollector:
    return AccountCollector(broker.url, topic, username=name, password=PASSWORDS[name])


@pytest.mark.slow
def test_each_device_publishes_and_reads_only_its_own_topics(accounts: Accounts) -> None:
    broker = accounts.broker
    assert connect_result(broker.url, username=None, password=None).is_failure, "anonymous is refused"
    assert connect_result(broker.url, username="c1", password="wrong").is_failure, "a wrong password too"
    assert connect_result(broker.url, username="c1", password=PASSWORDS["c1"]).is_failure is False
    own, other = f"citywatch/v1/{SITE}/c1", f"citywatch/v1/{SITE}/c2"
    with _gateway(broker) as gateway, _device(broker, "c1", f"citywatch/v1/{SITE}/+/cmd") as c1:
        c1.publish(f"{other}/telemetry", b'{"as": "c2"}')  # acknowledged by the broker, and dropped
        c1.publish(f"{own}/config", b'{"from": "c1"}')  # a device may not write its own config either
        c1.publish(f"{own}/telemetry", b'{"as": "c1"}')
        wait_until(
            lambda: any(m.topic == f"{own}/telemetry" for m in gateway.messages), what="c1's own message"
        )
        assert [m.topic for m in gateway.messages] == [f"{own}/telemetry"], (
            "nothing c1 was not allowed to send"
        )
        gateway.publish(f"{other}/cmd", b"for c2")
        gateway.publish(f"{own}/cmd", b"for c1")
        wait_until(lambda: c1.messages, what="c1's own command")
        time.sleep(0.2)
        assert [m.payload for m in c1.messages] == [b"for c1"], "c1 does not read c2's commands"


def test_a_revoked_device_is_locked_out_after_a_reload(accounts: Accounts) -> None:
    broker = accounts.broker
    assert not connect_result(broker.url, username="c2", password=PASSWORDS["c2"]).is_failure
    accounts.write(("c1",))
    broker.reload()
    wait_until(
        lambda: connect_result(broker.url, username="c2", password=PASSWORDS["c2"]).is_failure,
        what="c2 refused after the reload",
    )
    assert not connect_result(broker.url, username="c1", password=PASSWORDS["c1"]).is_failure


def _tls_device(broker: MosquittoBroker, ca: str, tmp_path: Path) -> Uplink:
    """Device c1's uplink over the broker's TLS listener, trusting the test's CA."""
    assert broker.tls is not None
    options = MqttOptions(
        host=broker.host, port=broker.tls.port, username="c1", password=PASSWORDS["c1"], tls=True, ca_file=ca
    )
    return Uplink(
        options, SITE, "c1", DeviceType.CULVERT, "cfg-1", tmp_path / "outbox.sqlite3", receipts=None
    )


def test_tls_with_the_bundles_ca(accounts: Accounts, tmp_path: Path) -> None:
    broker = accounts.broker
    ca = str(tmp_path / "ca" / "ca.crt")
    refused = connect_result(broker.tls_url, username="c1", password=PASSWORDS["c1"], ca_file=None)
    assert isinstance(refused, ssl.SSLCertVerificationError), "the system's CAs do not know the test CA"
    assert broker.tls is not None
    uplink = _tls_device(broker, ca, tmp_path)
    with _gateway(broker) as gateway:
        uplink.start()
        try:
            assert uplink.wait_connected(10), "the device's uplink over TLS with the CA"
            wait_until(lambda: any(m.topic.endswith("/c1/state") for m in gateway.messages), what="its birth")
        finally:
            uplink.stop()


def test_the_gateway_ingest_over_tls_with_a_private_ca(accounts: Accounts, tmp_path: Path) -> None:
    from gateway.devices import service as devices_service
    from gateway.runner import GatewayApp
    from gateway.settings import Settings

    broker = accounts.broker
    assert broker.tls is not None
    ca = str(tmp_path / "ca" / "ca.crt")
    url = f"mqtts://gateway:{PASSWORDS['gateway']}@{broker.host}:{broker.tls.port}"
    settings = Settings(MQTT_URL=url, MQTT_CA_FILE=ca, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    uplink = _tls_device(broker, ca, tmp_path)
    with GatewayApp(settings) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(session=session, device_id="c1", site=SITE, device_type="culvert")

        def online() -> bool:
            with gateway.session_factory() as session:
                device = devices_service.get(session=session, device_id="c1")
                return device is not None and device.online

        uplink.start()
        try:
            wait_until(online, timeout_s=15, what="the device's birth through the gateway's TLS connection")
        finally:
            uplink.stop()
