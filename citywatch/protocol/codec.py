"""Decoding with the checks every receiver needs: size, JSON, version, schema, topic/payload agreement."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from citywatch.protocol.messages import MESSAGE_BY_CHANNEL, PROTOCOL_VERSION
from citywatch.protocol.topics import Topic, TopicError

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024


class RejectedMessage(ValueError):
    """A message refused, with a short machine-readable ``reason`` and a human ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded:
    topic: Topic
    message: BaseModel


def decode(topic: str, payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Decoded:
    """Parse and validate one MQTT message, or raise RejectedMessage saying why."""
    try:
        parsed_topic = _parse_topic(topic)
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
    return Decoded(topic=parsed_topic, message=message)


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
    if version != PROTOCOL_VERSION:
        raise RejectedMessage("wrong_version", f"schema version {version!r}, expected {PROTOCOL_VERSION}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise RejectedMessage("invalid", problems) from None
