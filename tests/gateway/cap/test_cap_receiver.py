"""docs/cap.md's recipes for verifying a CAP push, run as written with the real ``standardwebhooks``
package against real pushes from a gateway (Mosquitto, a device event, the dispatch worker)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.topics import Channel
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from tests.gateway.cap.receiver import cap_receiver, recipes
from tests.gateway.cap.schemas import NS, schema_errors
from tests.gateway.conftest import FAST_RETRIES, SITE, running
from tests.gateway.helpers import Publisher, topic, water_event
from tests.support.polling import wait_until
from tests.support.webhooks import Received

pytestmark = pytest.mark.slow  # a gateway on Mosquitto

ROUTING = """
version: 1
departments:
  - id: transport_bureau
    name: Transport bureau
    webhook: {{url: "{url}", format: cap, secrets: ["{secret}"]}}
rules:
  - id: everything
    event_types: "*"
    department: transport_bureau
default_sla: {{critical: 1h, warning: 4h, notice: 1d, info: 3d}}
"""


@pytest.fixture
def secret() -> str:
    return new_secret()


def _settings(tmp_path: Path, broker: MosquittoBroker, *, url: str, secret: str) -> Settings:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=url, secret=secret))
    return Settings(
        MQTT_URL=broker.url,
        MQTT_CLIENT_ID=f"gw-cap-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        ROUTING_FILE=routing,
    )


def _raise_a_flood(broker: MosquittoBroker) -> None:
    with Publisher(broker.url) as publisher:
        publisher.publish(
            topic(SITE, "culvert-1", Channel.EVENT), water_event("culvert-1", "evt-cap-0001", 0)
        )


@pytest.fixture
def push(tmp_path: Path, mosquitto: MosquittoBroker, secret: str) -> Iterator[Received]:
    """One real CAP push, received by a department that verifies it with the first recipe of the docs."""
    receiver = cap_receiver(secret=secret, recipe=recipes()["json_parse"])
    try:
        with running(
            GatewayApp(_settings(tmp_path, mosquitto, url=receiver.url, secret=secret), delivery=FAST_RETRIES)
        ):
            _raise_a_flood(mosquitto)
            wait_until(lambda: receiver.received(), what="a CAP push")
        assert receiver.refused == 0
        yield receiver.received()[0]
    finally:
        receiver.close()


def _tampered(body: bytes) -> bytes:
    """The same alert turned into a Cancel on the way: still valid CAP, no longer what was signed."""
    assert b"<msgType>Alert</msgType>" in body
    return body.replace(b"<msgType>Alert</msgType>", b"<msgType>Cancel</msgType>", 1)


def test_the_documented_recipes_verify_a_real_cap_push(push: Received, secret: str) -> None:
    assert push.headers["content-type"] == "application/cap+xml"
    assert schema_errors(push.raw) == []
    documented = recipes()
    assert set(documented) == {"json_parse", "catch the JSON error"}
    for name, verify_cap_push in documented.items():
        alert = verify_cap_push(push.raw, push.headers, secret)
        assert alert.findtext("cap:msgType", namespaces=NS) == "Alert", name
        assert alert.findtext("cap:info/cap:eventCode/cap:value", namespaces=NS) == "water_level", name
        with pytest.raises(WebhookVerificationError):
            verify_cap_push(_tampered(push.raw), push.headers, secret)
        with pytest.raises(WebhookVerificationError):
            verify_cap_push(push.raw, push.headers, new_secret())  # someone else's secret
        with pytest.raises(WebhookVerificationError):
            verify_cap_push(push.raw, {**push.headers, "webhook-id": "msg_other"}, secret)


def test_plain_verify_fails_on_a_good_cap_push_as_the_docs_warn(push: Received, secret: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        Webhook(secret).verify(push.raw, push.headers)


def test_the_dispatch_centre_simulator_takes_cap_pushes(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """``citywatch sim dispatch-centre`` as a CAP department: verified, recorded, nothing retried."""
    with DispatchCentreSimulator(secret=new_secret()) as centre:
        settings = _settings(tmp_path, mosquitto, url=centre.url, secret=centre.secret)
        with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
            _raise_a_flood(mosquitto)
            assert centre.wait_for(1)
            wait_until(
                lambda: gateway.dispatch_status()["endpoints"][0]["pending"] == 0, what="the push settled"
            )
        (received,) = centre.received()
        assert received.message_type == "cap.Alert" and received.event["id"] == 1
        assert schema_errors(received.body["cap"]) == []
        assert centre.invalid_signatures == 0 and centre.duplicates == 0
