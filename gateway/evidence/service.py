"""Evidence parts from the ingest: kept, joined, checked, filed; late items announced to the dispatch centre.

Runs in the ingest's batch transaction (writer thread), so a part is stored exactly when the batch
commits and its receipt follows the commit. Every step is idempotent, because a batch is stored again
after a database error and QoS 1 delivers twice:

- a part is stored once per ``(device, evidence_id, part)``; the same part again is a duplicate, the
  same part with other bytes, or a part whose item fields (kind, size, sha256, ...) differ from the
  earlier parts', is refused (``evidence_conflict``);
- the last part missing joins the item: its bytes are written to a file while hashed, and kept only when
  size and SHA-256 are what the device declared; else the item is refused (``evidence_corrupt``), kept
  as a refused row (later copies of its parts change nothing) and never served;
- an item over ``max_bytes`` is refused (``evidence_too_large``), part by part, and never stored;
- an item naming an event id that another device has (and this one does not) is refused
  (``foreign_event``). One naming an event this gateway has not seen yet is kept: it is filed under
  (device, event id) and shows on that device's event once the event comes; it can never show on
  another device's event;
- partial items whose latest part is older than ``partial_max_age`` are dropped (``purge``).

A refusal is for good (sending the same part again cannot change it): the part is receipted like a
stored one, and the device hears why on its ``refusal`` topic.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import EvidenceMessage
from gateway.events import flows
from gateway.events.models import Event, EventRevision
from gateway.events.service import policy_of
from gateway.evidence.files import EvidenceFiles
from gateway.evidence.models import EvidenceItem, EvidencePart, EvidenceStatus

log = logging.getLogger("gateway.evidence")

TOO_LARGE = "evidence_too_large"
CORRUPT = "evidence_corrupt"
CONFLICT = "evidence_conflict"
FOREIGN_EVENT = "foreign_event"
# The webhook type of a push that brings evidence completed after the event was pushed.
EVIDENCE_ADDED = "event.evidence"


@dataclass(frozen=True, slots=True)
class EvidenceOptions:
    root: Path  # Settings.evidence_dir
    max_bytes: int = 32 * 1024 * 1024
    partial_max_age: timedelta = timedelta(hours=72)

    @property
    def files(self) -> EvidenceFiles:
        return EvidenceFiles(self.root)


class PartOutcome(StrEnum):
    STORED = "stored"  # kept; the item waits for more parts
    COMPLETED = "completed"  # the item's last part: joined, checked, filed
    DUPLICATE = "duplicate"  # already stored (or its item already complete or refused)
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: PartOutcome
    item: EvidenceItem | None = None
    event_pk: int | None = None  # the gateway's event a completed item belongs to, when it exists
    reason: str | None = None
    detail: str | None = None


def _refused(reason: str, detail: str, item: EvidenceItem | None = None) -> Applied:
    return Applied(PartOutcome.REFUSED, item=item, reason=reason, detail=detail)


def apply_part(
    *, session: Session, message: EvidenceMessage, options: EvidenceOptions, now: datetime
) -> Applied:
    """Store one part (in the caller's transaction); join the item when it was the last one missing."""
    what = f"evidence {message.evidence_id} part {message.part}/{message.parts}"
    if message.size > options.max_bytes:
        return _refused(
            TOO_LARGE,
            f"{what}: the item is {message.size} bytes, over the gateway's limit of {options.max_bytes} "
            "(CITYWATCH_EVIDENCE_MAX_BYTES): send a shorter clip or a smaller image",
        )
    item = session.scalars(
        select(EvidenceItem)
        .where(EvidenceItem.device_id == message.device_id, EvidenceItem.evidence_id == message.evidence_id)
        # Parts of one item may reach several gateways at once: one at a time, each counting the
        # parts the others committed, so the one that stores the last part joins the item.
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).first()
    if item is None:
        if (owner := _other_owner(session, message.device_id, message.event_id)) is not None:
            return _refused(
                FOREIGN_EVENT,
                f"{what}: event {message.event_id} is device {owner}'s, not this device's: a device sends "
                "evidence for its own events only",
            )
        item = _new_item(message, now)
        session.add(item)
        session.flush()
    else:
        differing = _disagreements(item, message)
        if differing:
            return _refused(
                CONFLICT,
                f"{what}: {', '.join(differing)} differ from the item's earlier parts: one evidence_id is "
                "one item, send another item under a new evidence_id",
                item,
            )
        if item.status != EvidenceStatus.PARTIAL:
            return Applied(PartOutcome.DUPLICATE, item=item)
    chunk = base64.b64decode(message.data_b64)  # the model's pattern admits standard padded base64 only
    stored = session.scalars(
        select(EvidencePart.data).where(EvidencePart.item_id == item.id, EvidencePart.part == message.part)
    ).first()
    if stored is not None:
        if stored != chunk:
            return _refused(
                CONFLICT,
                f"{what}: this part came before with other bytes: a resend is the same message",
                item,
            )
        return Applied(PartOutcome.DUPLICATE, item=item)
    part = EvidencePart(item_id=item.id, part=message.part, data=chunk)
    session.add(part)
    item.updated_at = now
    session.flush()
    session.expunge(part)  # a batch may carry hundreds of parts: their bytes need not stay in memory
    have = session.scalar(select(func.count()).where(EvidencePart.item_id == item.id)) or 0
    if have < item.parts:
        return Applied(PartOutcome.STORED, item=item)
    return _join(session, item, options, now)


def _new_item(message: EvidenceMessage, now: datetime) -> EvidenceItem:
    return EvidenceItem(
        device_id=message.device_id,
        evidence_id=message.evidence_id,
        device_event_id=message.event_id,
        kind=message.kind.value,
        content_type=message.content_type,
        caption=message.caption,
        taken_at=message.taken_at,
        parts=message.parts,
        size=message.size,
        sha256=message.sha256,
        status=EvidenceStatus.PARTIAL,
        created_at=now,
        updated_at=now,
    )


def _disagreements(item: EvidenceItem, message: EvidenceMessage) -> list[str]:
    declared = {
        "event_id": (item.device_event_id, message.event_id),
        "kind": (item.kind, message.kind.value),
        "content_type": (item.content_type, message.content_type),
        "caption": (item.caption, message.caption),
        "taken_at": (item.taken_at, message.taken_at),
        "parts": (item.parts, message.parts),
        "size": (item.size, message.size),
        "sha256": (item.sha256, message.sha256),
    }
    return [name for name, (before, now) in declared.items() if before != now]


def _other_owner(session: Session, device_id: str, device_event_id: str) -> str | None:
    """The device whose event ``device_event_id`` is, when it is not ``device_id``'s (and this one has
    no event of that id)."""
    if event_of(session, device_id, device_event_id) is not None:
        return None
    return session.scalar(
        select(EventRevision.device_id)
        .where(EventRevision.device_event_id == device_event_id, EventRevision.device_id != device_id)
        .limit(1)
    )


def event_of(session: Session, device_id: str, device_event_id: str) -> int | None:
    """The gateway's event the device's event id is (folded) in, if it has come."""
    return session.scalar(
        select(EventRevision.event_id)
        .where(EventRevision.device_id == device_id, EventRevision.device_event_id == device_event_id)
        .limit(1)
    )


def _chunks(session: Session, item: EvidenceItem) -> Iterator[bytes]:
    """The item's parts in order, one in memory at a time."""
    for part in range(item.parts):
        data = session.scalar(
            select(EvidencePart.data).where(EvidencePart.item_id == item.id, EvidencePart.part == part)
        )
        if data is None:  # counted as present a moment ago, in this transaction
            raise RuntimeError(f"part {part} of evidence {item.evidence_id} vanished while joining")
        yield data


def _join(session: Session, item: EvidenceItem, options: EvidenceOptions, now: datetime) -> Applied:
    files = options.files
    name = files.relative_name(item.device_id, item.evidence_id, item.content_type)
    written = files.write(name, _chunks(session, item))
    session.execute(delete(EvidencePart).where(EvidencePart.item_id == item.id))
    item.updated_at = now
    if written.size != item.size or written.sha256 != item.sha256:
        written.discard()
        what = "size" if written.size != item.size else "SHA-256"
        detail = (
            f"evidence {item.evidence_id}: its {item.parts} part(s) join to {written.size} bytes whose {what} "
            f"is not the declared one ({item.size} bytes declared): corrupted or mixed parts; not stored"
        )
        item.status, item.refusal = EvidenceStatus.REFUSED, detail[:300]
        log.warning("refused evidence %s of device %s: %s", item.evidence_id, item.device_id, detail)
        return _refused(CORRUPT, detail, item)
    written.keep()
    item.status, item.sha1, item.file_name, item.received_at = (
        EvidenceStatus.COMPLETE,
        written.sha1,
        name,
        now,
    )
    log.info(
        "evidence %s (%s, %d bytes) of device %s complete",
        item.evidence_id,
        item.kind,
        item.size,
        item.device_id,
    )
    return Applied(
        PartOutcome.COMPLETED, item=item, event_pk=event_of(session, item.device_id, item.device_event_id)
    )


def describe(item: EvidenceItem) -> str:
    text = f"{item.kind} {item.evidence_id} ({item.content_type}, {item.size} bytes)"
    return f"{text}: {item.caption}" if item.caption else text


def announce(*, session: Session, event_pk: int, items: Sequence[EvidenceItem]) -> None:
    """Evidence completed for an event that already exists: audited, and pushed to its department as a
    follow-up (webhook ``event.evidence``; a CAP Update referencing the event's earlier messages), each
    carrying every evidence link known by now. Items that complete before their event need nothing:
    the event's first push lists them."""
    event = session.get(Event, event_pk)
    if event is None or not items:
        return
    policy = policy_of(session)
    now = policy.clock()
    note = "evidence added: " + "; ".join(describe(item) for item in items)
    flows.annotate(
        session=session,
        event=event,
        action="evidence",
        actor=event.device_id,
        role="device",
        at=now,
        note=note,
    )
    flows.publish(session=session, event=event, message_type=EVIDENCE_ADDED, policy=policy, at=now, note=note)


def purge(*, session: Session, options: EvidenceOptions, now: datetime) -> list[EvidenceItem]:
    """Drop partial (and refused) items whose latest part is older than ``partial_max_age``; returns them.

    A partial item is lost then: its device deleted the parts the gateway receipted. The window must be
    longer than the longest outage in the middle of an item (the rest waits in the device's outbox)."""
    cutoff = now - options.partial_max_age
    stale = list(
        session.scalars(
            select(EvidenceItem).where(
                EvidenceItem.status != EvidenceStatus.COMPLETE, EvidenceItem.updated_at < cutoff
            )
        )
    )
    if not stale:
        return []
    ids = [item.id for item in stale]
    session.execute(delete(EvidencePart).where(EvidencePart.item_id.in_(ids)))
    session.execute(delete(EvidenceItem).where(EvidenceItem.id.in_(ids)))
    for item in stale:
        if item.status == EvidenceStatus.PARTIAL:
            log.warning(
                "dropped partial evidence %s (%s) of device %s for event %s: no part for %s",
                item.evidence_id,
                item.kind,
                item.device_id,
                item.device_event_id,
                options.partial_max_age,
            )
    return stale
