"""Receipts: the gateway tells each device which of its numbered messages are stored (end-to-end delivery).

A device that numbers its messages (``outbox_seq``) keeps each in its outbox until a receipt on its
``receipt`` topic lists it: a broker that dies before saving its queue then loses nothing, because the
device still has it. Receipts are sent from the ingest writer thread after the batch's commit, at most
one per device every ``interval_s`` (coalesced: a receipt lists runs, so a device sending a thousand
messages a second gets one small receipt a second).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from citywatch.protocol.messages import ReceiptMessage, utcnow
from citywatch.protocol.topics import Channel, Topic

log = logging.getLogger("gateway.ingest")

MAX_RUNS = 256  # a receipt's limit (ReceiptMessage.stored); what does not fit goes in the next one


def runs_of(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged ``[first, last]`` runs of the given sequence numbers (repeats are fine)."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


@dataclass(slots=True)
class _Pending:
    topic: str
    seqs: set[int] = field(default_factory=set)


class ReceiptDesk:
    """Collects what was committed, per device, and publishes the receipts that are due. Writer thread only."""

    def __init__(self, *, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.sent = 0
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._last_sent: dict[str, float] = {}
        # A scan looks at every device with something pending: not after every batch (hundreds a
        # second), a few times per interval.
        self._scan_every_s = min(interval_s / 4, 0.1)
        self._next_scan = 0.0

    @property
    def pending_devices(self) -> int:
        return len(self._pending)

    def stored(self, numbered: Iterable[tuple[Topic, int]]) -> None:
        """Messages (topic, outbox_seq) of known devices, committed (or refused for good after reading)."""
        for topic, seq in numbered:
            pending = self._pending.get(topic.device_id)
            if pending is None:
                receipt_topic = str(Topic(topic.site, topic.device_id, Channel.RECEIPT))
                pending = self._pending[topic.device_id] = _Pending(receipt_topic)
            pending.seqs.add(seq)

    def publish_due(self, client: mqtt.Client, *, connected: bool, force: bool = False) -> int:
        """Publish the receipts whose device has not had one for ``interval_s`` (``force``: all of them,
        when stopping); returns how many."""
        if not self._pending or not connected:  # kept for after the reconnect
            return 0
        now = self._clock()
        if not force and now < self._next_scan:
            return 0
        self._next_scan = now + self._scan_every_s
        published = 0
        for device_id, pending in list(self._pending.items()):
            if not force and now - self._last_sent.get(device_id, -self.interval_s) < self.interval_s:
                continue
            runs = runs_of(pending.seqs)
            now_runs, later = runs[:MAX_RUNS], runs[MAX_RUNS:]
            receipt = ReceiptMessage(ts=utcnow(), stored=now_runs)
            # QoS 1 like every citywatch message; a lost receipt only means the device sends again.
            client.publish(pending.topic, receipt.to_json(), qos=1)
            self._last_sent[device_id] = now
            published += 1
            if later:
                sent_up_to = now_runs[-1][1]
                pending.seqs = {seq for seq in pending.seqs if seq > sent_up_to}
            else:
                del self._pending[device_id]
        self.sent += published
        return published
