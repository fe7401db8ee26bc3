"""``Uplink``: what an agent holds. It queues on disk and owns the parts that do the rest."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from citywatch import __version__
from citywatch.mqtt import MqttOptions
from citywatch.polling import wait_until
from citywatch.protocol.messages import CommandMessage, DeviceType
from citywatch.protocol.topics import Channel
from edge.outbox import Outbox
from edge.uplink.commands import CommandHandler, Inbox
from edge.uplink.config_push import ConfigHandler, validate_pushed_config
from edge.uplink.connection import Backoff, Connection
from edge.uplink.identity import DeviceIdentity
from edge.uplink.pump import OutboxPump, ReceiptOptions

log = logging.getLogger(__name__)


class Uplink:
    def __init__(
        self,
        options: MqttOptions,
        site: str,
        device_id: str,
        device_type: DeviceType | str,
        config_version: str,
        outbox_path: str | Path,
        on_command: CommandHandler | None = None,
        *,
        on_config: ConfigHandler | None = None,
        max_messages: int = 100_000,
        fsync: bool = True,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_inflight: int = 50,
        firmware_version: str = __version__,
        receipts: ReceiptOptions | None = ReceiptOptions(),
    ) -> None:
        """``receipts``: keep each message until the gateway's receipt says it is stored (end to end);
        None: until the broker's PUBACK only (what a device that ignores receipts gets)."""
        self.device = DeviceIdentity(
            site, device_id, DeviceType(device_type), config_version, firmware_version
        )
        self.outbox = Outbox(outbox_path, max_messages=max_messages, fsync=fsync)
        self.pump = OutboxPump(self.outbox, self.device.topic, max_inflight=max_inflight, receipts=receipts)
        self.connection = Connection(
            options,
            self.device,
            self.outbox,
            self.pump,
            Inbox(self.device, on_command, on_config or validate_pushed_config),
            Backoff(first_s=reconnect_min_s, longest_s=reconnect_max_s),
        )

    @property
    def device_id(self) -> str:
        return self.device.device_id

    @property
    def connected(self) -> bool:
        return self.connection.connected.is_set()

    @property
    def session(self) -> int:
        return self.connection.session

    @property
    def published(self) -> int:
        return self.pump.published

    @property
    def queue_depth(self) -> int:
        return self.outbox.depth

    @property
    def dropped(self) -> int:
        return self.outbox.dropped

    @property
    def refusals_received(self) -> int:
        """Refusal messages from the gateway (each logged): it refused messages of this device."""
        return self.connection.refusals.received

    def topic(self, channel: Channel) -> str:
        return self.device.topic(channel)

    def set_config_handler(self, handler: ConfigHandler) -> None:
        """Who answers config pushes from now on (edge/installer/live.py: check, then apply)."""
        self.connection.inbox.on_config = handler

    def intercept_commands(self, handler: CommandHandler) -> None:
        """``handler`` answers commands first; those it returns None for go to the agent's own handler."""
        inbox = self.connection.inbox
        own = inbox.on_command

        def first(command: CommandMessage) -> tuple[bool, str] | None:
            answer = handler(command)
            if answer is None and own is not None:
                return own(command)
            return answer

        inbox.on_command = first

    def set_config_version(self, version: str) -> None:
        """A config applied live: births from now on, and the inbox, name this version."""
        self.device = dataclasses.replace(self.device, config_version=version)
        self.connection.device = self.device
        self.connection.inbox.device = self.device

    def send(self, channel: Channel, message: BaseModel) -> None:
        """Durably queue a message (telemetry may be dropped when the outbox is full; nothing else is).

        With receipts, a message that can carry ``outbox_seq`` carries its row's sequence, so that the
        gateway's receipt can name it."""
        numbered = self.pump.receipts is not None and "outbox_seq" in type(message).model_fields
        payload: bytes | Callable[[int], bytes] = (
            (lambda seq: _json(message.model_copy(update={"outbox_seq": seq})))
            if numbered
            else _json(message)
        )
        self.outbox.append(
            channel.value, payload, droppable=channel is Channel.TELEMETRY, awaits_receipt=numbered
        )
        self.connection.wake()

    def start(self) -> Uplink:
        self.connection.start()
        return self

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connection.connected.wait(timeout_s)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Wait until the broker has acknowledged the command/config subscriptions (True)."""
        return self.connection.subscribed.wait(timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout_s`` passes (False)."""
        return bool(wait_until(lambda: self.outbox.depth == 0, timeout_s=timeout_s, interval_s=0.02))

    def stop(self, flush_timeout_s: float = 3.0) -> None:
        """Deliver what can be delivered within ``flush_timeout_s``, say offline, disconnect."""
        if self.connection.started and self.connected and flush_timeout_s > 0:
            self.flush(flush_timeout_s)
        self.connection.stop()
        self.outbox.close()
        if self.outbox.depth:
            log.info("stopped with %d message(s) still queued in %s", self.outbox.depth, self.outbox.path)


def _json(message: BaseModel) -> bytes:
    return message.to_json() if hasattr(message, "to_json") else message.model_dump_json().encode()
