"""One message on its own: transport flags, decoding by the reference models, JSON types, device clock.

Nothing here remembers earlier messages; the trackers (sessions, events, outbox, commands) do.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from pydantic import BaseModel

from citywatch.protocol.codec import EARLIEST_DEVICE_TIME, RejectedMessage, decode
from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.judgement import Judgement, Observation
from citywatch.protocol.messages import MESSAGE_BY_CHANNEL, QOS_BY_CHANNEL, RETAINED_CHANNELS
from citywatch.protocol.topics import DEVICE_TO_GATEWAY, Channel, Topic

_PAYLOAD_RULES = {
    "oversized": rules.PAYLOAD_OVERSIZED,
    "malformed_json": rules.PAYLOAD_JSON,
    "wrong_version": rules.PAYLOAD_VERSION,
    "invalid": rules.PAYLOAD_INVALID,
    "topic_mismatch": rules.PAYLOAD_DEVICE_ID,
}
# The model's own words for the seq/phase rule (messages.EventMessage): refined into event.seq_phase.
_SEQ_PHASE_ERROR = "phase 'new' must have seq 0"


def check_transport(channel: Channel, observation: Observation, judgement: Judgement) -> bool:
    """QoS and retain flag of a device message; False when there is no payload to judge further."""
    if observation.qos != QOS_BY_CHANNEL[channel]:
        judgement.add(
            rules.MQTT_QOS,
            f"published with QoS {observation.qos}: every message is QoS {QOS_BY_CHANNEL[channel]}",
        )
    retained = channel in RETAINED_CHANNELS
    if not observation.payload:
        if observation.retain:
            judgement.add(
                rules.PAYLOAD_CLEARED, f"empty retained payload: the retained {channel.value} is cleared"
            )
        elif observation.retain is False:
            judgement.add(
                rules.PAYLOAD_EMPTY,
                "empty payload, not retained: it clears nothing (publish it retained to clear a retained topic); "
                "the gateway ignores it",
            )
        return False
    if observation.retain is not None and observation.retain != retained:
        why = (
            "birth and will are retained, so that a subscriber learns the presence at once"
            if retained
            else f"only state is retained (a retained {channel.value} is delivered again to every new subscriber)"
        )
        judgement.add(
            rules.MQTT_RETAIN, f"{channel.value} published {'not ' if retained else ''}retained: {why}"
        )
    return True


def decode_device_message(
    channel: Channel, observation: Observation, judgement: Judgement, *, max_bytes: int
) -> BaseModel | None:
    """The message as the gateway decodes it, or None with the reasons it would refuse it."""
    try:
        return decode(observation.topic, observation.payload, max_bytes=max_bytes).message
    except RejectedMessage as exc:
        _refused(channel, observation.payload, exc, judgement)
        return None


def _refused(channel: Channel, payload: bytes, exc: RejectedMessage, judgement: Judgement) -> None:
    if channel is Channel.EVENT and exc.reason == "invalid":
        phase_and_seq = _phase_and_seq(payload)
        if phase_and_seq is not None:
            phase, seq = phase_and_seq
            judgement.add(
                rules.EVENT_SEQ_PHASE,
                f"phase {phase} with seq {seq}: phase new has seq 0, update and end 1, 2, …",
            )
            if _SEQ_PHASE_ERROR in exc.detail:
                return  # that was the only problem
    rule = _PAYLOAD_RULES.get(exc.reason, rules.PAYLOAD_INVALID)
    judgement.add(rule, f"{exc.detail} (the gateway refuses it: {exc.reason})")


def _phase_and_seq(payload: bytes) -> tuple[str, int] | None:
    """An event's phase and seq when they disagree (new without seq 0, a later phase with seq 0)."""
    try:
        raw = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    phase, seq = raw.get("phase"), raw.get("seq")
    if phase not in ("new", "update", "end") or type(seq) is not int:
        return None
    return (phase, seq) if (phase == "new") != (seq == 0) else None


def check_clock(message: BaseModel, now: datetime, max_ahead: timedelta, judgement: Judgement) -> None:
    """Every timestamp of the message (ts, an event's started_at) against the kit's clock at arrival."""
    for name in type(message).model_fields:
        value = getattr(message, name)
        if not isinstance(value, datetime):
            continue
        offset = (value - now).total_seconds()
        if offset > max_ahead.total_seconds():
            judgement.add(
                rules.TS_AHEAD,
                f"{name} {value.isoformat()} is {offset:.0f} s ahead of the kit's clock (at most "
                f"{max_ahead.total_seconds():.0f} s allowed; the gateway refuses it: clock): is the device's "
                "clock set by NTP?",
            )
        elif value < EARLIEST_DEVICE_TIME:
            judgement.add(
                rules.TS_BEFORE_2020,
                f"{name} {value.isoformat()} is before {EARLIEST_DEVICE_TIME.date()}: the device's clock is not set "
                "(the gateway refuses it: clock); publish only once NTP has answered",
            )


def device_message_type(topic: Topic, payload: bytes) -> str | None:
    """The device message a payload on a gateway→device topic decodes as, if any."""
    for channel in sorted(DEVICE_TO_GATEWAY):
        try:
            decode(str(Topic(topic.site, topic.device_id, channel)), payload)
        except RejectedMessage:
            continue
        return MESSAGE_BY_CHANNEL[channel].__name__
    return None
