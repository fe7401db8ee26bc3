"""The outbox onto the wire: in order, at most ``max_inflight`` unacknowledged, each row kept until delivered.

Delivered means, with ``ReceiptOptions`` (the default of every agent), that the gateway has stored it:
numbered rows stay in the outbox after the broker's PUBACK until a receipt on the device's
``receipt`` topic lists their sequence. A broker that dies before saving its queue, or that forgot the
gateway's session, acknowledged messages the gateway never got: those rows are still here. They go
out again on every reconnect, and when the oldest of them has waited ``resend_after_s`` since it was
sent while receipts kept coming for later ones (the gateway is there: the broker lost it). Without
``ReceiptOptions`` (``keep_until: puback``) a row is deleted on its PUBACK, as third-party devices do.

Used by the network thread only (paho calls ``acknowledged`` and the receipt handler from inside that
thread's loop), so it needs no lock; the outbox has its own for the agents appending to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from citywatch.protocol.messages import ReceiptMessage
from citywatch.protocol.topics import Channel
from edge.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceiptOptions:
    """Keep numbered rows until the gateway's receipt; when to send unconfirmed ones again."""

    resend_after_s: float = 30.0
    # The wait doubles, up to this, while the same row stays unconfirmed (a message the gateway can
    # never store must not be resent every half minute for ever).
    resend_after_max_s: float = 600.0


@dataclass(frozen=True, slots=True)
class _Watch:
    """The oldest row still held once it has been sent: since when, and how many receipts came by then."""

    row_id: int
    since: float
    receipts: int


class OutboxPump:
    def __init__(
        self,
        outbox: Outbox,
        topic: Callable[[Channel], str],
        *,
        max_inflight: int,
        receipts: ReceiptOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.topic = topic
        self.max_inflight = max_inflight
        self.receipts = receipts
        self.published = 0
        self.receipts_received = 0
        self.resends = 0  # times the unconfirmed rows went out again on a live connection
        self._clock = clock
        self._inflight: dict[int, tuple[int, bool]] = {}  # paho mid -> (outbox row id, delete on PUBACK)
        self._acked: list[int] = []
        self._last_sent_id = 0
        self._watch: _Watch | None = None
        self._wait_s = receipts.resend_after_s if receipts else 0.0
        self._last_resent_row: int | None = None
        self._next_check = 0.0

    def restart(self) -> None:
        """A new connection: resend everything not yet delivered, in order."""
        self._inflight.clear()
        self._acked.clear()
        self._last_sent_id = 0
        self._watch = None

    def acknowledged(self, mid: int) -> None:
        sent = self._inflight.pop(mid, None)
        if sent is not None and sent[1]:
            self._acked.append(sent[0])

    def delete_acknowledged(self) -> None:
        if self._acked:
            self.outbox.delete(self._acked)
            self._acked.clear()

    def receipt(self, message: ReceiptMessage) -> int:
        """Delete the rows the gateway has stored; returns how many went.

        Runs past the highest sequence this outbox ever gave out are ignored: they were meant for an
        earlier outbox of this device id (one that was wiped), whose receipts the broker still held.
        """
        if self.receipts is None:
            return 0
        self.receipts_received += 1
        last = self.outbox.last_id
        return self.outbox.delete_runs([(first, end) for first, end in message.stored if end <= last])

    def resend_if_unconfirmed(self) -> None:
        """Rewind to the oldest held row if it has waited too long while the gateway confirmed others."""
        if self.receipts is None:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + min(0.25, self.receipts.resend_after_s / 4)
        oldest = self.outbox.oldest_id()
        if oldest is None or oldest > self._last_sent_id:
            self._watch = None  # nothing that was sent is waiting
            return
        watch = self._watch
        if watch is None or watch.row_id != oldest:
            if oldest != self._last_resent_row:  # progress: back to the first wait
                self._wait_s = self.receipts.resend_after_s
            self._watch = _Watch(oldest, since=now, receipts=self.receipts_received)
            return
        if now - watch.since < self._wait_s or self.receipts_received == watch.receipts:
            return  # not long enough, or the gateway is silent (away: its session keeps our messages)
        log.warning(
            "%d message(s) from #%d not confirmed %.0f s after sending while the gateway confirmed "
            "later ones (the broker lost them): sending them again",
            self.outbox.depth,
            oldest,
            now - watch.since,
        )
        if oldest == self._last_resent_row:  # sent again already, still not stored: wait longer
            self._wait_s = min(self._wait_s * 2, self.receipts.resend_after_max_s)
        self._last_resent_row = oldest
        self._last_sent_id = 0
        self._watch = None
        self.resends += 1

    def publish_next(self, client: mqtt.Client) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for row in self.outbox.peek(after_id=self._last_sent_id, limit=room):
            info = client.publish(self.topic(Channel(row.channel)), row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # connection dropped; resent after reconnect
            self._inflight[info.mid] = (row.id, self.receipts is None or not row.awaits_receipt)
            self._last_sent_id = row.id
            self.published += 1
