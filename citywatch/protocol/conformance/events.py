"""Event phases: new (seq 0) → update (+1 each) → end, one open event per (device, type).

See docs/protocol.md, *Events* and *How the gateway applies event messages*. Exact repeats never
reach this tracker (the checker reports them as duplicates first), so every message here is new content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.judgement import Judgement
from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity


@dataclass(slots=True)
class _Event:
    type: EventType
    last_seq: int
    ended: bool
    births: int  # the device's births seen when its latest message came: a reconnect since then lost it
    started_at: datetime
    highest: Severity


@dataclass(slots=True)
class EventTracker:
    """One device's events."""

    watch_started_at: datetime
    events: dict[str, _Event] = field(default_factory=dict)
    open_by_type: dict[EventType, str] = field(default_factory=dict)

    def event(self, message: EventMessage, judgement: Judgement, *, births: int) -> None:
        known = self.events.get(message.event_id)
        if known is None:
            self._first_of(message, judgement, births=births)
        elif known.ended:
            judgement.add(
                rules.EVENT_AFTER_END,
                f"{message.phase.value} (seq {message.seq}) of event {message.event_id} after its end: nothing "
                "follows an end (the gateway ignores it); a condition that returns is a new event",
            )
        else:
            self._next_of(known, message, judgement, births=births)

    def _first_of(self, message: EventMessage, judgement: Judgement, *, births: int) -> None:
        if message.phase is EventPhase.NEW:
            self._check_one_open(message, judgement, births=births)
        elif message.started_at < self.watch_started_at:
            judgement.add(
                rules.EVENT_BEFORE_WATCHING,
                f"{message.phase.value} of event {message.event_id} (seq {message.seq}), which began at "
                f"{message.started_at.isoformat()}, before the kit was watching: its new was not seen",
            )
        else:
            judgement.add(
                rules.EVENT_UNKNOWN,
                f"{message.phase.value} of event {message.event_id} (seq {message.seq}) whose new was never "
                "published: the gateway refuses it (unknown_event); publish the new (seq 0) first",
            )
        ended = message.phase is EventPhase.END
        self.events[message.event_id] = _Event(
            message.type, message.seq, ended, births, message.started_at, message.severity
        )
        if not ended:
            self.open_by_type[message.type] = message.event_id

    def _check_one_open(self, message: EventMessage, judgement: Judgement, *, births: int) -> None:
        open_id = self.open_by_type.get(message.type)
        if open_id is None:
            return
        if self.events[open_id].births < births:
            judgement.add(
                rules.EVENT_RERAISED,
                f"new {message.type.value} event {message.event_id} while {open_id} was open before the device "
                "reconnected: the gateway folds it into the open event (the device lost its event)",
            )
        else:
            judgement.add(
                rules.EVENT_SECOND_OPEN,
                f"new {message.type.value} event {message.event_id} while event {open_id} of that type is open: "
                "the gateway keeps one open event per (device, type) and folds this one into it; update "
                f"{open_id} instead, or end it first",
            )

    def _next_of(self, known: _Event, message: EventMessage, judgement: Judgement, *, births: int) -> None:
        if message.type is not known.type:
            judgement.add(
                rules.EVENT_TYPE_CHANGED,
                f"event {message.event_id} has type {message.type.value}, its new had {known.type.value}: one "
                "condition keeps one type through its life",
            )
        if message.started_at != known.started_at:
            judgement.add(
                rules.EVENT_STARTED_AT,
                f"event {message.event_id} says it started at {message.started_at.isoformat()}, earlier "
                f"{known.started_at.isoformat()}: started_at stays the same through an event's life",
            )
        expected = known.last_seq + 1
        if message.seq > expected:
            judgement.add(
                rules.EVENT_SEQ_GAP,
                f"event {message.event_id} jumps from seq {known.last_seq} to {message.seq}: each later message "
                f"of an event is the previous seq + 1 (expected {expected})",
            )
        elif message.seq < expected:
            judgement.add(
                rules.EVENT_SEQ_REUSED,
                f"event {message.event_id} seq {message.seq} after seq {known.last_seq}, with other content: the "
                "gateway ignores a repeated or older seq; a change is the next seq",
            )
            return
        known.last_seq = message.seq
        known.births = births
        if message.phase is EventPhase.END and message.severity.rank < known.highest.rank:
            judgement.add(
                rules.EVENT_END_SEVERITY,
                f"end of event {message.event_id} with severity {message.severity.value}, below the "
                f"{known.highest.value} it reached: end carries the highest severity (the phase says it is over)",
            )
        if message.severity.rank > known.highest.rank:
            known.highest = message.severity
        if message.phase is EventPhase.END:
            known.ended = True
            if self.open_by_type.get(known.type) == message.event_id:
                del self.open_by_type[known.type]
