"""Refusal feedback through a real Mosquitto: a device hears on its ``refusal`` topic what the gateway
refused and why; bursts and floods of invented device ids are bounded; a citywatch agent logs it.

The rate limits run on a clock the tests move (``FeedbackLimiter(clock=...)``), so that what a burst
yields does not depend on how fast this machine publishes; their arithmetic: test_feedback_limiter.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import RefusalMessage
from citywatch.protocol.topics import Channel, subscription
from edge.config import CulvertAgentConfig, validate_config_dict
from edge.culvert.agent import CulvertAgent
from gateway.ingest.feedback import FeedbackLimiter
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.edge.culvert.test_agent import culvert_config
from tests.gateway.conftest import FAST_RETRIES, SITE, running
from tests.gateway.helpers import Publisher, telemetry, topic, water_event
from tests.gateway.tokens import admin_headers
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test


class MovableClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def refusals(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    with Collector(mosquitto.url, subscription(Channel.REFUSAL)) as collector:
        yield collector


def heard(collector: Collector, device_topic: str) -> list[RefusalMessage]:
    """The refusal messages published on ``device_topic`` (decoded: each is checked against the contract)."""
    messages = [m.message for m in collector.on(Channel.REFUSAL) if m.topic == device_topic]
    assert all(isinstance(m, RefusalMessage) for m in messages)
    return messages  # type: ignore[return-value]


def with_clock(gateway: GatewayApp, *, interval_s: float = 10, max_per_s: float = 50) -> MovableClock:
    clock = MovableClock()
    assert gateway.refusal_feedback is not None
    gateway.refusal_feedback.limiter = FeedbackLimiter(
        interval_s=interval_s, max_per_s=max_per_s, clock=clock
    )
    return clock


def bad_telemetry(i: int, *, outbox_seq: int | None = None) -> bytes:
    """A sample whose number is sent as a string (refused: invalid)."""
    sample = json.loads(telemetry("culvert-1", i)) | {"fields": {"level_cm": "12.345"}}
    if outbox_seq is not None:
        sample["outbox_seq"] = outbox_seq
    return json.dumps(sample).encode()


def numbered(payload: bytes, seq: int) -> bytes:
    return json.dumps({**json.loads(payload), "outbox_seq": seq}).encode()


def test_each_refusal_reaches_its_device_with_reason_and_refused_message(
    gateway: GatewayApp, publisher: Publisher, refusals: Collector
) -> None:
    cases = [
        # (topic published on, payload, reason, where the refusal goes, channel, outbox_seq, event_id)
        (
            str(topic(SITE, "culvert-1", Channel.TELEMETRY)),
            bad_telemetry(1, outbox_seq=5),
            "invalid",
            f"citywatch/v1/{SITE}/culvert-1/refusal",
            Channel.TELEMETRY,
            5,
            None,
        ),
        (  # refused by the writer thread, after the registry look-up
            str(topic(SITE, "ghost-9", Channel.TELEMETRY)),
            numbered(telemetry("ghost-9", 1), 3),
            "unknown_device",
            f"citywatch/v1/{SITE}/ghost-9/refusal",
            Channel.TELEMETRY,
            3,
            None,
        ),
        (
            str(topic("harbour", "culvert-2", Channel.TELEMETRY)),
            telemetry("culvert-2", 1),
            "wrong_site",
            "citywatch/v1/harbour/culvert-2/refusal",
            Channel.TELEMETRY,
            None,
            None,
        ),
        (  # refused inside the event transaction
            str(topic(SITE, "culvert-2", Channel.EVENT)),
            water_event("culvert-2", "evt-never-begun", 1),
            "unknown_event",
            f"citywatch/v1/{SITE}/culvert-2/refusal",
            Channel.EVENT,
            None,
            "evt-never-begun",
        ),
        (
            f"citywatch/v1/{SITE}/ghost-8/telemetry/extra",
            telemetry("ghost-8", 1),
            "bad_topic",
            f"citywatch/v1/{SITE}/ghost-8/refusal",
            None,
            None,
            None,
        ),
    ]
    for published_on, payload, *_ in cases:
        publisher.publish(published_on, payload)
    for published_on, _, reason, feedback_topic, channel, outbox_seq, event_id in cases:
        [message] = wait_until(lambda t=feedback_topic: heard(refusals, t), what=f"the {reason} refusal")  # type: ignore[misc]
        assert (message.reason, message.topic, message.channel) == (reason, published_on, channel)
        assert (message.outbox_seq, message.event_id, message.suppressed) == (outbox_seq, event_id, 0)
        assert message.detail and len(message.detail) <= 300
        assert abs((message.ts - datetime.now(UTC)).total_seconds()) < 60, "gateway time"
    received = {m.topic: m for m in refusals.on(Channel.REFUSAL)}
    assert all(m.qos == 1 and not m.retain for m in received.values())
    assert b"12.345" not in received[f"citywatch/v1/{SITE}/culvert-1/refusal"].payload, "never the values"
    health = httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway)).json()
    assert health["mqtt"]["refusal_feedback"]["sent"] == len(cases)
    assert health["refused"] == {reason: 1 for _, _, reason, *_ in cases}, "its own messages are not input"


def test_a_burst_gets_one_refusal_per_interval_and_the_next_counts_the_rest(
    gateway: GatewayApp, publisher: Publisher, refusals: Collector
) -> None:
    clock = with_clock(gateway, interval_s=10)
    device_topic = f"citywatch/v1/{SITE}/culvert-1/refusal"
    for i in range(99):
        publisher.client.publish(str(topic(SITE, "culvert-1", Channel.TELEMETRY)), bad_telemetry(i), qos=1)
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), bad_telemetry(99))
    wait_until(lambda: gateway.stats.snapshot()["refused"].get("invalid") == 100, what="100 refusals")
    wait_until(lambda: heard(refusals, device_topic), what="the first refusal message")
    time.sleep(0.5)  # any more would have arrived by now
    [first] = heard(refusals, device_topic)
    assert first.suppressed == 0

    clock.now += 10  # the interval is over
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), bad_telemetry(100))
    wait_until(lambda: len(heard(refusals, device_topic)) == 2, what="the next refusal message")
    assert heard(refusals, device_topic)[1].suppressed == 99, "the rest of the burst, counted"


def test_a_flood_of_invented_device_ids_is_capped_in_total(
    gateway: GatewayApp, publisher: Publisher, refusals: Collector
) -> None:
    clock = with_clock(gateway, max_per_s=5)  # the clock stands still: no refill
    for i in range(199):
        publisher.client.publish(
            str(topic(SITE, f"ghost-{i}", Channel.TELEMETRY)), telemetry(f"ghost-{i}", 0), qos=1
        )
    publisher.publish(topic(SITE, "ghost-199", Channel.TELEMETRY), telemetry("ghost-199", 0))
    wait_until(lambda: gateway.stats.snapshot()["refused"].get("unknown_device") == 200, what="200 refusals")
    wait_until(lambda: len(refusals.on(Channel.REFUSAL)) == 5, what="one second's worth of refusal messages")
    time.sleep(0.5)  # any more would have arrived by now
    assert len(refusals.on(Channel.REFUSAL)) == 5, "200 device ids, 5 messages: the total cap"

    clock.now += 1  # one more second's worth: a held-back device hears, with its count
    publisher.publish(topic(SITE, "ghost-0", Channel.TELEMETRY), telemetry("ghost-0", 1))
    publisher.publish(topic(SITE, "ghost-150", Channel.TELEMETRY), telemetry("ghost-150", 1))
    wait_until(lambda: heard(refusals, f"citywatch/v1/{SITE}/ghost-150/refusal"), what="the held-back device")
    assert heard(refusals, f"citywatch/v1/{SITE}/ghost-150/refusal")[0].suppressed == 1
    assert len(heard(refusals, f"citywatch/v1/{SITE}/ghost-0/refusal")) == 1, "ghost-0 had one this interval"


def test_a_topic_without_valid_ids_gets_no_feedback(
    gateway: GatewayApp, publisher: Publisher, mosquitto: MosquittoBroker
) -> None:
    with Collector(mosquitto.url, "citywatch/#") as everything:
        publisher.publish(f"citywatch/v1/{SITE}/Culvert 1/telemetry", telemetry("culvert-1", 0))
        publisher.publish("citywatch/v1/Riverside/culvert-1/telemetry", telemetry("culvert-1", 0))
        publisher.publish(topic(SITE, "culvert-2", Channel.TELEMETRY), b"not json")  # a marker after them
        wait_until(lambda: everything.on(Channel.REFUSAL), what="the marker's refusal")
        assert gateway.stats.snapshot()["refused"] == {"bad_topic": 2, "malformed_json": 1}
        assert [m.topic for m in everything.on(Channel.REFUSAL)] == [f"citywatch/v1/{SITE}/culvert-2/refusal"]


def test_interval_zero_turns_feedback_off(
    gateway_settings: Settings, publisher: Publisher, refusals: Collector
) -> None:
    settings = gateway_settings.model_copy(update={"REFUSAL_FEEDBACK_INTERVAL_S": 0})
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), b"not json")
        wait_until(lambda: gateway.stats.snapshot()["refused_total"] == 1, what="the refusal")
        time.sleep(0.5)  # a refusal message would have arrived by now
        assert refusals.on(Channel.REFUSAL) == []
        assert gateway.ingest_status()["refusal_feedback"] is None


def test_a_citywatch_agent_logs_what_the_gateway_refused(
    gateway_settings: Settings,
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A culvert agent the gateway does not know: it hears why its messages are refused, and says so."""
    settings = gateway_settings.model_copy(update={"REFUSAL_FEEDBACK_INTERVAL_S": 0.5})
    raw = culvert_config(
        mosquitto.url,
        tmp_path / "outbox.sqlite3",
        sample_interval_s=0.2,
        dry_interval_s=0.5,
        wet_interval_s=0.5,
    )
    raw["device"] = {"id": "culvert-9", "site": SITE}  # not provisioned
    config = validate_config_dict(raw)
    assert isinstance(config, CulvertAgentConfig)
    caplog.set_level(logging.WARNING, logger="edge.uplink.refusals")
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        agent = CulvertAgent(config).start()  # the system clock: its timestamps are not refused
        try:
            wait_until(lambda: agent.uplink.refusals_received >= 1, what="a refusal heard by the agent")
        finally:
            agent.stop(flush_timeout_s=0)
        assert gateway.stats.snapshot()["refused"].get("unknown_device", 0) >= 1
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.uplink.refusals"]
    assert any(
        "unknown_device" in line and f"citywatch/v1/{SITE}/culvert-9/" in line and "not provisioned" in line
        for line in lines
    ), lines
