"""Hostile and broken input: each refused with its reason and counted; the gateway keeps serving."""

from __future__ import annotations

import json

import httpx
import pytest

from citywatch.protocol.topics import Channel
from gateway.devices import service as devices_service
from gateway.dispatch.worker import DeliveryOptions
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import SITE
from tests.gateway.helpers import Publisher, telemetry, topic
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per case: 0.6-2 s each


def _telemetry_dict(device_id: str = "culvert-1") -> dict[str, object]:
    return json.loads(telemetry(device_id, 0))


def _with(**changes: object) -> bytes:
    return json.dumps(_telemetry_dict() | changes).encode()


ONE_MEGABYTE = json.dumps(_telemetry_dict() | {"tags": {"pad": "x" * (1024 * 1024)}}).encode()

BAD_INPUTS = [
    # (case, site, device in topic, channel, payload, reason)
    ("malformed JSON", SITE, "culvert-1", Channel.TELEMETRY, b'{"v": 1, "device_id": ', "malformed_json"),
    ("not UTF-8", SITE, "culvert-1", Channel.TELEMETRY, b"\xff\xfe\x00garbage", "malformed_json"),
    ("JSON array", SITE, "culvert-1", Channel.TELEMETRY, b"[1, 2, 3]", "malformed_json"),
    ("wrong types", SITE, "culvert-1", Channel.TELEMETRY, _with(fields={"level_cm": "high"}), "invalid"),
    ("missing field", SITE, "culvert-1", Channel.TELEMETRY, _with(measurement=None), "invalid"),
    ("unknown field", SITE, "culvert-1", Channel.TELEMETRY, _with(colour="red"), "invalid"),
    ("naive timestamp", SITE, "culvert-1", Channel.TELEMETRY, _with(ts="2026-06-01T08:00:00"), "invalid"),
    ("wrong schema version", SITE, "culvert-1", Channel.TELEMETRY, _with(v=2), "wrong_version"),
    ("version true", SITE, "culvert-1", Channel.TELEMETRY, _with(v=True), "wrong_version"),
    ("version 1.0", SITE, "culvert-1", Channel.TELEMETRY, _with(v=1.0), "wrong_version"),
    ("NaN", SITE, "culvert-1", Channel.TELEMETRY, _with(fields={"level_cm": float("nan")}), "invalid"),
    (
        "number in a string",
        SITE,
        "culvert-1",
        Channel.TELEMETRY,
        _with(fields={"level_cm": "1.5"}),
        "invalid",
    ),
    ("epoch timestamp", SITE, "culvert-1", Channel.TELEMETRY, _with(ts=1780315200), "invalid"),
    ("timestamp in 2099", SITE, "culvert-1", Channel.TELEMETRY, _with(ts="2099-01-01T00:00:00Z"), "clock"),
    ("no schema version", SITE, "culvert-1", Channel.TELEMETRY, _with(v=None), "wrong_version"),
    ("unknown device", SITE, "ghost-9", Channel.TELEMETRY, telemetry("ghost-9", 0), "unknown_device"),
    ("1 MB payload", SITE, "culvert-1", Channel.TELEMETRY, ONE_MEGABYTE, "oversized"),
    (
        "spoofs another device",
        SITE,
        "culvert-1",
        Channel.TELEMETRY,
        telemetry("culvert-2", 0),
        "topic_mismatch",
    ),
    (
        "spoofs another site",
        "harbour",
        "culvert-1",
        Channel.TELEMETRY,
        telemetry("culvert-1", 0),
        "wrong_site",
    ),
    ("message of another channel", SITE, "culvert-1", Channel.EVENT, telemetry("culvert-1", 0), "invalid"),
]


@pytest.mark.parametrize(
    ("site", "device_id", "channel", "payload", "reason"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused_counted_and_gateway_keeps_serving(
    gateway: GatewayApp,
    publisher: Publisher,
    site: str,
    device_id: str,
    channel: Channel,
    payload: bytes,
    reason: str,
) -> None:
    publisher.publish(topic(site, device_id, channel), payload)
    wait_until(lambda: gateway.stats.snapshot()["refused"].get(reason) == 1, what=f"one refusal for {reason}")

    health = httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway))
    assert health.status_code == 200
    assert health.json()["refused"] == {reason: 1}
    assert gateway.store.count() == 0  # nothing of the bad message was stored

    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 99))
    wait_until(lambda: gateway.store.count() == 1, what="the valid message after it to be stored")
    assert httpx.get(f"{gateway.url}/events", headers=admin_headers(gateway)).json()["total"] == 0


def test_refused_messages_are_acked_not_redelivered(gateway_settings: Settings, publisher: Publisher) -> None:
    """A restart with the same persistent session must not see the refused messages again."""
    with GatewayApp(gateway_settings, delivery=DeliveryOptions()) as first:
        with first.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="culvert-1", site=SITE, device_type="culvert"
            )
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), b"not json")
        publisher.publish(topic(SITE, "culvert-9", Channel.TELEMETRY), telemetry("culvert-9", 0))
        wait_until(lambda: first.stats.snapshot()["refused_total"] == 2, what="two refusals")
    with GatewayApp(gateway_settings, delivery=DeliveryOptions()) as second:
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 1))
        wait_until(lambda: second.store.count() == 1, what="the next valid message")
        assert second.stats.snapshot()["refused_total"] == 0
