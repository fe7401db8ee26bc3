"""What the gateway refused of this device's messages, heard on the device's ``refusal`` topic.

Each refusal is counted (``refusals_received``, in the agents' ``health`` telemetry) and logged as a
warning naming its reason, detail and the refused topic: the installer at the device sees why the
gateway drops what it sends. The gateway already sends at most one every few seconds; the log is
rate-limited again here (first at once, then one line per interval with the number not logged), so
that nothing else publishing on the topic can flood the device's log. A message on the topic that is
not a valid refusal is logged (rate-limited too) and ignored: it never stops the network thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from citywatch.protocol.codec import RejectedMessage, decode
from citywatch.protocol.messages import RefusalMessage

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0


class RefusalInbox:
    """Takes the messages on the device's ``refusal`` topic (paho's network thread); counters readable
    from any thread."""

    def __init__(
        self, *, log_interval_s: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.received = 0  # valid refusal messages (each may report more refusals: ``suppressed``)
        self.malformed = 0
        self.last: RefusalMessage | None = None
        self._log_interval_s = log_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_logged: dict[str, float] = {}
        self._not_logged: dict[str, int] = {}

    def take(self, topic: str, payload: bytes) -> RefusalMessage | None:
        """The refusal in the message, counted and logged; None (logged) when it is not one."""
        try:
            refusal = decode(topic, payload).message
        except RejectedMessage as exc:
            refusal, problem = None, f"{exc.reason}: {exc.detail}"
        except Exception as exc:  # whatever arrives, the network thread goes on
            refusal, problem = None, f"{type(exc).__name__}"
        else:
            problem = f"a {type(refusal).__name__}, not a RefusalMessage"
        if not isinstance(refusal, RefusalMessage):
            with self._lock:
                self.malformed += 1
            self._warn("malformed", "ignored a message on %s that is not a valid refusal: %s", topic, problem)
            return None
        with self._lock:
            self.received += 1
            self.last = refusal
        self._warn(
            "refusal",
            "the gateway refused a message on %s: %s: %s%s%s",
            refusal.topic,
            refusal.reason,
            refusal.detail,
            _ids(refusal),
            f" ({refusal.suppressed} more refused since its last report)" if refusal.suppressed else "",
        )
        return refusal

    def _warn(self, key: str, message: str, *args: object) -> None:
        now = self._clock()
        with self._lock:
            last = self._last_logged.get(key)
            if last is not None and now - last < self._log_interval_s:
                self._not_logged[key] = self._not_logged.get(key, 0) + 1
                return
            self._last_logged[key] = now
            not_logged = self._not_logged.pop(key, 0)
        if not_logged:
            message += f" [{not_logged} more like this not logged]"
        log.warning(message, *(_printable(str(arg)) for arg in args))


def _ids(refusal: RefusalMessage) -> str:
    shown = [f"{name} {value}" for name in ("outbox_seq", "event_id") if (value := getattr(refusal, name))]
    return f" ({', '.join(shown)})" if shown else ""


def _printable(text: str) -> str:
    """Control characters escaped: a log line stays one line, whatever was published on the topic."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
