"""Decoding with the checks every receiver needs: size, JSON, version, schema, topic/payload agreement."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError

from citywatch.protocol.messages import MESSAGE_BY_CHANNEL, PROTOCOL_VERSION, utcnow
from citywatch.protocol.topics import Topic, TopicError, TopicVersionError

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
# Before this, a device clock was never set (a Pi without a real-time clock boots in 1970).
EARLIEST_DEVICE_TIME = datetime(2020, 1, 1, tzinfo=UTC)


class RejectedMessage(ValueError):
    """A message refused, with a short machine-readable ``reason`` and a human ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ClockRejected(RejectedMessage):
    """Refused for its device time (reason ``clock``); ``offset_s`` = device time minus receiver time."""

    def __init__(self, detail: str, *, offset_s: float) -> None:
        super().__init__("clock", detail)
        self.offset_s = offset_s


@dataclass(frozen=True, slots=True)
class ClockBounds:
    """How far a device clock may be from the receiver's.

    The future is bounded by ``max_ahead``. The past is not, beyond EARLIEST_DEVICE_TIME: an outbox
    replayed after an outage, a will set at connect time and messages the broker queued while the
    receiver was away all carry old times legitimately.
    """

    max_ahead: timedelta
    now: Callable[[], datetime] = utcnow


@dataclass(frozen=True, slots=True)
class Decoded:
    topic: Topic
    message: BaseModel


def decode(
    topic: str,
    payload: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    clock: ClockBounds | None = None,
) -> Decoded:
    """Parse and validate one MQTT message, or raise RejectedMessage saying why.

    ``clock``: judge the device's timestamps against the receiver's clock (the gateway does; devices
    and test tools decode without).
    """
    try:
        parsed_topic = _parse_topic(topic)
    except TopicVersionError as exc:
        raise RejectedMessage("wrong_version", str(exc)) from None
    except TopicError as exc:
        raise RejectedMessage("bad_topic", str(exc)) from None
    if len(payload) > max_bytes:
        raise RejectedMessage("oversized", f"{len(payload)} bytes is over the {max_bytes}-byte limit")
    model: type[BaseModel] = MESSAGE_BY_CHANNEL[parsed_topic.channel]
    # Fast path: pydantic parses the bytes itself (no json.loads, no intermediate dict). Anything it
    # refuses, or a message without an explicit "v" (the model would default it), takes the checked path
    # below, which names the reason exactly as before.
    try:
        message = model.model_validate_json(payload)
    except ValidationError:
        message = _validate_checked(model, payload)
    else:
        if "v" not in message.model_fields_set:
            message = _validate_checked(model, payload)
    device_id = getattr(message, "device_id", None)
    if device_id is not None and device_id != parsed_topic.device_id:
        raise RejectedMessage(
            "topic_mismatch",
            f"payload device_id {device_id!r} published on {parsed_topic.device_id!r}'s topic",
        )
    if clock is not None:
        check_clock(message, clock)
    return Decoded(topic=parsed_topic, message=message)


def check_clock(message: BaseModel, bounds: ClockBounds) -> None:
    """Raise ClockRejected for a timestamp over ``bounds.max_ahead`` ahead, or before EARLIEST_DEVICE_TIME."""
    now = bounds.now()
    earliest = EARLIEST_DEVICE_TIME - now  # as an offset: one datetime subtraction per field (the hot path)
    for name in _timestamp_fields(type(message)):
        value: datetime = getattr(message, name)
        offset = value - now
        if offset > bounds.max_ahead:
            raise ClockRejected(
                f"{name} {value.isoformat()} is {offset.total_seconds():.0f} s ahead of the gateway's clock "
                f"(at most {bounds.max_ahead.total_seconds():.0f} s allowed): is the device's clock set by NTP?",
                offset_s=offset.total_seconds(),
            )
        if offset < earliest:
            raise ClockRejected(
                f"{name} {value.isoformat()} is before {EARLIEST_DEVICE_TIME.date()}: the device's clock is not set",
                offset_s=offset.total_seconds(),
            )


@functools.cache
def _timestamp_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name, field in model.model_fields.items() if field.annotation is datetime)


# A gateway hears the same few thousand device topics over and over; failures are not cached.
_parse_topic = functools.lru_cache(maxsize=65_536)(Topic.parse)


def _validate_checked(model: type[BaseModel], payload: bytes) -> BaseModel:
    """JSON, version, then schema, each refused with its own reason."""
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RejectedMessage("malformed_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise RejectedMessage("malformed_json", "payload is not a JSON object")
    version = raw.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # true == 1 and 1.0 == 1 in Python
        raise RejectedMessage(
            "wrong_version", f"schema version {_shown(version)}, expected the integer {PROTOCOL_VERSION}"
        )
    try:
        # From the bytes again, as the fast path does: in JSON, numbers, strings and NaN stay apart.
        return model.model_validate_json(payload)
    except ValidationError as exc:
        # Field names and messages only: the values sent could be anything, secrets included.
        problems = "; ".join(
            f"{'.'.join(_shown_key(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise RejectedMessage("invalid", problems) from None


_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def _shown_key(part: str | int) -> str:
    return str(part) if isinstance(part, int) or _NAME.fullmatch(part) else "<key>"


def _shown(version: object) -> str:
    """A version as a device sent it, short and without echoing arbitrary content."""
    if version is None or isinstance(version, bool | int | float):
        return json.dumps(version)
    return f"of type {type(version).__name__}"
