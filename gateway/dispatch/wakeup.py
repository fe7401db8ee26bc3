"""Wake the other gateways' dispatch workers when a worker ends its claims (PostgreSQL NOTIFY).

A gateway's own worker is woken in-process by whatever adds outbox rows there (ingest, presence,
escalation). When it finds an endpoint's oldest notification claimed by another gateway it leaves the
endpoint alone; the claimant's record of what it sent ends the claims and sends a notification (on
commit) naming the endpoints, and a worker that left one of them alone looks again at once, rather
than after ``idle_poll_s``. Each worker LISTENs on a connection of its own; without it (SQLite, or the
listening connection lost) the worker still polls every ``idle_poll_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("gateway.dispatch")

CHANNEL = "citywatch_outbox"  # payload "<schema>:<endpoint id> ...": other schemas' gateways ignore it
RECONNECT_DELAY_S = (0.5, 5.0)


def shares_outbox(sessions: sessionmaker[Session]) -> bool:
    """PostgreSQL: several gateways may send from one outbox. SQLite: one process has it."""
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "postgresql"


def notify_outbox_changed(session: Session, *, endpoint_ids: Iterable[int]) -> None:
    """In the session's transaction: the listeners hear of it when it commits."""
    if session.get_bind().dialect.name != "postgresql":
        return
    payload = " ".join(str(endpoint_id) for endpoint_id in sorted(set(endpoint_ids)))
    session.execute(
        text("SELECT pg_notify(:channel, current_schema() || ':' || :payload)"),
        {"channel": CHANNEL, "payload": payload},
    )


def _endpoint_ids(payload: str, schema: str) -> set[int] | None:
    """The endpoints a notification of this schema names; None if it is another schema's."""
    prefix, _, ids = payload.partition(":")
    if prefix != schema:
        return None
    return {int(one) for one in ids.split()}


class OutboxListener:
    """LISTENs on a dedicated connection (out of ``sessions``' engine, detached from its pool) and
    calls ``on_change`` for each notification of this schema; reconnects after losing the connection."""

    def __init__(
        self, sessions: sessionmaker[Session], *, on_change: Callable[[set[int] | None], None]
    ) -> None:
        self._engine = sessions.kw["bind"]
        self._on_change = on_change
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatch-listen", daemon=True)
        self._connection: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        delay = RECONNECT_DELAY_S[0]
        while not self._stopping.is_set():
            try:
                self._listen()
                delay = RECONNECT_DELAY_S[0]
            except Exception as exc:  # the database away: the worker polls meanwhile
                log.debug("outbox LISTEN connection lost (%s); again in %.1f s", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_DELAY_S[1])
            finally:
                self._close()

    def _listen(self) -> None:
        pooled = self._engine.raw_connection()
        pooled.detach()  # ours for good: a LISTENing connection must not serve other sessions
        self._connection = connection = pooled.dbapi_connection
        connection.autocommit = True
        schema = connection.execute("SELECT current_schema()").fetchone()[0]
        connection.execute(f"LISTEN {CHANNEL}")
        self._on_change(None)  # what changed while not listening
        while not self._stopping.is_set():
            # A short timeout: how long a stop waits for this thread.
            for notify in connection.notifies(timeout=0.5):
                endpoint_ids = _endpoint_ids(notify.payload, schema)
                if endpoint_ids is not None:
                    self._on_change(endpoint_ids)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("closing the LISTEN connection failed", exc_info=True)
