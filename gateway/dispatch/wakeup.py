"""Wake every gateway's dispatch worker at once when the shared outbox changes (PostgreSQL NOTIFY).

A transaction that adds outbox rows (ingest, presence, escalation, API) sends a notification that is
delivered when, and only if, it commits; a worker that ends its claims sends one too, so a worker that
skipped those endpoints looks again at once. Each worker LISTENs on a connection of its own; without
it (SQLite, or the listening connection lost) the worker still polls every ``idle_poll_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, UOWTransaction, sessionmaker

from gateway.dispatch.models import OutboxMessage

log = logging.getLogger("gateway.dispatch")

CHANNEL = "citywatch_outbox"  # the payload is the schema: gateways of other schemas ignore it
_NOTIFIED_KEY = "citywatch_outbox_notified"
RECONNECT_DELAY_S = (0.5, 5.0)


def shares_outbox(sessions: sessionmaker[Session]) -> bool:
    """PostgreSQL: several gateways may send from one outbox. SQLite: one process has it."""
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "postgresql"


def notify_outbox_changed(session: Session) -> None:
    """In the session's transaction, once: the listeners hear of it when it commits."""
    if session.info.get(_NOTIFIED_KEY) or session.get_bind().dialect.name != "postgresql":
        return
    # On the connection: this also runs inside a flush, where the session must not flush again.
    session.connection().execute(text("SELECT pg_notify(:channel, current_schema())"), {"channel": CHANNEL})
    session.info[_NOTIFIED_KEY] = True


@event.listens_for(Session, "after_flush")
def _new_outbox_rows(session: Session, _flush: UOWTransaction) -> None:
    if any(isinstance(row, OutboxMessage) for row in session.new):
        notify_outbox_changed(session)


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost: the next transaction notifies again
        session.info.pop(_NOTIFIED_KEY, None)


class OutboxListener:
    """LISTENs on a dedicated connection (out of ``sessions``' engine, detached from its pool) and
    calls ``on_change`` for each notification of this schema; reconnects after losing the connection."""

    def __init__(self, sessions: sessionmaker[Session], *, on_change: Callable[[], None]) -> None:
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
        self._on_change()  # what changed while not listening
        while not self._stopping.is_set():
            # A short timeout: how long a stop waits for this thread.
            for notify in connection.notifies(timeout=0.5):
                if notify.payload == schema:
                    self._on_change()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("closing the LISTEN connection failed", exc_info=True)
