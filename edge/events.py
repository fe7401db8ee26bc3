"""Device-side event lifecycle: one condition = one ``event_id`` across ``new`` -> ``update``* -> ``end``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity


def new_event_id() -> str:
    return uuid.uuid4().hex


class EventEmitter:
    """Builds the messages of one event type on one device; at most one open condition at a time.

    ``open`` starts a condition (phase new, seq 0), ``update`` revises it (seq + 1), ``end`` closes it.
    The caller publishes what these return.
    """

    def __init__(self, *, device_id: str, event_type: EventType) -> None:
        self.device_id = device_id
        self.event_type = event_type
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
        return EventMessage(
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
