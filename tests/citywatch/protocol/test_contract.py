"""The contract's decoding rules, shared by every receiver."""

from __future__ import annotations

import json

import pytest

from citywatch.protocol import Channel, Topic, TopicError
from citywatch.protocol.codec import RejectedMessage, decode

TELEMETRY = {
    "v": 1,
    "device_id": "culvert-01",
    "ts": "2026-06-01T12:00:00Z",
    "measurement": "water_level",
    "fields": {"level_cm": 12.5},
}
EVENT = {
    "v": 1,
    "device_id": "culvert-01",
    "event_id": "01J00000000000000000000000",
    "seq": 0,
    "phase": "new",
    "type": "water_level",
    "severity": "notice",
    "confidence": 0.9,
    "ts": "2026-06-01T12:00:00Z",
    "started_at": "2026-06-01T11:59:00Z",
    "details": {"level_cm": 11.0, "peak_cm": 11.0, "threshold_cm": 10.0},
}


def test_topic_round_trip() -> None:
    topic = Topic(site="district-7", device_id="culvert-01", channel=Channel.EVENT)
    assert str(topic) == "citywatch/v1/district-7/culvert-01/event"
    assert Topic.parse(str(topic)) == topic


@pytest.mark.parametrize(
    "topic",
    ["citywatch/v2/s/d/event", "citywatch/v1/s/d/nope", "other/v1/s/d/event", "citywatch/v1/S!/d/event"],
)
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        Topic.parse(topic)


def test_valid_messages_decode() -> None:
    decoded = decode("citywatch/v1/s1/culvert-01/event", json.dumps(EVENT).encode())
    assert decoded.topic.device_id == "culvert-01"
    decoded = decode("citywatch/v1/s1/culvert-01/telemetry", json.dumps(TELEMETRY).encode())
    assert decoded.message.fields == {"level_cm": 12.5}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (json.dumps({**TELEMETRY, "v": 2}).encode(), "wrong_version"),
        (json.dumps({**TELEMETRY, "fields": {"level_cm": "high"}}).encode(), "invalid"),
        (json.dumps({**TELEMETRY, "ts": "2026-06-01T12:00:00"}).encode(), "invalid"),  # no UTC offset
        (json.dumps({**TELEMETRY, "extra": 1}).encode(), "invalid"),
        (json.dumps({**TELEMETRY, "device_id": "culvert-02"}).encode(), "topic_mismatch"),
        (b"{" + b" " * (300 * 1024) + b"}", "oversized"),
    ],
)
def test_bad_payloads_are_refused_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(RejectedMessage) as refused:
        decode("citywatch/v1/s1/culvert-01/telemetry", payload)
    assert refused.value.reason == reason


def test_event_details_must_fit_the_type() -> None:
    bad = {**EVENT, "details": {"level_cm": 11.0}}
    with pytest.raises(RejectedMessage, match="invalid"):
        decode("citywatch/v1/s1/culvert-01/event", json.dumps(bad).encode())
    with pytest.raises(RejectedMessage, match="seq 0"):
        decode("citywatch/v1/s1/culvert-01/event", json.dumps({**EVENT, "seq": 3}).encode())
