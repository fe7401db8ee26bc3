"""The contract as strict as the page: numbers, versions, timestamps, topics and device clocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from citywatch.protocol.codec import ClockBounds, RejectedMessage, decode
from tests.citywatch.protocol.test_contract import EVENT, TELEMETRY

TELEMETRY_TOPIC = "citywatch/v1/s1/culvert-01/telemetry"
EVENT_TOPIC = "citywatch/v1/s1/culvert-01/event"
STATE_TOPIC = "citywatch/v1/s1/culvert-01/state"
STATE: dict[str, Any] = {
    "v": 1,
    "device_id": "culvert-01",
    "ts": "2026-06-01T12:00:00Z",
    "status": "online",
    "session": 3,
    "device_type": "culvert",
    "firmware_version": "1.0",
    "config_version": "c1",
}


def _refusal(topic: str, payload: bytes, **options: Any) -> str:
    with pytest.raises(RejectedMessage) as refused:
        decode(topic, payload, **options)
    return refused.value.reason


def _telemetry_with_raw_field(raw_value: str) -> bytes:
    """Python's json would spell NaN itself; a device's JSON library may write any of these."""
    return json.dumps(TELEMETRY).replace("12.5", raw_value).encode()


@pytest.mark.parametrize("raw_value", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_telemetry_values_are_invalid(raw_value: str) -> None:
    assert _refusal(TELEMETRY_TOPIC, _telemetry_with_raw_field(raw_value)) == "invalid"


@pytest.mark.parametrize(
    "change",
    [
        {"details": {"level_cm": float("nan"), "peak_cm": 11.0, "threshold_cm": 10.0}},
        {"details": {"level_cm": 11.0, "peak_cm": float("inf"), "threshold_cm": 10.0}},
        {"confidence": float("nan")},
    ],
    ids=["details NaN", "details Infinity", "confidence NaN"],
)
def test_non_finite_event_numbers_are_invalid(change: dict[str, Any]) -> None:
    assert _refusal(EVENT_TOPIC, json.dumps(EVENT | change).encode()) == "invalid"


@pytest.mark.parametrize("value", ["1.5", "12", "true"])
def test_strings_are_not_numbers(value: str) -> None:
    """ "number or boolean", as the page says: a string is refused, not converted."""
    payload = json.dumps(TELEMETRY | {"fields": {"level_cm": value}}).encode()
    assert _refusal(TELEMETRY_TOPIC, payload) == "invalid"


def test_strings_are_not_numbers_in_event_details() -> None:
    details = {"level_cm": "11.0", "peak_cm": 11.0, "threshold_cm": 10.0}
    assert _refusal(EVENT_TOPIC, json.dumps(EVENT | {"details": details}).encode()) == "invalid"


def test_numbers_and_booleans_keep_their_type() -> None:
    fields = {"level_cm": 12.5, "valid_readings": 5, "door_open": True, "zero": 0}
    message = decode(TELEMETRY_TOPIC, json.dumps(TELEMETRY | {"fields": fields}).encode()).message
    assert message.fields == fields  # type: ignore[attr-defined]
    assert [type(v) for v in message.fields.values()] == [float, int, bool, int]  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [True, 1.0, "1", 2, None])
@pytest.mark.parametrize(
    ("topic", "body"), [(TELEMETRY_TOPIC, TELEMETRY), (EVENT_TOPIC, EVENT), (STATE_TOPIC, STATE)]
)
def test_version_is_the_integer_1(version: object, topic: str, body: dict[str, Any]) -> None:
    assert _refusal(topic, json.dumps(body | {"v": version}).encode()) == "wrong_version"


@pytest.mark.parametrize(
    "ts",
    [
        1780315200,  # epoch seconds
        1780315200.25,
        "1780315200",  # epoch in a string
        "2026-06-01 12:00:00Z",  # a space is RFC 3339, not ISO 8601
        "2026-06-01t12:00:00z",
        "2026-06-01T12:00Z",  # seconds are required
        "2026-06-01T12:00:00+0100",  # the offset needs its colon
        "2026-06-01T12:00:00",  # no offset
        "2026-06-01",
        "",
    ],
)
@pytest.mark.parametrize("field", ["ts", "started_at"])
def test_timestamps_are_iso_8601_with_an_offset(ts: object, field: str) -> None:
    assert _refusal(EVENT_TOPIC, json.dumps(EVENT | {field: ts}).encode()) == "invalid"


@pytest.mark.parametrize(
    "ts", ["2026-06-01T12:00:00Z", "2026-06-01T12:00:00.250Z", "2026-06-01T14:00:00.123456+02:00"]
)
def test_iso_8601_timestamps_are_accepted(ts: str) -> None:
    message = decode(TELEMETRY_TOPIC, json.dumps(TELEMETRY | {"ts": ts}).encode()).message
    assert message.ts.astimezone(UTC).replace(microsecond=0) == datetime(2026, 6, 1, 12, tzinfo=UTC)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("citywatch/v2/s1/culvert-01/telemetry", "wrong_version"),
        ("citywatch/v2/s1/culvert-01/telemetry/extra", "wrong_version"),  # v2 may shape its tree otherwise
        ("citywatch/v0/s1/culvert-01/telemetry", "wrong_version"),
        ("citywatch/v1/s1/culvert-01/temperature", "bad_topic"),  # unknown channel
        ("citywatch/v1/s1/culvert-01/telemetry/extra", "bad_topic"),  # extra level
        ("citywatch/v1/s1/culvert-01", "bad_topic"),
        ("citywatch/v1/S1/culvert-01/telemetry", "bad_topic"),
        ("citywatch/version1/s1/culvert-01/telemetry", "bad_topic"),
        ("citywatch", "bad_topic"),
        ("other/v1/s1/culvert-01/telemetry", "bad_topic"),
    ],
)
def test_topics_are_refused_by_reason(topic: str, reason: str) -> None:
    assert _refusal(topic, json.dumps(TELEMETRY).encode()) == reason


# --- device clocks --------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BOUNDS = ClockBounds(max_ahead=timedelta(seconds=300), now=lambda: NOW)


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("field", "moment"),
    [
        ("ts", NOW + timedelta(seconds=301)),
        ("ts", datetime(2099, 1, 1, tzinfo=UTC)),
        ("started_at", NOW + timedelta(hours=1)),
        ("ts", datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC)),  # a clock never set (no RTC, no NTP yet)
        ("started_at", datetime(2019, 12, 31, 23, 59, tzinfo=UTC)),
    ],
)
def test_timestamps_beyond_the_clock_bounds_are_refused(field: str, moment: datetime) -> None:
    payload = json.dumps(EVENT | {field: _at(moment)}).encode()
    with pytest.raises(RejectedMessage) as refused:
        decode(EVENT_TOPIC, payload, clock=BOUNDS)
    assert refused.value.reason == "clock"
    assert field in refused.value.detail


@pytest.mark.parametrize(
    "moment",
    [
        NOW + timedelta(seconds=299),  # within the allowed lead
        NOW - timedelta(days=40),  # an outbox replayed after a long outage
        datetime(2020, 1, 1, tzinfo=UTC),
    ],
)
def test_timestamps_within_the_clock_bounds_are_accepted(moment: datetime) -> None:
    decode(TELEMETRY_TOPIC, json.dumps(TELEMETRY | {"ts": _at(moment)}).encode(), clock=BOUNDS)


def test_a_will_set_long_ago_is_accepted() -> None:
    """The will carries the connect time; the broker publishes it whenever the connection drops."""
    will = STATE | {"status": "offline", "ts": _at(NOW - timedelta(days=90))}
    decode(STATE_TOPIC, json.dumps(will).encode(), clock=BOUNDS)


def test_without_clock_bounds_any_time_decodes() -> None:
    """Devices and test tools decode without a clock: only the gateway judges device clocks."""
    decode(TELEMETRY_TOPIC, json.dumps(TELEMETRY | {"ts": "2099-01-01T00:00:00Z"}).encode())
