"""The device side of refusal feedback: what arrives on ``refusal`` is logged (rate-limited) and counted,
and nothing published there stops the agent. A real Mosquitto; the test plays the gateway."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import ReceiptMessage, RefusalMessage
from citywatch.protocol.topics import Channel, Topic
from edge.uplink.refusals import RefusalInbox
from tests.edge.test_uplink import make_uplink, telemetry
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

REFUSAL_TOPIC = str(Topic("s1", "c1", Channel.REFUSAL))
LOGGER = "edge.uplink.refusals"


def refusal(*, suppressed: int = 0, detail: str = "fields.level_cm: Input should be a valid number") -> bytes:
    return RefusalMessage(
        ts=datetime.now(UTC),
        reason="invalid",
        detail=detail,
        topic="citywatch/v1/s1/c1/telemetry",
        channel=Channel.TELEMETRY,
        outbox_seq=17,
        suppressed=suppressed,
    ).to_json()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_a_refusal_is_counted_and_logged_with_reason_detail_and_topic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = RefusalInbox()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        taken = inbox.take(REFUSAL_TOPIC, refusal(suppressed=4))
    assert isinstance(taken, RefusalMessage) and inbox.received == 1 and inbox.last == taken
    [line] = warnings(caplog)
    for part in (
        "invalid",
        "fields.level_cm: Input should be a valid number",
        "citywatch/v1/s1/c1/telemetry",
    ):
        assert part in line
    assert "outbox_seq 17" in line and "4 more refused" in line


def test_the_log_is_rate_limited_and_says_how_much_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    inbox = RefusalInbox(log_interval_s=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(50):
            inbox.take(REFUSAL_TOPIC, refusal())
        clock.now += 10
        inbox.take(REFUSAL_TOPIC, refusal())
    assert inbox.received == 51, "every one counted"
    lines = warnings(caplog)
    assert len(lines) == 2
    assert "[49 more like this not logged]" in lines[1]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1]",
        b'{"v": 1, "reason": "invalid"}',  # fields missing
        b'{"v": 2, "ts": "2026-06-01T12:00:00Z", "reason": "x", "detail": "", "topic": "t"}',
        b"\xff\xfe",
        b"",
    ],
)
def test_a_malformed_refusal_is_ignored_and_logged(payload: bytes, caplog: pytest.LogCaptureFixture) -> None:
    inbox = RefusalInbox()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert inbox.take(REFUSAL_TOPIC, payload) is None
    assert (inbox.received, inbox.malformed) == (0, 1)
    [line] = warnings(caplog)
    assert "not a valid refusal" in line


def test_another_message_type_on_the_topic_is_not_a_refusal() -> None:
    inbox = RefusalInbox()
    receipt = ReceiptMessage(ts=datetime.now(UTC), stored=[(1, 2)]).to_json()
    assert inbox.take(str(Topic("s1", "c1", Channel.RECEIPT)), receipt) is None
    assert inbox.malformed == 1


def test_control_characters_stay_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    inbox = RefusalInbox()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        inbox.take(REFUSAL_TOPIC, refusal(detail="line one\nFAKE log line"))
    [line] = warnings(caplog)
    assert "\n" not in line and "line one\\nFAKE" in line


def test_the_uplink_hears_refusals_and_survives_garbage_on_the_topic(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    uplink = make_uplink(mosquitto, tmp_path).start()
    try:
        assert uplink.wait_subscribed(10), "the broker never acknowledged the refusal subscription"
        wait_until(lambda: collector.on(Channel.STATE), what="birth")
        collector.publish(REFUSAL_TOPIC, b"\x00 not a refusal")
        collector.publish(REFUSAL_TOPIC, refusal(suppressed=2))
        wait_until(lambda: uplink.refusals_received == 1, what="the refusal heard")
        assert uplink.connection.refusals.malformed == 1
        uplink.send(Channel.TELEMETRY, telemetry(1))
        wait_until(lambda: collector.on(Channel.TELEMETRY), what="telemetry after the garbage")
        assert uplink.connected
    finally:
        uplink.stop()
    lines = warnings(caplog)
    assert any("invalid" in line and "citywatch/v1/s1/c1/telemetry" in line for line in lines), lines
