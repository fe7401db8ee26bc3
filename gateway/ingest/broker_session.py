"""Did the broker keep the gateway's persistent session? Say so loudly when it did not.

Mosquitto saves its sessions and queues every ``autosave_interval``; killed before a save, it comes
back without the gateway's session. Until the gateway subscribes again, devices publish to nobody:
devices that keep messages until the gateway's receipt send them again, others lose them. The gateway
cannot prevent that, but it can tell: it logs a warning and ``/health`` is degraded for a while.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import utcnow
from gateway.devices.models import Device

log = logging.getLogger("gateway.ingest")


def ingested_before(session_factory: sessionmaker[Session]) -> Callable[[], bool]:
    """'The database says this gateway has stored device messages before', i.e. it had a session."""

    def check() -> bool:
        with session_factory() as session:
            seen = select(Device.id).where(Device.last_seen.is_not(None)).limit(1)
            return session.execute(seen).first() is not None

    return check


class BrokerSessionWatch:
    """Fed by the MQTT network thread at every connection; read by ``/health``."""

    def __init__(
        self,
        *,
        had_session_before: Callable[[], bool],
        degraded_for: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._had_session_before = had_session_before
        self._degraded_for = degraded_for
        self._clock = clock
        self._lock = threading.Lock()
        self._connected_before = False
        self._present: bool | None = None
        self.lost = 0
        self.lost_at: datetime | None = None

    def connected(self, *, session_present: bool, broker: str, client_id: str) -> bool:
        """Record a connection; True when the broker had forgotten a session it should have kept."""
        with self._lock:
            expected = self._connected_before or self._expected_at_first_connect()
            self._connected_before = True
            self._present = session_present
            if session_present or not expected:
                return False
            self.lost += 1
            self.lost_at = self._clock()
        log.warning(
            "MQTT broker %s has no session for %s (session present: False) although it had one: it "
            "restarted without saving it. Messages published before this reconnect reached nobody; "
            "devices that wait for receipts send them again, others lost them",
            broker,
            client_id,
        )
        return True

    def _expected_at_first_connect(self) -> bool:
        try:
            return self._had_session_before()
        except Exception as exc:  # the database is down: cannot tell, do not cry wolf
            log.warning("could not tell whether the broker should have kept our session: %s", exc)
            return False

    @property
    def degraded(self) -> bool:
        lost_at = self.lost_at
        return lost_at is not None and self._clock() - lost_at < self._degraded_for

    def status(self) -> dict[str, Any]:
        return {
            "present": self._present,
            "lost": self.lost,
            "lost_at": self.lost_at.isoformat() if self.lost_at else None,
            "degraded": self.degraded,
        }
