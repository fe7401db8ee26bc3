"""Webhook endpoints and the outbox (one row per notification to one endpoint)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UtcDateTime, utcnow


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the retry horizon


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(
        String(2000), doc="Space-separated 'whsec_' secrets; each signs every push (rotation)."
    )
    department: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    format: Mapped[str] = mapped_column(String(8), default="json", doc="json, or cap (CAP 1.2 XML).")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OutboxMessage(Base):
    __tablename__ = "dispatch_outbox"
    __table_args__ = (Index("ix_dispatch_outbox_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True, doc="Same on every retry.")
    message_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text, doc="The exact body (signed per attempt).")
    content_type: Mapped[str] = mapped_column(String(64), default="application/json")
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(1000), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Several gateways share the outbox: the one whose claim runs (until claimed_until) sends the row;
    # a claim of a gateway that died expires, and another takes the row then.
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
