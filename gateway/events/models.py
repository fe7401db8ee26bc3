"""Event, revision and audit rows, and their API shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UtcDateTime, utcnow
from gateway.events.lifecycle.models import EventState
from gateway.events.lifecycle.sla import EscalationPolicy, SlaColour, SlaView, sla_colour
from gateway.fields import JsonInteger, Name, Note

# The lifecycle's FINISHED_STATES and dedup.INCIDENT_TYPES, as SQL for the partial unique index.
OPEN_CONDITION = "state NOT IN ('closed', 'cancelled') AND type NOT IN ('object_thrown', 'illegal_parking')"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # At most one open work item per (device, type) for lasting conditions: repeats merge into it
        # (lifecycle/dedup.py); incidents are one event each.
        Index(
            "uq_events_open_per_device_type",
            "device_id",
            "type",
            unique=True,
            sqlite_where=text(OPEN_CONDITION),
            postgresql_where=text(OPEN_CONDITION),
        ),
        Index("ix_events_state_id", "state", "id"),
        Index("ix_events_state_deadline", "state", "deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(
        String(32),
        unique=True,
        index=True,
        default=lambda: uuid.uuid4().hex,
        doc="Random, in CAP identifiers: unique even when a rebuilt database hands out the same ids.",
    )
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), index=True)
    site: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default=EventState.NEW)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot_id: Mapped[str | None] = mapped_column(String(64), default=None)
    device_event_id: Mapped[str] = mapped_column(String(64), doc="The device's id of its latest revision.")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    revisions: Mapped[int] = mapped_column(Integer, default=1, doc="Device messages merged into this event.")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Device time the condition began.")
    last_device_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    department: Mapped[str | None] = mapped_column(String(64), default=None, doc="None: in the triage queue.")
    rule_id: Mapped[str | None] = mapped_column(
        String(64), default=None, doc="The routing rule that matched."
    )
    assignee: Mapped[str | None] = mapped_column(String(128), default=None)
    dispatched_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, default=None, doc="When the SLA clock started (dispatched, or queued in triage)."
    )
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    escalations_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EventRevision(Base):
    """Each accepted device message of an event: the (event_id, seq) idempotency key."""

    __tablename__ = "event_revisions"
    # Event ids are assigned on devices, so they are unique per device only.
    __table_args__ = (
        UniqueConstraint("device_id", "device_event_id", "seq", name="uq_event_revisions_device_event_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    device_event_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    device_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EventAudit(Base):
    """Append-only: who did what, when, from which lifecycle state to which (pushes included)."""

    __tablename__ = "event_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")


class EventCapMessage(Base):
    """Every CAP 1.2 message rendered for an event: the feed, and the references of later messages."""

    __tablename__ = "event_cap_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    identifier: Mapped[str] = mapped_column(String(128), unique=True)
    sender: Mapped[str] = mapped_column(String(200))
    sent: Mapped[datetime] = mapped_column(UtcDateTime)
    msg_type: Mapped[str] = mapped_column(String(16))
    headline: Mapped[str] = mapped_column(String(200))
    xml: Mapped[str] = mapped_column(Text)


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    site: str
    type: str
    severity: str
    confidence: float
    state: EventState
    details: dict[str, Any]
    snapshot_id: str | None
    device_event_id: str
    last_seq: int
    revisions: int
    started_at: datetime
    last_device_ts: datetime
    cleared_at: datetime | None = Field(description="When the device reported the condition over.")
    department: str | None = Field(description="Responsible department; None while in the triage queue.")
    rule_id: str | None
    assignee: str | None
    dispatched_at: datetime | None
    deadline: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    escalations_sent: int
    last_escalated_at: datetime | None
    sla: SlaColour = Field(default=SlaColour.NONE, description="green / yellow / red against the deadline.")
    created_at: datetime
    updated_at: datetime


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    role: str | None
    action: str
    from_status: str | None
    to_status: str
    note: str


class EventDetail(EventRead):
    audit: list[AuditRead]


class EventPage(BaseModel):
    items: list[EventRead]
    total: int = Field(description="Events matching the filters.")
    offset: int
    limit: int


class AcknowledgeRequest(BaseModel):
    """The interim acknowledgement: now the lifecycle's ``accept`` (signed for)."""

    model_config = ConfigDict(extra="forbid")

    by: Annotated[str, Name(128, min_length=1)] = Field(title="Who acknowledges", examples=["operator-7"])
    note: Annotated[str, Note(2000)] = Field(default="", title="Note")


class CallbackRequest(BaseModel):
    """What the dispatch centre sends with a lifecycle action; which fields count depends on the action."""

    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, Note(2000)] | None = Field(
        default=None,
        title="Note",
        description="Required for resolve (the result), reject and cancel (the reason), reopen.",
    )
    rating: Annotated[int, JsonInteger(ge=1, le=5)] | None = Field(
        default=None, title="Satisfaction rating 1-5", description="Only on close."
    )
    department: Annotated[str, Name(64)] | None = Field(
        default=None,
        title="Department",
        description="dispatch: the target department. reject: where to re-route (else back to triage).",
    )
    assignee: Annotated[str, Name(128, min_length=1)] | None = Field(
        default=None, title="Assignee", description="assign: who works on it."
    )


class EscalationRequest(BaseModel):
    """What a person sends with an urge or a supervise: what the department (or the supervisors) should hear."""

    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, Note(2000)] | None = Field(
        default=None,
        title="Note",
        description="Optional: recorded in the audit trail and sent with the push (the CAP message's note).",
        examples=["residents report water in the underpass; please send the pump crew now"],
    )


class MetricsRead(BaseModel):
    finished: int = Field(description="Events resolved or closed with an SLA clock.")
    on_time: int
    on_time_rate: float | None = Field(description="on_time / finished; null when nothing finished yet.")
    mean_handling_time_s: float | None = Field(description="Mean dispatched -> resolved, seconds.")
    open_overdue: int = Field(description="Still running and past the deadline.")


def sla_view(event: Event) -> SlaView:
    return SlaView(
        event_id=str(event.id),
        state=EventState(event.state),
        dispatched_at=event.dispatched_at,
        deadline=event.deadline,
        resolved_at=event.resolved_at,
        escalations_sent=event.escalations_sent,
        last_escalated_at=event.last_escalated_at,
    )


def read_event(event: Event, *, now: datetime, policy: EscalationPolicy) -> EventRead:
    """The API and webhook shape of an event, with its SLA colour at ``now``."""
    read = EventRead.model_validate(event)
    read.sla = sla_colour(sla_view(event), now=now, policy=policy)
    return read
