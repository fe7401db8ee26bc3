"""What the conformance kit reports: rules with stable ids, and findings (one rule broken by one message).

Every rule has one severity: ``error`` breaks docs/protocol.md (the gateway refuses or misreads the
message, or a device rule is broken), ``warning`` is allowed but suspicious or costly, ``info`` is
normal behaviour worth seeing (QoS 1 duplicates, resends). The ids are stable: scripts may match them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    level: Level
    summary: str  # what the rule says, one line (docs and --list-rules)


class Finding(BaseModel):
    """One deviation (or notable fact) about one message, or about the watch as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(
        title="Rule id", description="Stable id, e.g. event.unknown (docs/protocol.md lists them)."
    )
    severity: Level = Field(title="Severity", description="error, warning or info.")
    message_no: int | None = Field(
        default=None,
        ge=1,
        title="Message number",
        description="Position of the message among those watched, from 1; absent for the watch as a whole.",
    )
    topic: str | None = Field(default=None, title="Topic")
    device_id: str | None = Field(default=None, title="Device id")
    text: str = Field(
        title="Explanation", description="A plain sentence: what is wrong and what the page asks."
    )

    def line(self) -> str:
        where = f"#{self.message_no}" if self.message_no is not None else "-"
        topic = f" {self.topic}" if self.topic else (f" {self.device_id}" if self.device_id else "")
        return f"{self.severity.value:<7} {where}{topic} [{self.rule}] {self.text}"


def _rule(rule_id: str, level: Level, summary: str) -> Rule:
    return Rule(rule_id, level, summary)


E, W, I = Level.ERROR, Level.WARNING, Level.INFO  # noqa: E741 - three letters read as the table below

