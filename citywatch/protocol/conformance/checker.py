"""The checker: feed it every message as the broker delivered it; it returns the findings, message by message.

Pure: no broker, no clock of its own (each observation carries its arrival time). ``watch.py`` feeds it
from a live broker; tests feed it sequences directly. The reference for payloads is the protocol's
own decoder (``citywatch.protocol.codec.decode``), so the kit and the gateway cannot disagree on them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from citywatch.protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, RejectedMessage, decode
from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance import payload
from citywatch.protocol.conformance.commands import CommandTracker
from citywatch.protocol.conformance.events import EventTracker
from citywatch.protocol.conformance.evidence import EvidenceTracker
from citywatch.protocol.conformance.findings import Finding
from citywatch.protocol.conformance.judgement import Judgement, Observation, about_watch
from citywatch.protocol.conformance.outbox import OutboxTracker
from citywatch.protocol.conformance.probes import Probe
from citywatch.protocol.conformance.scope import Relation, Scope
from citywatch.protocol.conformance.sessions import SessionTracker
from citywatch.protocol.messages import (
    AckMessage,
    CommandMessage,
    ConfigMessage,
    EventMessage,
    EvidenceMessage,
    StateMessage,
)
from citywatch.protocol.topics import (
    DEVICE_TO_GATEWAY,
    GATEWAY_TO_DEVICE,
    Topic,
    TopicError,
    TopicVersionError,
)

DEFAULT_CLOCK_SKEW_S = 300.0  # the gateway's CITYWATCH_CLOCK_SKEW_S default
DEFAULT_SILENT_AFTER_S = 600.0  # the gateway's CITYWATCH_DEVICE_OFFLINE_AFTER_S default
DEFAULT_ACK_TIMEOUT_S = 10.0


class CheckOptions(BaseModel):
    """What is checked, and the bounds the gateway would apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str | None = Field(
        default=None, title="Site", description="Only this site's topics (None: every site)."
    )
    device_id: str | None = Field(
        default=None, title="Device", description="Only this device (None: every device)."
    )
    clock_skew_s: float = Field(
        default=DEFAULT_CLOCK_SKEW_S,
        ge=0,
        title="Clock skew",
        description="How far ahead of the kit's clock a device timestamp may be, seconds (the gateway's "
        "CITYWATCH_CLOCK_SKEW_S).",
    )
    max_payload_bytes: int = Field(
        default=DEFAULT_MAX_PAYLOAD_BYTES, gt=0, title="Payload limit", description="Bytes (the gateway's)."
    )
    ack_timeout_s: float = Field(
        default=DEFAULT_ACK_TIMEOUT_S,
        gt=0,
        title="Ack timeout",
        description="How long an online device may take to answer a cmd, seconds.",
    )
    silent_after_s: float = Field(
        default=DEFAULT_SILENT_AFTER_S,
        gt=0,
        title="Silence bound",
        description="How long an online device may go unheard, seconds (the gateway's "
        "CITYWATCH_DEVICE_OFFLINE_AFTER_S).",
    )


@dataclass(slots=True)
class _Device:
    sessions: SessionTracker
    events: EventTracker
    commands: CommandTracker
    outbox: OutboxTracker = field(default_factory=OutboxTracker)
    evidence: EvidenceTracker = field(default_factory=EvidenceTracker)
    last_heard: datetime | None = None


