"""Refused input, recorded in one place: counted by reason, logged (rate-limited), the last few kept
per device for installers (``GET /devices/{id}``), with the devices whose clocks are off (``/health``),
and told to the device on its ``refusal`` topic (rate-limited: ``gateway.ingest.feedback``).

Kept in memory: cheap on the hot path whatever a device floods us with, and refreshed at once by a
device that keeps sending what is refused; a restart starts with empty lists (the counts in /health
start again at 0 too).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from citywatch.protocol.codec import ClockBounds
from citywatch.protocol.topics import ROOT
from gateway.db import utcnow
from gateway.ingest.feedback import RefusalFeedback
from gateway.ingest.stats import IngestStats, RateLimitedLog

REFUSALS_PER_DEVICE = 10
MAX_DEVICES = 10_000  # bounds memory (about 5 KB a device) whatever device ids a flood invents
_MAX_TOPIC = 200
_MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    detail: str
    topic: str
    at: datetime  # gateway time


@dataclass(frozen=True, slots=True)
class ClockOff:
    """A device whose last message was refused for its time; ``offset_s`` = device minus gateway time."""

    device_id: str
    offset_s: float
    detail: str
    at: datetime


class RefusalRecorder:
    """Thread-safe: the MQTT thread, the ingest writer and the API use it."""

    def __init__(
        self,
        *,
        stats: IngestStats,
        log: RateLimitedLog,
        clock: ClockBounds | None = None,
        now: Callable[[], datetime] = utcnow,
        feedback: RefusalFeedback | None = None,
    ) -> None:
        """``feedback``: None, no refusal messages to devices (CITYWATCH_REFUSAL_FEEDBACK_INTERVAL_S 0)."""
        self._stats = stats
        self._log = log
        self._clock = clock
        self._now = now
        self.feedback = feedback
        self._lock = threading.Lock()
        self._by_device: OrderedDict[str, deque[Refusal]] = OrderedDict()
        self._clock_off: dict[str, ClockOff] = {}

    def record(
        self,
        reason: str,
        detail: str,
        topic: str,
        *,
        clock_offset_s: float | None = None,
        refused: bytes | BaseModel | None = None,
    ) -> Refusal:
        """The one place a refusal goes through. ``refused``: the message (raw or decoded), from which the
        device's feedback takes its ``outbox_seq`` and ``event_id``."""
        refusal = Refusal(
            reason=reason, detail=_shorten(detail, _MAX_DETAIL), topic=_printable(topic), at=self._now()
        )
        self._stats.refuse(reason)
        self._log.warning(reason, "refused message on %s: %s: %s", refusal.topic, reason, refusal.detail)
        if self.feedback is not None:
            self._tell_device(self.feedback, refusal, topic, refused)
        device_id = device_in_topic(topic)
        if device_id is None:
            return refusal  # counted and logged; nothing to attach it to
        with self._lock:
            recent = self._by_device.get(device_id)
            if recent is None:
                recent = self._by_device[device_id] = deque(maxlen=REFUSALS_PER_DEVICE)
                if len(self._by_device) > MAX_DEVICES:
                    forgotten, _ = self._by_device.popitem(last=False)
                    self._clock_off.pop(forgotten, None)
            else:
                self._by_device.move_to_end(device_id)
            recent.append(refusal)
            if clock_offset_s is not None:
                self._clock_off[device_id] = ClockOff(device_id, clock_offset_s, refusal.detail, refusal.at)
        return refusal

    def _tell_device(
        self, feedback: RefusalFeedback, refusal: Refusal, topic: str, refused: bytes | BaseModel | None
    ) -> None:
        try:
            feedback.offer(
                reason=refusal.reason,
                detail=refusal.detail,
                topic=topic,
                shown_topic=refusal.topic,
                at=refusal.at,
                refused=refused,
            )
        except Exception as exc:  # a courtesy to the device: it must never stop the thread that refused
            self._log.warning("feedback_failed", "refusal feedback for %s failed: %r", refusal.topic, exc)

    def recent(self, device_id: str) -> list[Refusal]:
        """The device's last refusals, newest first."""
        with self._lock:
            return list(reversed(self._by_device.get(device_id, ())))

    def observe_clock(self, device_id: str, device_time: datetime) -> None:
        """An accepted message: a timestamp close to the gateway's time shows the device's clock is right
        again (an old one proves nothing: it may come from the device's outbox)."""
        if device_id not in self._clock_off or self._clock is None:  # no lock: the common case
            return
        if abs(device_time - self._clock.now()) <= self._clock.max_ahead:
            with self._lock:
                self._clock_off.pop(device_id, None)

    def clocks_off(self) -> list[ClockOff]:
        with self._lock:
            return sorted(self._clock_off.values(), key=lambda off: off.device_id)


def device_in_topic(topic: str) -> str | None:
    """The device a topic names (``citywatch/<version>/<site>/<device_id>/...``), valid or not as a topic."""
    parts = topic.split("/", 4)
    if len(parts) < 4 or parts[0] != ROOT or not parts[3] or len(parts[3]) > 64:
        return None
    return parts[3]


def _printable(text: str) -> str:
    text = _shorten(text, _MAX_TOPIC)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