# Topics
TOPIC_VERSION = _rule("topic.version", E, "topic of another version than v1 (citywatch/v2/...)")
TOPIC_SHAPE = _rule("topic.shape", E, "not citywatch/v1/{site}/{device_id}/{channel}: level, channel or id")
TOPIC_SITE = _rule("topic.site", E, "the device publishes under another site than the one checked")
TOPIC_DIRECTION = _rule("topic.direction", E, "a device message on a gateway→device channel (cmd, config...)")
GATEWAY_INVALID = _rule("gateway.invalid", W, "a message on a gateway→device channel the models refuse")
# Transport
MQTT_QOS = _rule("mqtt.qos", E, "published with QoS 0: every message is QoS 1")
MQTT_RETAIN = _rule("mqtt.retain", E, "state not retained, or another device channel retained")
MQTT_RETAIN_UNKNOWN = _rule(
    "mqtt.retain_unknown", I, "the broker speaks MQTT 3.1.1 only: retain flags of live messages unknown"
)
MESSAGE_DUPLICATE = _rule("message.duplicate", I, "the same message again (QoS 1 redelivery or a resend)")
PAYLOAD_CLEARED = _rule("payload.cleared", I, "an empty retained payload: a retained topic cleared")
PAYLOAD_EMPTY = _rule(
    "payload.empty", W, "an empty payload not retained: it clears nothing, the gateway ignores it"
)
# Payload (the reference models' decoding, citywatch.protocol.codec)
PAYLOAD_OVERSIZED = _rule("payload.oversized", E, "payload over the size limit (256 KiB)")
PAYLOAD_JSON = _rule("payload.json", E, "not UTF-8 JSON, or not a JSON object")
PAYLOAD_VERSION = _rule("payload.version", E, "v missing or not the JSON integer 1")
PAYLOAD_INVALID = _rule(
    "payload.invalid",
    E,
    "missing, unknown or ill-typed field, bad timestamp spelling, details not fitting type",
)
PAYLOAD_DEVICE_ID = _rule("payload.device_id", E, "payload device_id differs from the topic's")
# Device clock
TS_AHEAD = _rule("ts.ahead", E, "a timestamp more than the allowed skew ahead of the kit's clock")
TS_BEFORE_2020 = _rule("ts.before_2020", E, "a timestamp before 2020-01-01: the clock was never set")
# Sessions: birth and will
SESSION_NO_BIRTH = _rule("session.no_birth", W, "data from a device with no state (no birth) on the broker")
SESSION_OFFLINE_DATA = _rule(
    "session.data_after_offline", W, "data after the device went offline, before a new birth"
)
SESSION_NOT_INCREASING = _rule(
    "session.not_increasing", E, "a birth whose session is not above the current one (ignored as stale)"
)
SESSION_RESET = _rule("session.reset", W, "a birth with a lower session, stamped later: a counter reset")
SESSION_BIRTH_ORDER = _rule(
    "session.birth_ts_order", W, "a birth with a higher session stamped before the previous birth"
)
SESSION_WILL_MISMATCH = _rule(
    "session.will_mismatch", E, "an offline state with an older session, stamped after the current birth"
)
SESSION_WILL_FIELDS = _rule(
    "session.will_fields", E, "an offline state whose device_type or versions differ from its birth"
)
SESSION_WILL_UNMATCHED = _rule(
    "session.will_without_birth", W, "an offline state of a session whose birth was not seen"
)
SESSION_STALE_WILL = _rule(
    "session.stale_will", I, "the will of an earlier connection arriving late (ignored)"
)
# Events
EVENT_SEQ_PHASE = _rule("event.seq_phase", E, "phase new without seq 0, or a later phase with seq 0")
EVENT_UNKNOWN = _rule("event.unknown", E, "update or end of an event whose new was never published")
EVENT_BEFORE_WATCHING = _rule(
    "event.began_before_watching", W, "update or end of an event that began before the kit was watching"
)
EVENT_SEQ_GAP = _rule("event.seq_gap", E, "an event's seq skipped numbers (it goes up by 1)")
EVENT_SEQ_REUSED = _rule(
    "event.seq_reused", E, "an event revision (seq) reused with other content, or going back"
)
EVENT_AFTER_END = _rule("event.after_end", E, "a message of an event after its end")
EVENT_TYPE_CHANGED = _rule("event.type_changed", E, "an event's type differs from its new")
EVENT_STARTED_AT = _rule("event.started_at_changed", E, "an event's started_at changes between its messages")
EVENT_END_SEVERITY = _rule(
    "event.end_severity", W, "an end with a lower severity than the event reached (end carries the highest)"
)
EVENT_SECOND_OPEN = _rule(
    "event.second_open", W, "a new event of a type the device already has open (the gateway folds it in)"
)
EVENT_RERAISED = _rule("event.reraised", I, "a new event of a type open before the device reconnected")
# Delivery receipts (outbox_seq)
OUTBOX_REUSED = _rule("outbox_seq.reused", E, "an outbox_seq given out again with other content")
OUTBOX_BACKWARDS = _rule("outbox_seq.backwards", E, "a new message numbered below an earlier, older one")
OUTBOX_RESENT_UNSEEN = _rule(
    "outbox_seq.resent_unseen", I, "a resend of a numbered message the kit did not see"
)
OUTBOX_PARTIAL = _rule("outbox_seq.partial", W, "the device numbers some messages and not others")
# Evidence (items sent in parts)
EVIDENCE_CONFLICT = _rule(
    "evidence.conflict",
    E,
    "an evidence part disagreeing with its item's earlier parts, or resent with other bytes",
)
EVIDENCE_CORRUPT = _rule(
    "evidence.corrupt", E, "an evidence item whose joined parts are not its size or SHA-256"
)
EVIDENCE_INCOMPLETE = _rule(
    "evidence.incomplete", W, "an evidence item with parts missing at the end of the watch"
)
# Commands and acks
ACK_MISSING = _rule("ack.missing", E, "a cmd delivered to an online device and not answered in time")
ACK_UNKNOWN_CMD = _rule("ack.unknown_cmd", I, "an ack of a cmd_id not sent while the kit was watching")
ACK_REPEATED = _rule(
    "ack.repeated", I, "a second, different ack of one cmd_id (the gateway records the first)"
)
PROBE_NO_ACK = _rule("probe.no_ack", E, "no ack to the kit's probe command within the timeout")
PROBE_PING = _rule("probe.ping", E, "the ping probe was not answered ok")
PROBE_EXPIRED = _rule("probe.expired", E, "the expired probe was run, or refused without reason expired")
PROBE_PASSED = _rule("probe.passed", I, "a probe answered as the page asks")
# Presence
PRESENCE_SILENT = _rule(
    "presence.silent",
    W,
    "an online device not heard from for longer than the gateway's offline bound (600 s)",
)
# The watch as a whole
WATCH_SILENT = _rule("watch.silent", E, "nothing from the device(s) during the watch")

RULES: tuple[Rule, ...] = tuple(value for value in globals().values() if isinstance(value, Rule))
RULE_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
