"""Store one batch of decoded messages: telemetry in the store; presence, events and evidence in one transaction."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.codec import Decoded
from citywatch.protocol.messages import (
    AckMessage,
    EventMessage,
    EvidenceMessage,
    SnapshotMessage,
    StateMessage,
    TelemetryMessage,
)
from citywatch.protocol.topics import Topic
from gateway.db import utcnow
from gateway.devices import commands as device_commands
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.devices.service import DeviceDirectory
from gateway.events import service as events_service
from gateway.evidence import service as evidence_service
from gateway.evidence.models import EvidenceItem
from gateway.evidence.service import EvidenceOptions, PartOutcome
from gateway.ingest.refusals import RefusalRecorder
from gateway.ingest.stats import IngestStats
from gateway.telemetry.base import TelemetryPoint, TelemetryStore

log = logging.getLogger("gateway.ingest")

HOUSEKEEPING_INTERVAL_S = 600.0  # partial evidence purged, stray temporary files removed


@dataclass(frozen=True, slots=True)
class Delivery:
    """A decoded MQTT message waiting for storage; ``mid``/``qos`` are what gets acked."""

    decoded: Decoded
    mid: int
    qos: int
    deferred_since: float | None = None  # monotonic: when it was first found to wait (``deferred``)


@dataclass(slots=True)
class BatchResult:
    accepted: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    evidence: Counter[str] = field(default_factory=Counter)  # parts by outcome
    telemetry: int = 0
    outbox_changed: bool = False
    numbered: list[tuple[Topic, int]] = field(default_factory=list)  # (topic, outbox_seq): for receipts
    # Refused inside the transaction: counted and logged once it commits (not again on a retry);
    # (reason, detail, topic, message).
    refused: list[tuple[str, str, Topic, BaseModel]] = field(default_factory=list)
    # Not stored yet, not acknowledged: an update of an event whose ``new`` another gateway of the share
    # group may be storing right now (see ``unknown_event_wait_s``); the writer tries them again.
    deferred: list[Delivery] = field(default_factory=list)


class BatchProcessor:
    """Runs on the ingest writer thread only."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        store: TelemetryStore,
        directory: DeviceDirectory,
        stats: IngestStats,
        refusals: RefusalRecorder,
        snapshot_dir: Path,
        evidence: EvidenceOptions,
        unknown_event_wait_s: float = 0.0,
    ) -> None:
        # With a share group a device's messages are spread over the gateways, so its event's update
        # can be handled before the ``new`` that another gateway is still storing: for this long after
        # it came, such an update waits (unacknowledged) instead of being refused as unknown_event.
        self._unknown_event_wait_s = unknown_event_wait_s
        self._sessions = session_factory
        self._store = store
        self._directory = directory
        self._stats = stats
        self.refusals = refusals
        self._snapshot_dir = snapshot_dir
        self._evidence = evidence
        self._next_housekeeping = 0.0  # monotonic; the first run comes with the first idle moment
        self._last_seen: dict[str, datetime] = {}
        self._now = utcnow()

    @property
    def presence_pending(self) -> bool:
        return bool(self._last_seen)

    def refuse(self, reason: str, detail: str, topic: str, message: BaseModel | None = None) -> None:
        self.refusals.record(reason, detail, topic, refused=message)

    def process(self, batch: Sequence[Delivery], *, flush_presence: bool) -> BatchResult:
        """Store a batch; returns normally only when everything in it is committed (or refused)."""
        result = BatchResult()
        self._now = utcnow()
        known: list[Delivery] = []
        for delivery in batch:  # registry look-ups happen before the write transaction opens
            topic = delivery.decoded.topic
            device = self._directory.lookup(topic.device_id)
            if device is None:
                self.refuse(
                    "unknown_device",
                    f"device {topic.device_id!r} is not provisioned",
                    str(topic),
                    delivery.decoded.message,
                )
            elif device.site != topic.site:
                self.refuse(
                    "wrong_site",
                    f"device {topic.device_id!r} is registered at site {device.site!r}, not {topic.site!r}",
                    str(topic),
                    delivery.decoded.message,
                )
            else:
                known.append(delivery)

        points: list[TelemetryPoint] = []
        transactional: list[Delivery] = []
        for delivery in known:
            message = delivery.decoded.message
            result.accepted[delivery.decoded.topic.channel.value] += 1
            outbox_seq = getattr(message, "outbox_seq", None)
            if outbox_seq is not None:  # stored below, or refused for good: either way, receipted
                result.numbered.append((delivery.decoded.topic, outbox_seq))
            if isinstance(message, TelemetryMessage):
                points.append(
                    TelemetryPoint(
                        site=delivery.decoded.topic.site,
                        device_id=message.device_id,
                        measurement=message.measurement,
                        ts=message.ts,
                        fields=message.fields,
                        tags=message.tags,
                    )
                )
                self._see(message.device_id)
            elif isinstance(message, StateMessage | EventMessage | AckMessage | EvidenceMessage):
                transactional.append(delivery)
            elif isinstance(message, SnapshotMessage):
                self._save_snapshot(message, topic=str(delivery.decoded.topic))
                self._see(message.device_id)

        if points:
            self._store.write(points)
            result.telemetry = len(points)
        if transactional or (flush_presence and self._last_seen):
            # By device (stable: a device's own messages keep their order): gateways of a share group
            # then lock rows in one order, rather than deadlocking on each other's batches.
            transactional.sort(key=lambda delivery: delivery.decoded.topic.device_id)
            self._transact(transactional, result, flush_presence=flush_presence)
        for reason, detail, topic, refused in result.refused:
            self.refuse(reason, detail, str(topic), refused)
        return result

    def _see(self, device_id: str) -> None:
        # Gateway time, not the device's: replays carry old device times and device clocks drift.
        self._last_seen[device_id] = self._now

    def _transact(self, deliveries: Sequence[Delivery], result: BatchResult, *, flush_presence: bool) -> None:
        with self._sessions() as session, session.begin():
            completed: defaultdict[int, list[EvidenceItem]] = defaultdict(list)  # event pk -> new items
            for delivery in deliveries:
                message = delivery.decoded.message
                device = session.get(Device, delivery.decoded.topic.device_id)
                assert device is not None  # checked by the directory; devices are never deleted
                if isinstance(message, StateMessage):
                    devices_service.apply_state(session=session, device=device, state=message, at=self._now)
                    self._see(message.device_id)
                elif isinstance(message, EventMessage):
                    outcome, _ = events_service.apply_device_event(
                        session=session, device=device, message=message
                    )
                    if outcome is events_service.Outcome.UNKNOWN_EVENT:
                        since = delivery.deferred_since or time.monotonic()
                        # Counted from the first try, not from receipt: after a database outage the
                        # `new` and its update are both retried, in any order.
                        if time.monotonic() - since < self._unknown_event_wait_s:
                            self._defer(dataclasses.replace(delivery, deferred_since=since), message, result)
                        else:
                            self._refuse_unknown_event(delivery, message, result)
                        continue
                    result.events[outcome.value] += 1
                    result.outbox_changed |= outcome in (
                        events_service.Outcome.CREATED,
                        events_service.Outcome.UPDATED,
                        events_service.Outcome.CLEARED,
                    )
                    self._see(message.device_id)
                elif isinstance(message, AckMessage):
                    log.info(
                        "device %s answered %s: ok=%s %s",
                        device.id,
                        message.cmd_id,
                        message.ok,
                        message.message,
                    )
                    device_commands.record_ack(
                        session=session, device_id=device.id, ack=message, at=self._now
                    )
                    self._see(message.device_id)
                elif isinstance(message, EvidenceMessage):
                    self._apply_evidence(session, delivery, message, result, completed)
            for event_pk, items in completed.items():  # after the batch's events: they may be among them
                evidence_service.announce(session=session, event_pk=event_pk, items=items)
                result.outbox_changed = True
            # Only this transaction's own devices, but for the periodic flush: the telemetry devices'
            # rows are what the other gateways of a share group update too, and an event's transaction
            # that locked them would wait for those gateways' commits.
            own = {delivery.decoded.topic.device_id for delivery in deliveries}
            recorded = (
                dict(self._last_seen)
                if flush_presence
                else {device_id: seen for device_id, seen in self._last_seen.items() if device_id in own}
            )
            devices_service.record_last_seen(session=session, last_seen=recorded)
        for device_id in recorded:
            del self._last_seen[device_id]

    def _apply_evidence(
        self,
        session: Session,
        delivery: Delivery,
        message: EvidenceMessage,
        result: BatchResult,
        completed: defaultdict[int, list[EvidenceItem]],
    ) -> None:
        applied = evidence_service.apply_part(
            session=session, message=message, options=self._evidence, now=self._now
        )
        result.evidence[applied.outcome.value] += 1
        self._see(message.device_id)
        if applied.outcome is PartOutcome.REFUSED:
            # Refused for good (the same part again cannot fare better): receipted all the same.
            result.accepted[delivery.decoded.topic.channel.value] -= 1
            assert applied.reason is not None and applied.detail is not None
            result.refused.append((applied.reason, applied.detail, delivery.decoded.topic, message))
        elif applied.outcome is PartOutcome.COMPLETED and applied.event_pk is not None:
            assert applied.item is not None
            completed[applied.event_pk].append(applied.item)

    def housekeeping(self) -> None:
        """Every HOUSEKEEPING_INTERVAL_S, from the writer thread when it is idle: drop partial evidence
        too old to complete, and temporary files a crash left. A failure waits for the next round."""
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_INTERVAL_S
        try:
            with self._sessions() as session, session.begin():
                dropped = evidence_service.purge(session=session, options=self._evidence, now=utcnow())
            self._evidence.files.remove_stale_temporaries(older_than_s=HOUSEKEEPING_INTERVAL_S)
        except Exception:  # the database away, the disk full: ingest itself must go on
            log.exception("evidence housekeeping failed; trying again in %.0f s", HOUSEKEEPING_INTERVAL_S)
            return
        if dropped:
            log.info("evidence housekeeping: dropped %d partial or refused item(s)", len(dropped))

    @staticmethod
    def _defer(delivery: Delivery, message: EventMessage, result: BatchResult) -> None:
        """Left for a later try: neither counted nor receipted now."""
        topic = delivery.decoded.topic
        result.accepted[topic.channel.value] -= 1
        if message.outbox_seq is not None:
            result.numbered.remove((topic, message.outbox_seq))
        result.deferred.append(delivery)

    @staticmethod
    def _refuse_unknown_event(delivery: Delivery, message: EventMessage, result: BatchResult) -> None:
        """No receipt: once the device sends the ``new`` this message needs, it is stored when sent again."""
        topic = delivery.decoded.topic
        result.accepted[topic.channel.value] -= 1
        if message.outbox_seq is not None:
            result.numbered.remove((topic, message.outbox_seq))
        detail = f"{message.phase.value} of event_id {message.event_id!r}, which this gateway never saw begin"
        result.refused.append(("unknown_event", detail, topic, message))

    def _save_snapshot(self, message: SnapshotMessage, *, topic: str) -> None:
        try:
            image = base64.b64decode(message.data_b64, validate=True)
        except (binascii.Error, ValueError):
            self.refuse("invalid", f"snapshot {message.snapshot_id}: data_b64 is not base64", topic, message)
            return
        self._snapshot_dir.mkdir(parents=True, exist_ok=True)
        path = self._snapshot_dir / f"{message.snapshot_id}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(image)
            tmp.replace(path)
