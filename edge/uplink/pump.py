"""The outbox onto the wire: in order, at most ``max_inflight`` unacknowledged, a row deleted only on its PUBACK.

Used by the network thread only (paho calls ``acknowledged`` from inside that thread's loop), so it
needs no lock; the outbox has its own for the agents appending to it.
"""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt

from citywatch.protocol.topics import Channel
from edge.outbox import Outbox


class OutboxPump:
    def __init__(self, outbox: Outbox, topic: Callable[[Channel], str], *, max_inflight: int) -> None:
        self.outbox = outbox
        self.topic = topic
        self.max_inflight = max_inflight
        self.published = 0
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._acked: list[int] = []
        self._last_sent_id = 0

    def restart(self) -> None:
        """A new connection: resend everything not yet acknowledged, in order."""
        self._inflight.clear()
        self._acked.clear()
        self._last_sent_id = 0

    def acknowledged(self, mid: int) -> None:
        row_id = self._inflight.pop(mid, None)
        if row_id is not None:
            self._acked.append(row_id)

    def delete_acknowledged(self) -> None:
        if self._acked:
            self.outbox.delete(self._acked)
            self._acked.clear()

    def publish_next(self, client: mqtt.Client) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for row in self.outbox.peek(after_id=self._last_sent_id, limit=room):
            info = client.publish(self.topic(Channel(row.channel)), row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # connection dropped; resent after reconnect
            self._inflight[info.mid] = row.id
            self._last_sent_id = row.id
            self.published += 1
