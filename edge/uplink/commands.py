"""Commands on ``cmd`` and config pushes on ``config``, each answered on ``ack``.

A command past its ``expires`` (by the device's clock) is not run: a persistent session delivers what
was queued while the device was away, however late, and a door released half an hour after the
dispatcher asked is worse than none. It is answered ``ok: false``, reason ``expired``. ``ping`` is
answered here; every other command goes to the agent's handler, which answers ``(ok, message)`` or
None for "not mine" (then: unknown command).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from citywatch.protocol.codec import RejectedMessage, decode
from citywatch.protocol.messages import AckMessage, CommandMessage, ConfigMessage
from edge.uplink.config_push import ConfigHandler, answer_config_push
from edge.uplink.identity import DeviceIdentity

log = logging.getLogger(__name__)

CommandHandler = Callable[[CommandMessage], "tuple[bool, str] | None"]


class Inbox:
    def __init__(
        self,
        device: DeviceIdentity,
        on_command: CommandHandler | None,
        on_config: ConfigHandler,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.device = device
        self.on_command = on_command
        self.on_config = on_config
        self.clock = clock

    def answer(self, topic: str, payload: bytes) -> AckMessage | None:
        """The ack for a command or config push; None for anything else (nothing to answer)."""
        try:
            decoded = decode(topic, payload)
        except RejectedMessage as exc:
            log.warning("ignored message on %s: %s", topic, exc)
            return None
        incoming = decoded.message
        reason: str | None = None
        version: str | None = None
        if isinstance(incoming, CommandMessage):
            ok, text, reason = self._command(incoming)
        elif isinstance(incoming, ConfigMessage):
            answer = answer_config_push(
                incoming, running_version=self.device.config_version, handler=self.on_config
            )
            ok, text, reason, version = answer.ok, answer.message, answer.reason, answer.config_version
        else:
            return None
        log.info("%s %s -> ok=%s %s", decoded.topic.channel, getattr(incoming, "command", "config"), ok, text)
        return AckMessage(
            device_id=self.device.device_id,
            cmd_id=incoming.cmd_id,
            ts=self.clock(),
            ok=ok,
            message=text[:1000],
            reason=reason,
            config_version=version,
        )

    def _command(self, command: CommandMessage) -> tuple[bool, str, str | None]:
        now = self.clock()
        if command.expired(now):
            assert command.expires is not None
            late = (now - command.expires).total_seconds()
            log.warning("command %s (%s) expired %.0f s ago: not run", command.cmd_id, command.command, late)
            return (
                False,
                f"expired at {command.expires.isoformat()}, {late:.0f} s before it arrived: not run",
                "expired",
            )
        if command.command == "ping":
            return True, "pong", None
        result = None
        if self.on_command is not None:
            try:
                result = self.on_command(command)
            except Exception as exc:  # a handler bug must not kill the link
                log.exception("command %s failed", command.command)
                return False, f"command failed: {exc}", "failed"
        if result is None:
            return False, f"unknown command {command.command!r}", "unknown_command"
        ok, text = result
        return ok, text, None if ok else "failed"
