"""Device-side event lifecycle: one condition = one ``event_id`` across ``new`` -> ``update``* -> ``end``.

``OpenEventJournal`` keeps the open events of one agent in a small file next to its outbox, so that an
agent that restarts (crash, power loss, a config that needs a restart, an upgrade) ends what it had open
instead of leaving it open at the gateway forever (the gateway cannot tell a restart from a reconnect).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity

log = logging.getLogger(__name__)

RESTART_REASON = "agent_restarted"  # details.end_reason (and illegal_parking's stage) of such an end
JOURNAL_SUFFIX = ".open-events.json"


def new_event_id() -> str:
    return uuid.uuid4().hex


class EventEmitter:
    """Builds the messages of one event type on one device; at most one open condition at a time.

    ``open`` starts a condition (phase new, seq 0), ``update`` revises it (seq + 1), ``end`` closes it.
    The caller publishes what these return.
    """

    def __init__(
        self, *, device_id: str, event_type: EventType, journal: OpenEventJournal | None = None
    ) -> None:
        self.device_id = device_id
        self.event_type = event_type
        self.journal = journal  # every message is recorded in it before the caller sends it
        self.event_id: str | None = None
        self.started_at: datetime | None = None
        self.severity: Severity | None = None
        self._seq = 0

    @property
    def is_open(self) -> bool:
        return self.event_id is not None

    def open(
        self,
        *,
        ts: datetime,
        severity: Severity,
        details: Mapping[str, Any],
        confidence: float = 1.0,
        started_at: datetime | None = None,
        snapshot_id: str | None = None,
    ) -> EventMessage:
        if self.is_open:
            raise RuntimeError(f"{self.event_type} event {self.event_id} is already open")
        self.event_id = new_event_id()
        self.started_at = started_at or ts
        self._seq = 0
        return self._message(EventPhase.NEW, ts, severity, details, confidence, snapshot_id)

    def update(
        self,
        *,
        ts: datetime,
        details: Mapping[str, Any],
        severity: Severity | None = None,
        confidence: float = 1.0,
        snapshot_id: str | None = None,
    ) -> EventMessage:
        self._require_open()
        self._seq += 1
        return self._message(
            EventPhase.UPDATE, ts, severity or self.severity, details, confidence, snapshot_id
        )

    def end(
        self,
        *,
        ts: datetime,
        details: Mapping[str, Any],
        severity: Severity | None = None,
        confidence: float = 1.0,
    ) -> EventMessage:
        self._require_open()
        self._seq += 1
        message = self._message(EventPhase.END, ts, severity or self.severity, details, confidence, None)
        self.event_id = None
        self.started_at = None
        self.severity = None
        return message

    def _require_open(self) -> None:
        if not self.is_open:
            raise RuntimeError(f"no open {self.event_type} event")

    def _message(
        self,
        phase: EventPhase,
        ts: datetime,
        severity: Severity | None,
        details: Mapping[str, Any],
        confidence: float,
        snapshot_id: str | None,
    ) -> EventMessage:
        assert self.event_id is not None and self.started_at is not None and severity is not None
        self.severity = severity
        message = EventMessage(
            device_id=self.device_id,
            event_id=self.event_id,
            seq=self._seq,
            phase=phase,
            type=self.event_type,
            severity=severity,
            confidence=confidence,
            ts=ts,
            started_at=self.started_at,
            details=dict(details),
            snapshot_id=snapshot_id,
        )
        if self.journal is not None:
            self.journal.record(message)
        return message


class OpenEventJournal:
    """The open events of one agent, durable: written on every new, update and end (never per frame).

    The file holds each open event's latest message; an end removes it. Written atomically (temp file,
    fsync, ``os.replace``) so a power cut leaves the old or the new journal, never half of one.
    ``restart_ends`` turns what a previous run left into end messages (next seq, ``end_reason``
    ``agent_restarted``), sends them, then empties the journal.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._open: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # emitters of one agent may run on different threads

    @classmethod
    def beside(cls, outbox_path: Path, *, fsync: bool = True) -> OpenEventJournal:
        """The journal of the agent whose outbox is ``outbox_path`` (one outbox, one agent)."""
        outbox_path = Path(outbox_path)
        return cls(outbox_path.with_name(outbox_path.name + JOURNAL_SUFFIX), fsync=fsync)

    @property
    def open_event_ids(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def record(self, message: EventMessage) -> None:
        with self._lock:
            if message.phase is EventPhase.END:
                if self._open.pop(message.event_id, None) is None:
                    return
            else:
                self._open[message.event_id] = message.model_dump(
                    mode="json", exclude={"snapshot_id", "outbox_seq"}
                )
            try:
                self._write()
            except OSError as exc:  # a safety net: a full or read-only card must not stop the agent
                log.error("open-event journal %s not written: %s", self.path, exc)

    def restart_ends(
        self, *, send: Callable[[EventMessage], None], now: datetime | None = None
    ) -> list[EventMessage]:
        """End every event a previous run left open: each end is handed to ``send`` (the outbox), and
        only then is the journal emptied, so a crash in between ends them again at the next start
        (a repeat the gateway ignores) rather than never. Returns the ends sent.

        A journal that cannot be read is logged and ignored (its events stay open at the gateway)."""
        now = now or datetime.now(UTC)
        ends = []
        for event_id, last in self.read().items():
            try:
                ends.append(_restart_end(last, now))
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                log.error("open-event journal %s: cannot end event %s: %s", self.path, event_id, exc)
        for end in ends:
            send(end)
        with self._lock:
            self._open.clear()
            if ends or self.path.exists():
                self._write()
        return ends

    def read(self) -> dict[str, dict[str, Any]]:
        """The open events on disk by event id (each its latest message); {} when none or unreadable."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("open-event journal %s is unreadable, ignored: %s", self.path, exc)
            return {}
        events = raw.get("open") if isinstance(raw, dict) else None
        if not isinstance(events, dict) or not all(isinstance(v, dict) for v in events.values()):
            log.error("open-event journal %s is not a journal, ignored", self.path)
            return {}
        return events

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"v": 1, "open": self._open}, ensure_ascii=False).encode()
        with open(tmp, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self.fsync:  # the rename itself survives a power cut
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def journal_for(config: Any) -> OpenEventJournal | None:
    """The journal next to an agent config's outbox; None for a config without one (tests' stand-ins)."""
    outbox = getattr(config, "outbox", None)
    if outbox is None:
        return None
    return OpenEventJournal.beside(outbox.path, fsync=outbox.fsync)


def _restart_end(last: Mapping[str, Any], now: datetime) -> EventMessage:
    """The end of an event whose agent restarted: its last details, saying why it ended."""
    previous = EventMessage.model_validate(last)
    details = dict(previous.details, end_reason=RESTART_REASON)
    if previous.type is EventType.ILLEGAL_PARKING:
        details["stage"] = RESTART_REASON
    return EventMessage(
        device_id=previous.device_id,
        event_id=previous.event_id,
        seq=previous.seq + 1,
        phase=EventPhase.END,
        type=previous.type,
        severity=previous.severity,
        confidence=previous.confidence,
        ts=max(now, previous.ts),  # a fast-forwarded file may have run ahead of the wall clock
        started_at=previous.started_at,
        details=details,
    )
