"""Evidence rows (one per item, one per part still waiting for the rest) and their API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UtcDateTime, utcnow
from gateway.events.models import EventRevision


class EvidenceStatus(StrEnum):
    PARTIAL = "partial"  # parts are arriving
    COMPLETE = "complete"  # joined, size and SHA-256 checked, the file written
    REFUSED = "refused"  # joined but not what the device declared (or parts that disagree): never served


class EvidenceItem(Base):
    """One item of evidence. Keyed like event ids, per device: ``(device_id, evidence_id)``.

    Linked to events through ``(device_id, device_event_id)``, the key of ``event_revisions``: an item may
    arrive before its event, and it only ever belongs to an event of the device that sent it.
    """

    __tablename__ = "evidence_items"
    __table_args__ = (
        UniqueConstraint("device_id", "evidence_id", name="uq_evidence_items_device_evidence"),
        Index("ix_evidence_items_device_event", "device_id", "device_event_id"),
        Index("ix_evidence_items_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"))
    evidence_id: Mapped[str] = mapped_column(String(64))
    device_event_id: Mapped[str] = mapped_column(String(64), doc="The device's event_id it belongs to.")
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32))
    caption: Mapped[str | None] = mapped_column(String(200), default=None)
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Device time the evidence shows.")
    parts: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer, doc="Bytes, as the device declared (checked when joined).")
    sha256: Mapped[str] = mapped_column(String(64), doc="As the device declared (checked when joined).")
    sha1: Mapped[str | None] = mapped_column(String(40), default=None, doc="CAP's <digest>; once complete.")
    status: Mapped[str] = mapped_column(String(16), default=EvidenceStatus.PARTIAL)
    refusal: Mapped[str | None] = mapped_column(String(300), default=None, doc="Why it was refused.")
    file_name: Mapped[str | None] = mapped_column(
        String(200), default=None, doc="Under Settings.evidence_dir, once complete."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="Its first part came.")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="Its latest part came.")
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None, doc="Complete since.")


class EvidencePart(Base):
    """A chunk waiting for the rest of its item; deleted when the item is joined (or dropped)."""

    __tablename__ = "evidence_parts"
    __table_args__ = (UniqueConstraint("item_id", "part", name="uq_evidence_parts_item_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("evidence_items.id", ondelete="CASCADE"), index=True)
    part: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# Evidence naming an event_id some *other* device has is refused (foreign_event): that look-up is by the
# device's event id alone, which the revisions' (device_id, device_event_id, seq) key cannot serve.
Index("ix_event_revisions_device_event_id", EventRevision.device_event_id)


LinkKind = Literal["snapshot", "clip", "still", "photo", "plate_crop"]


class EvidenceLink(BaseModel):
    """One item of an event's evidence as the API, webhooks and CAP alerts list it."""

    evidence_id: str = Field(
        title="Evidence id", description="The device's id (a snapshot: its snapshot_id)."
    )
    kind: LinkKind = Field(
        title="Kind", description="clip, still, photo, plate_crop; snapshot for the event's snapshot JPEG."
    )
    content_type: str = Field(title="Content type", examples=["video/mp4", "image/jpeg"])
    url: str = Field(
        title="Address", description="Absolute, from CITYWATCH_PUBLIC_URL; needs a bearer token."
    )
    size: int | None = Field(title="Size", description="Bytes; null for the snapshot.")
    sha256: str | None = Field(title="SHA-256", description="Hex; also the ETag. Null for the snapshot.")
    sha1: str | None = Field(title="SHA-1", description="Hex: CAP's <digest>. Null for the snapshot.")
    caption: str | None = Field(title="Caption", description="The device's, e.g. 'warning photo'.")
    taken_at: datetime | None = Field(title="Taken at", description="Device time; null for the snapshot.")
    received_at: datetime | None = Field(
        title="Received at", description="When the gateway had all of it; null for the snapshot."
    )


class PendingEvidence(BaseModel):
    """An item whose parts are still arriving."""

    evidence_id: str
    kind: str
    content_type: str
    parts: int = Field(description="Parts of the whole item.")
    parts_received: int


class EvidenceList(BaseModel):
    event_id: int
    items: list[EvidenceLink] = Field(
        description="What can be fetched: the snapshot first, then by taken_at."
    )
    pending: list[PendingEvidence] = Field(description="Items still arriving, not yet served.")
