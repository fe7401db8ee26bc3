"""Refusal feedback without a broker: the rate limits on an injected clock, the message built, what is
dropped while not connected. (Through Mosquitto with a gateway: test_refusal_feedback.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from citywatch.protocol.codec import decode
from citywatch.protocol.messages import RefusalMessage
from gateway.ingest.feedback import FeedbackLimiter, RefusalFeedback, feedback_topic, ids_of
from tests.gateway.helpers import telemetry, water_event

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOPIC = "citywatch/v1/riverside/culvert-1/telemetry"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_one_feedback_per_device_per_interval_reporting_what_it_held_back(clock: FakeClock) -> None:
    limiter = FeedbackLimiter(interval_s=10, max_per_s=50, clock=clock)
    assert limiter.admit("riverside/culvert-1") == 0, "the first refusal is reported at once"
    outcomes = [limiter.admit("riverside/culvert-1") for _ in range(99)]
    assert outcomes == [None] * 99
    clock.now += 9.9
    assert limiter.admit("riverside/culvert-1") is None, "still within the interval"
    clock.now += 0.1
    assert limiter.admit("riverside/culvert-1") == 100, "99 of the burst and one more, held back"
    assert limiter.admit("riverside/culvert-1") is None
    clock.now += 10
    assert limiter.admit("riverside/culvert-1") == 1


def test_devices_are_limited_each_on_their_own(clock: FakeClock) -> None:
    limiter = FeedbackLimiter(interval_s=10, max_per_s=50, clock=clock)
    assert limiter.admit("riverside/culvert-1") == 0
    assert limiter.admit("riverside/culvert-2") == 0
    assert limiter.admit("harbour/culvert-1") == 0, "the same id under another site is another topic"
    assert limiter.admit("riverside/culvert-1") is None


def test_the_total_is_capped_whatever_the_number_of_device_ids(clock: FakeClock) -> None:
    limiter = FeedbackLimiter(interval_s=10, max_per_s=5, clock=clock)
    admitted = [limiter.admit(f"riverside/ghost-{i}") for i in range(200)]
    assert sum(outcome is not None for outcome in admitted) == 5, "one second's worth at once"
    clock.now += 0.2
    admitted = [limiter.admit(f"riverside/ghost-{i}") for i in range(200, 400)]
    assert sum(outcome is not None for outcome in admitted) == 1, "then max_per_s: one per 0.2 s"
    clock.now += 100
    admitted = [limiter.admit(f"riverside/ghost-{i}") for i in range(400, 600)]
    assert sum(outcome is not None for outcome in admitted) == 5, "the bucket holds one second, no more"


def test_a_device_held_back_by_the_total_hears_later_with_the_count(clock: FakeClock) -> None:
    limiter = FeedbackLimiter(interval_s=10, max_per_s=1, clock=clock)
    assert limiter.admit("riverside/culvert-1") == 0
    assert limiter.admit("riverside/culvert-2") is None, "the total is spent"
    assert limiter.admit("riverside/culvert-2") is None
    clock.now += 1
    assert limiter.admit("riverside/culvert-2") == 2, "its first chance, not a full interval later"


def test_device_state_is_bounded(clock: FakeClock) -> None:
    limiter = FeedbackLimiter(interval_s=10, max_per_s=1000, max_devices=3, clock=clock)
    for device in ("a/1", "a/2", "a/3", "a/4"):
        limiter.admit(device)
    assert limiter.admit("a/4") is None, "the newest is remembered"
    assert limiter.admit("a/1") == 0, "the least recently refused is forgotten first"


@pytest.mark.parametrize(("interval_s", "max_per_s"), [(0, 50), (10, 0), (-1, 50)])
def test_limits_must_be_positive(interval_s: float, max_per_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        FeedbackLimiter(interval_s=interval_s, max_per_s=max_per_s)


def _feedback(
    clock: FakeClock, published: list[tuple[str, bytes]], *, connected: bool = True
) -> RefusalFeedback:
    def publish(topic: str, payload: bytes) -> bool:
        if connected:
            published.append((topic, payload))
        return connected

    return RefusalFeedback(FeedbackLimiter(interval_s=10, max_per_s=50, clock=clock), publish=publish)


def test_the_message_names_the_refusal_and_the_refused_message(clock: FakeClock) -> None:
    published: list[tuple[str, bytes]] = []
    feedback = _feedback(clock, published)
    raw = json.dumps({**json.loads(telemetry("culvert-1", 0)), "outbox_seq": 41}).encode()
    sent = feedback.offer(
        reason="invalid", detail="fields.level_cm: Input should be a valid number", topic=TOPIC,
        shown_topic=TOPIC, at=AT, refused=raw,
    )  # fmt: skip
    assert sent
    [(topic, payload)] = published
    assert topic == "citywatch/v1/riverside/culvert-1/refusal"
    message = decode(topic, payload).message
    assert message == RefusalMessage(
        ts=AT,
        reason="invalid",
        detail="fields.level_cm: Input should be a valid number",
        topic=TOPIC,
        channel="telemetry",  # type: ignore[arg-type]
        outbox_seq=41,
        suppressed=0,
    )
    assert feedback.status()["sent"] == 1


def test_feedback_while_not_connected_is_dropped_counted_and_reported_later(clock: FakeClock) -> None:
    published: list[tuple[str, bytes]] = []
    feedback = _feedback(clock, published, connected=False)
    assert not feedback.offer(reason="invalid", detail="d", topic=TOPIC, shown_topic=TOPIC, at=AT)
    assert feedback.status()["dropped_not_connected"] == 1

    def publish(topic: str, payload: bytes) -> bool:
        published.append((topic, payload))
        return True

    feedback.attach(publish)  # connected again
    clock.now += 10
    assert feedback.offer(reason="invalid", detail="d", topic=TOPIC, shown_topic=TOPIC, at=AT)
    [(_, payload)] = published
    assert json.loads(payload)["suppressed"] == 1, "the one that could not be sent"


def test_without_a_publisher_nothing_is_sent(clock: FakeClock) -> None:
    feedback = RefusalFeedback(FeedbackLimiter(interval_s=10, max_per_s=50, clock=clock))
    assert not feedback.offer(reason="invalid", detail="d", topic=TOPIC, shown_topic=TOPIC, at=AT)
    assert feedback.status()["dropped_not_connected"] == 1


@pytest.mark.parametrize(
    ("refused_topic", "expected"),
    [
        (TOPIC, "citywatch/v1/riverside/culvert-1/refusal"),
        ("citywatch/v2/riverside/culvert-1/telemetry", "citywatch/v1/riverside/culvert-1/refusal"),
        ("citywatch/v1/riverside/culvert-1/telemetry/extra", "citywatch/v1/riverside/culvert-1/refusal"),
        ("citywatch/v1/riverside/culvert-1/colour", "citywatch/v1/riverside/culvert-1/refusal"),
        ("citywatch/v1/River Side/culvert-1/telemetry", None),
        ("citywatch/v1/riverside/Culvert#1/telemetry", None),
        ("citywatch/v1/riverside/" + "c" * 65 + "/telemetry", None),
        ("citywatch/v1/riverside", None),
        ("elsewhere/v1/riverside/culvert-1/telemetry", None),
    ],
)
def test_feedback_goes_to_valid_ids_only(refused_topic: str, expected: str | None) -> None:
    target = feedback_topic(refused_topic)
    assert (str(target) if target else None) == expected


@pytest.mark.parametrize(
    ("refused", "outbox_seq", "event_id"),
    [
        (b'{"outbox_seq": 7, "event_id": "evt-00000001"}', 7, "evt-00000001"),
        (b'{"outbox_seq": "7", "event_id": "short"}', None, None),
        (b'{"outbox_seq": 0}', None, None),
        (b'{"outbox_seq": true}', None, None),
        (b'{"outbox_seq": 9007199254740992}', None, None),
        (b'{"event_id": "evt-00000001\\n"}', None, None),
        (b"[1, 2]", None, None),
        (b"\xff\xfe", None, None),
        (b"[" * 60_000, None, None),  # nested too deep to parse
        (json.dumps({"outbox_seq": 3, "pad": "x" * 70_000}).encode(), None, None),
        (None, None, None),
    ],
)
def test_ids_are_read_only_when_valid(
    refused: bytes | None, outbox_seq: int | None, event_id: str | None
) -> None:
    ids = ids_of(refused)
    assert (ids.outbox_seq, ids.event_id) == (outbox_seq, event_id)


def test_ids_of_a_decoded_message() -> None:
    message = decode(
        "citywatch/v1/riverside/culvert-1/event", water_event("culvert-1", "evt-00000009", 1)
    ).message
    assert ids_of(message).event_id == "evt-00000009"
