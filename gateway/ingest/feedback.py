"""Refusal feedback: the gateway tells a device, on its own ``refusal`` topic, what it refused and why.

A device cannot see the gateway's log: without this it learns that its messages are refused only when
an installer looks. Feedback is rate-limited twice: per device (one message every ``interval_s``, with
the number not reported since the previous one), and in total (``max_per_s``), so that a flood of
refused input, or of invented device ids, cannot make the gateway flood the broker in turn. Unknown
devices get feedback too (an installer commissioning a device that is not registered yet sees why);
the total cap bounds what that costs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from citywatch.protocol.messages import EVENT_ID_PATTERN, RefusalMessage
from citywatch.protocol.topics import ID_PATTERN, ROOT, Channel, Topic

MAX_DEVICES = 10_000  # per-device state kept, least recently refused forgotten first
_MAX_PAYLOAD_READ = 64 * 1024  # larger refused payloads are not parsed for their outbox_seq / event_id
_CHANNELS = frozenset(channel.value for channel in Channel)
_ID = re.compile(ID_PATTERN)
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_MAX_OUTBOX_SEQ = 2**53 - 1

# (topic, payload) -> True when the client has it (sent, or queued across a reconnect); False: not connected.
Publish = Callable[[str, bytes], bool]


@dataclass(slots=True)
class _DeviceState:
    last_sent: float | None = None
    suppressed: int = 0


class FeedbackLimiter:
    """At most one feedback per device every ``interval_s``, and ``max_per_s`` in total (a token bucket
    holding one second's worth). Thread-safe; ``clock`` is injectable for tests."""

    def __init__(
        self,
        *,
        interval_s: float,
        max_per_s: float,
        max_devices: int = MAX_DEVICES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or max_per_s <= 0:
            raise ValueError("interval_s and max_per_s must be positive (no limiter disables feedback)")
        self.interval_s = interval_s
        self.max_per_s = max_per_s
        self._burst = max(1.0, max_per_s)
        self._max_devices = max_devices
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: OrderedDict[str, _DeviceState] = OrderedDict()
        self._tokens = self._burst
        self._refilled_at = clock()

    def admit(self, device: str) -> int | None:
        """None: not now (the refusal is counted as suppressed for ``device``). A number: send feedback
        now, reporting that many refusals of ``device`` suppressed since its previous feedback."""
        now = self._clock()
        with self._lock:
            state = self._state(device)
            if state.last_sent is not None and now - state.last_sent < self.interval_s:
                state.suppressed += 1
                return None
            self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self.max_per_s)
            self._refilled_at = now
            if self._tokens < 1:
                state.suppressed += 1  # the device gets one as soon as the total allows
                return None
            self._tokens -= 1
            state.last_sent = now
            suppressed, state.suppressed = state.suppressed, 0
            return suppressed

    def not_sent(self, device: str, suppressed: int) -> None:
        """An admitted feedback could not be sent: it and what it reported count as suppressed."""
        with self._lock:
            self._state(device).suppressed += suppressed + 1

    def _state(self, device: str) -> _DeviceState:
        state = self._devices.get(device)
        if state is None:
            state = self._devices[device] = _DeviceState()
            if len(self._devices) > self._max_devices:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device)
        return state


@dataclass(frozen=True, slots=True)
class RefusedIds:
    """What identifies the refused message to its device, when it could be read."""

    outbox_seq: int | None = None
    event_id: str | None = None


def ids_of(refused: bytes | BaseModel | None) -> RefusedIds:
    """``outbox_seq`` and ``event_id`` of a refused message: a decoded one, or raw bytes if they parse.

    Only values the refusal message can carry: a refused payload may hold anything in these fields."""
    if refused is None:
        return RefusedIds()
    if isinstance(refused, BaseModel):
        outbox_seq, event_id = getattr(refused, "outbox_seq", None), getattr(refused, "event_id", None)
    else:
        if len(refused) > _MAX_PAYLOAD_READ:
            return RefusedIds()
        try:
            raw = json.loads(refused)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
            return RefusedIds()
        if not isinstance(raw, dict):
            return RefusedIds()
        outbox_seq, event_id = raw.get("outbox_seq"), raw.get("event_id")
    return RefusedIds(
        outbox_seq=outbox_seq if type(outbox_seq) is int and 1 <= outbox_seq <= _MAX_OUTBOX_SEQ else None,
        event_id=event_id if isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id) else None,
    )


class RefusalFeedback:
    """Builds and publishes the refusal messages; called from the MQTT and the writer thread alike.

    ``publish`` is attached once the MQTT client exists (``attach``). Before that, and whenever it says
    it is not connected, feedback is dropped (counted; its device's next one reports it as suppressed)."""

    def __init__(self, limiter: FeedbackLimiter, *, publish: Publish | None = None) -> None:
        self.limiter = limiter
        self._publish = publish
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped_not_connected = 0

    def attach(self, publish: Publish) -> None:
        self._publish = publish

    def offer(
        self,
        *,
        reason: str,
        detail: str,
        topic: str,
        shown_topic: str,
        at: datetime,
        refused: bytes | BaseModel | None = None,
    ) -> bool:
        """Tell the device of ``topic`` (the refused topic as received) about one refusal, if it may have
        feedback now; True when sent. ``detail`` and ``shown_topic`` are the recorder's shortened ones."""
        target = feedback_topic(topic)
        if target is None:
            return False  # no valid site and device id in the topic: nobody to tell
        device = f"{target.site}/{target.device_id}"
        suppressed = self.limiter.admit(device)
        if suppressed is None:
            return False
        ids = ids_of(refused)  # only now: parsing a refused payload is not free
        message = RefusalMessage(
            ts=at,
            reason=reason,
            detail=detail,
            topic=shown_topic,
            channel=_channel_of(topic),
            outbox_seq=ids.outbox_seq,
            event_id=ids.event_id,
            suppressed=suppressed,
        )
        publish = self._publish
        if publish is None or not publish(str(target), message.to_json()):
            self.limiter.not_sent(device, suppressed)
            with self._lock:
                self.dropped_not_connected += 1
            return False
        with self._lock:
            self.sent += 1
        return True

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "interval_s": self.limiter.interval_s,
                "max_per_s": self.limiter.max_per_s,
                "sent": self.sent,
                "dropped_not_connected": self.dropped_not_connected,
            }


def feedback_topic(refused_topic: str) -> Topic | None:
    """``citywatch/v1/{site}/{device_id}/refusal`` for a refused ``citywatch/<any version>/{site}/{device_id}/...``
    whose site and device id are valid; None otherwise."""
    parts = refused_topic.split("/", 4)
    if len(parts) < 4 or parts[0] != ROOT or not _ID.match(parts[2]) or not _ID.match(parts[3]):
        return None
    return Topic(site=parts[2], device_id=parts[3], channel=Channel.REFUSAL)


def _channel_of(refused_topic: str) -> Channel | None:
    parts = refused_topic.split("/")
    return Channel(parts[4]) if len(parts) == 5 and parts[4] in _CHANNELS else None
