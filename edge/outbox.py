"""Store-and-forward outbox on disk (SQLite, WAL, synchronous=FULL: a row survives kill -9 and power loss).

Rows are read in insertion order and deleted only once the broker has acknowledged them (PUBACK).
Above ``max_messages`` the oldest droppable rows (telemetry) are deleted and counted; events never are.
Also keeps the device's MQTT session counter, so it survives restarts too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    droppable INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_droppable ON messages (droppable, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    channel: str
    payload: bytes


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
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return self._meta("dropped")

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, key: str, by: int) -> int:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
            (key, by, by),
        )
        return self._meta(key)

    def append(self, channel: str, payload: bytes, *, droppable: bool) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO messages (channel, droppable, payload) VALUES (?, ?, ?)",
                    (channel, int(droppable), payload),
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
        if dropped:
            log.warning(
                "outbox full (%d): dropped the %d oldest telemetry message(s)", self.max_messages, dropped
            )

    def peek(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, payload FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def delete(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            removed = self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids]).rowcount
            self._db.execute("COMMIT")
            self._depth -= max(removed, 0)

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
