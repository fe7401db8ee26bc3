"""Birth and will: session numbers as docs/protocol.md (*Connecting: birth and will*) has the gateway apply them.

The kit cannot tell a will (sent by the broker) from an offline state the device published itself on
a clean shutdown: both are ``status: offline``. What it can judge is whether each state message is one
the gateway applies, ignores as stale, or takes for a reset, and whether the session numbers and
times of births and wills fit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.judgement import Judgement
from citywatch.protocol.messages import StateMessage


@dataclass(slots=True)
class SessionTracker:
    """One device's presence as the gateway would hold it."""

    session: int | None = None  # the current session number (None: no state seen yet)
    birth_ts: datetime | None = None  # when the current session's connection was made, from its birth
    online: bool | None = None
    births: int = 0  # births applied while watching: an event tracker compares them across a reconnect
    reported_no_birth: bool = False
    birth: StateMessage | None = None  # the current session's birth, when seen

    def state(self, message: StateMessage, judgement: Judgement) -> None:
        if message.status == "online":
            self._birth(message, judgement)
        else:
            self._offline(message, judgement)

    def data(self, judgement: Judgement) -> None:
        """A data message (telemetry, event, snapshot, evidence, ack): the device must have announced itself."""
        if self.session is None:
            if not self.reported_no_birth:
                self.reported_no_birth = True
                judgement.add(
                    rules.SESSION_NO_BIRTH,
                    "data from a device that has no state on the broker: on every connection a device "
                    "publishes its birth on state (retained), before anything else",
                )
        elif self.online is False:
            judgement.add(
                rules.SESSION_OFFLINE_DATA,
                f"data after the device's offline state of session {self.session} and before a new birth: "
                "on every connection the birth comes first",
            )
            self.online = True  # "data proves liveness": said once per offline spell

    def _birth(self, message: StateMessage, judgement: Judgement) -> None:
        current, current_ts = self.session, self.birth_ts
        if current is None:
            self._apply_birth(message)  # the first birth seen: what follows is judged against it
            return
        if message.session > current:
            if current_ts is not None and message.ts < current_ts:
                judgement.add(
                    rules.SESSION_BIRTH_ORDER,
                    f"birth of session {message.session} stamped {message.ts.isoformat()}, before the birth of "
                    f"session {current} ({current_ts.isoformat()}): did the device's clock go back?",
                )
            self._apply_birth(message)
        elif message.session == current:
            judgement.add(
                rules.SESSION_NOT_INCREASING,
                f"online state with the current session number {current} again, stamped differently: a new "
                "connection that did not increment its session (the gateway takes it for the retained birth seen "
                "again), or a will saying online (a will says offline)",
            )
        elif self.online is False or (current_ts is not None and message.ts > current_ts):
            judgement.add(
                rules.SESSION_RESET,
                f"birth of session {message.session} after session {current}: the gateway applies it as a "
                "reset (counter started again) and records session_reset; a device keeps its session number "
                "across restarts",
            )
            self._apply_birth(message)
        else:
            judgement.add(
                rules.SESSION_NOT_INCREASING,
                f"birth of session {message.session} while session {current} is online and stamped earlier: the "
                "gateway ignores it as stale; a device increments its session on every connection",
            )

    def _apply_birth(self, message: StateMessage) -> None:
        self.birth = message
        self.session = message.session
        self.birth_ts = message.ts
        self.online = True
        self.births += 1

    def _offline(self, message: StateMessage, judgement: Judgement) -> None:
        current, current_ts = self.session, self.birth_ts
        if current is None or message.session == current:
            # The will of this connection, or the device's own offline on a clean shutdown (stamped later).
            self._same_as_birth(message, judgement)
            self.session = message.session
            self.online = False
            return
        if message.session > current:
            if current_ts is None or message.ts >= current_ts:
                judgement.add(
                    rules.SESSION_WILL_UNMATCHED,
                    f"offline state of session {message.session}, whose birth was not seen (current session "
                    f"{current}): on every connection a device publishes its birth; the gateway applies this",
                )
                self.session, self.birth_ts, self.birth, self.online = message.session, None, None, False
            else:
                judgement.add(
                    rules.SESSION_STALE_WILL,
                    f"offline state of session {message.session} stamped before the current session {current} "
                    "began: left from before a reset, the gateway ignores it",
                )
            return
        if current_ts is not None and message.ts > current_ts:
            judgement.add(
                rules.SESSION_WILL_MISMATCH,
                f"offline state of session {message.session} stamped {message.ts.isoformat()}, after the birth of "
                f"session {current}: the will must carry the session of its own connection (the gateway ignores "
                "this one as stale, so the device is never shown offline)",
            )
            return
        judgement.add(
            rules.SESSION_STALE_WILL,
            f"the will of session {message.session} after the birth of session {current}: the broker noticed the "
            "old connection's loss late; the gateway ignores it (normal)",
        )

    def _same_as_birth(self, offline: StateMessage, judgement: Judgement) -> None:
        birth = self.birth
        if birth is None or birth.session != offline.session:
            return
        differing = [
            name
            for name in ("device_type", "firmware_version", "config_version")
            if getattr(offline, name) != getattr(birth, name)
        ]
        if differing:
            judgement.add(
                rules.SESSION_WILL_FIELDS,
                f"offline state of session {offline.session} differs from its birth in {', '.join(differing)}: "
                "the will (and a clean shutdown's offline) repeats the birth of its connection but for status "
                "and ts",
            )
