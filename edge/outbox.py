"""Store-and-forward outbox on disk (SQLite, WAL, synchronous=FULL: a row survives kill -9 and power loss).

Rows are read in insertion order. A row's id is its outbox sequence, never reused (AUTOINCREMENT):
a numbered row carries it in its payload (``outbox_seq``) and is deleted only when a gateway receipt
lists it; any other row is deleted on the broker's PUBACK (``edge/uplink/pump.py`` decides which).
Above ``max_messages`` the oldest droppable rows (telemetry) are deleted and counted, whether or not
they await a receipt; events never are.
Also keeps the device's MQTT session counter, so it survives restarts too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    droppable INTEGER NOT NULL,
    payload BLOB NOT NULL,
    awaits_receipt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_droppable ON messages (droppable, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    channel: str
    payload: bytes
    awaits_receipt: bool = False


class Outbox:
    def __init__(self, path: str | Path, *, max_messages: int = 100_000, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every append is on disk before send() returns (power-loss safe). NORMAL: survives a
        # crash or kill -9 of the agent but may lose the last appends on power loss; ~10x faster here.
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if "awaits_receipt" not in columns:  # an outbox from before receipts: its rows go on PUBACK
            self._db.execute("ALTER TABLE messages ADD COLUMN awaits_receipt INTEGER NOT NULL DEFAULT 0")
        self._last_id = self._sequence()
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return self._meta("dropped")

    @property
    def last_id(self) -> int:
        """The highest outbox sequence given out so far (0 for a new outbox)."""
        return self._last_id

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, key: str, by: int) -> int:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
            (key, by, by),
        )
        return self._meta(key)

    def _sequence(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return int(row[0]) if row else 0

    def append(
        self,
        channel: str,
        payload: bytes | Callable[[int], bytes],
        *,
        droppable: bool,
        awaits_receipt: bool = False,
    ) -> int:
        """Queue a message and return its sequence; ``payload`` may be built from it (to carry it)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row_id = self._sequence() + 1
                body = payload(row_id) if callable(payload) else payload
                self._db.execute(
                    "INSERT INTO messages (id, channel, droppable, payload, awaits_receipt) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row_id, channel, int(droppable), body, int(awaits_receipt)),
                )
                excess = self._depth + 1 - self.max_messages
                dropped = 0
                if excess > 0:
                    dropped = self._db.execute(
                        "DELETE FROM messages WHERE id IN "
                        "(SELECT id FROM messages WHERE droppable = 1 ORDER BY id LIMIT ?)",
                        (excess,),
                    ).rowcount
                    if dropped:
                        self._bump("dropped", dropped)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += 1 - dropped
            self._last_id = row_id
        if dropped:
            log.warning(
                "outbox full (%d): dropped the %d oldest telemetry message(s)", self.max_messages, dropped
            )
        return row_id

    def peek(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, payload, awaits_receipt FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(int(r[0]), str(r[1]), bytes(r[2]), bool(r[3])) for r in rows]

    def oldest_id(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(id) FROM messages").fetchone()
        return None if row[0] is None else int(row[0])

    def delete(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            removed = self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids]).rowcount
            self._db.execute("COMMIT")
            self._depth -= max(removed, 0)

    def delete_runs(self, runs: Iterable[tuple[int, int]]) -> int:
        """Delete the rows numbered ``first..last`` of each run (what a receipt lists); returns how many."""
        runs = list(runs)
        if not runs:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            removed = max(
                self._db.executemany("DELETE FROM messages WHERE id BETWEEN ? AND ?", runs).rowcount, 0
            )
            self._db.execute("COMMIT")
            self._depth -= removed
        return removed

    def next_session(self) -> int:
        """The session number for a new connection (persisted before it is used)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            value = self._bump("session", 1)
            self._db.execute("COMMIT")
            return value

    def close(self) -> None:
        with self._lock:
            self._db.close()