class Checker:
    def __init__(self, options: CheckOptions | None = None, *, started_at: datetime) -> None:
        self.options = options or CheckOptions()
        self.scope = Scope(self.options.site, self.options.device_id)
        self.started_at = started_at
        self.messages = 0  # judged (in scope), numbered from 1
        self.by_channel: Counter[str] = Counter()
        self._devices: dict[str, _Device] = {}
        self._digests: set[bytes] = set()
        self._probes: dict[str, Probe] = {}  # cmd_id -> probe awaiting its ack
        self._probe_ids: set[str] = set()
        self._told_retain_unknown = False
        self._max_ahead = timedelta(seconds=self.options.clock_skew_s)
        self._ack_timeout = timedelta(seconds=self.options.ack_timeout_s)

    @property
    def devices(self) -> list[str]:
        return sorted(self._devices)

    # -- the message stream ------------------------------------------------------------------------

    def observe(self, observation: Observation) -> list[Finding]:
        relation = self.scope.relation(observation.topic)
        if relation is Relation.OUT:
            return []
        self.messages += 1
        judgement = Judgement(self.messages, observation.topic, device_id=self.options.device_id)
        if relation is Relation.OTHER_SITE:
            judgement.add(
                rules.TOPIC_SITE,
                f"device {self.options.device_id} publishes under site {observation.topic.split('/')[2]!r}, "
                f"not {self.options.site!r}: a device publishes only under its own site (the gateway refuses "
                "wrong_site)",
            )
            return judgement.findings
        try:
            topic = Topic.parse(observation.topic)
        except TopicVersionError as exc:
            judgement.add(rules.TOPIC_VERSION, f"{exc}: publish under citywatch/v1/")
            return judgement.findings
        except TopicError as exc:
            judgement.add(rules.TOPIC_SHAPE, f"{exc} (the gateway refuses bad_topic)")
            return judgement.findings
        judgement.device_id = topic.device_id
        self.by_channel[topic.channel.value] += 1
        device = self._device(topic.device_id)
        if observation.retain is None and not self._told_retain_unknown:
            self._told_retain_unknown = True
            judgement.add(
                rules.MQTT_RETAIN_UNKNOWN,
                "the broker delivers live messages without their retain flag (MQTT 3.1.1): retain is checked only "
                "on what the broker held when the kit subscribed; use an MQTT 5 broker to check every message",
            )
        if topic.channel in GATEWAY_TO_DEVICE:
            self._gateway_message(topic, observation, device, judgement)
        elif topic.channel in DEVICE_TO_GATEWAY:
            self._device_message(topic, observation, device, judgement)
        return judgement.findings

    def _device(self, device_id: str) -> _Device:
        device = self._devices.get(device_id)
        if device is None:
            device = _Device(
                SessionTracker(),
                EventTracker(watch_started_at=self.started_at),
                CommandTracker(self._ack_timeout),
            )
            self._devices[device_id] = device
        return device

    def _gateway_message(
        self, topic: Topic, observation: Observation, device: _Device, judgement: Judgement
    ) -> None:
        """cmd, config, receipt... are the gateway's to send; a device message there is the device's mistake."""
        if not observation.payload:
            return  # a retained config cleared
        try:
            message = decode(observation.topic, observation.payload).message
        except RejectedMessage as exc:
            looks_like = payload.device_message_type(topic, observation.payload)
            if looks_like is not None:
                judgement.add(
                    rules.TOPIC_DIRECTION,
                    f"a {looks_like} published on {topic.channel.value}, a gateway→device channel: a device "
                    "publishes only on state, telemetry, event, snapshot, evidence and ack",
                )
            else:
                judgement.add(
                    rules.GATEWAY_INVALID,
                    f"{topic.channel.value} message the models refuse ({exc.reason}: {exc.detail}); the device "
                    "should ignore it. Not the device's fault, unless it published this",
                )
            return
        if isinstance(message, CommandMessage | ConfigMessage):
            device.commands.command(
                message.cmd_id,
                expect_ack=isinstance(message, CommandMessage)
                and observation.retain is not True
                and message.cmd_id not in self._probe_ids,  # probes are judged as such
                online=bool(device.sessions.online),
                at=observation.received_at,
            )

    def _device_message(
        self, topic: Topic, observation: Observation, device: _Device, judgement: Judgement
    ) -> None:
        channel = topic.channel
        if not payload.check_transport(channel, observation, judgement):
            return
        message = payload.decode_device_message(
            channel, observation, judgement, max_bytes=self.options.max_payload_bytes
        )
        if message is None:
            return
        payload.check_clock(message, observation.received_at, self._max_ahead, judgement)
        self._check_heard(device, observation.received_at, judgement)
        digest = _digest(observation.topic, message)
        if digest in self._digests:
            judgement.add(
                rules.MESSAGE_DUPLICATE,
                f"the same {channel.value} message again (a QoS 1 redelivery or a resend): receivers ignore it",
            )
            return
        self._digests.add(digest)
        if isinstance(message, StateMessage):
            births = device.sessions.births
            device.sessions.state(message, judgement)
            if device.sessions.births > births:
                device.commands.connected(observation.received_at)
            return
        device.sessions.data(judgement)
        if isinstance(message, EventMessage):
            device.events.event(message, judgement, births=device.sessions.births)
        if isinstance(message, EvidenceMessage):
            device.evidence.part(message, judgement)
        if "outbox_seq" in type(message).model_fields:
            device.outbox.message(message.outbox_seq, message.ts, digest, judgement)  # type: ignore[attr-defined]
        if isinstance(message, AckMessage):
            probe = self._probes.pop(message.cmd_id, None)
            if probe is not None:
                probe.judge(message, judgement, at=observation.received_at)
            device.commands.ack(message, digest, judgement, probe=message.cmd_id in self._probe_ids)

    def _check_heard(self, device: _Device, now: datetime, judgement: Judgement) -> None:
        previous, device.last_heard = device.last_heard, now
        if previous is None or not device.sessions.online:
            return
        silent = (now - previous).total_seconds()
        if silent > self.options.silent_after_s:
            judgement.add(rules.PRESENCE_SILENT, _silent_text(silent, self.options.silent_after_s))

    # -- probes and the end of the watch ----------------------------------------------------------

    def probe_sent(self, probe: Probe) -> None:
        self._probes[probe.command.cmd_id] = probe
        self._probe_ids.add(probe.command.cmd_id)

    def online(self, device_id: str) -> bool:
        """The device's latest state applied says online (its birth, retained or live)."""
        device = self._devices.get(device_id)
        return device is not None and device.sessions.online is True

    @property
    def pending_probes(self) -> bool:
        return bool(self._probes)

    def overdue(self, now: datetime) -> list[Finding]:
        """Probes and commands whose time to be answered is up, each reported once."""
        late = [cmd_id for cmd_id, probe in self._probes.items() if probe.deadline <= now]
        found = [self._probes.pop(cmd_id).unanswered() for cmd_id in late]
        for device_id, device in self._devices.items():
            found += device.commands.overdue(now, device_id)
        return found

    def finish(self, now: datetime) -> list[Finding]:
        """At the end of the watch: what is overdue, the probes still unanswered, online devices silent for
        too long, and a watch that saw nothing. Commands not yet due are not judged."""
        found = self.overdue(now)
        found += [probe.unanswered() for probe in self._probes.values()]
        self._probes.clear()
        for device_id, device in self._devices.items():
            found += device.evidence.finish(device_id)
            if device.last_heard is not None and device.sessions.online:
                silent = (now - device.last_heard).total_seconds()
                if silent > self.options.silent_after_s:
                    text = _silent_text(silent, self.options.silent_after_s) + " (until the end of the watch)"
                    found.append(about_watch(rules.PRESENCE_SILENT, text, device_id=device_id))
        if not any(self.by_channel[channel.value] for channel in DEVICE_TO_GATEWAY):
            found.append(
                about_watch(
                    rules.WATCH_SILENT,
                    f"no device message under {self.scope.describe()} while watching: is the device connected, "
                    "and are the site and device id right?",
                    device_id=self.options.device_id,
                )
            )
        return found


def _silent_text(silent_s: float, bound_s: float) -> str:
    return (
        f"online device not heard from for {silent_s:.0f} s, over {bound_s:.0f} s: the gateway shows it silent "
        "and raises device_offline; send something (health telemetry) at least that often"
    )


def _digest(topic: str, message: BaseModel) -> bytes:
    """The message's content whatever its spelling (key order, spaces, Z or +00:00): what "the same" means."""
    return hashlib.sha256(topic.encode() + b"\0" + message.model_dump_json().encode()).digest()[:16]
