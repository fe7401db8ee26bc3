"""The embedded telemetry store: one SQLite file, WAL, batched idempotent inserts."""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.telemetry.base import (
    Aggregation,
    HistoryRow,
    StoreStatus,
    TelemetryPoint,
    TelemetryUnavailableError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS telemetry (
    device_id   TEXT    NOT NULL,
    measurement TEXT    NOT NULL,
    ts_us       INTEGER NOT NULL,  -- device time, microseconds since the epoch (UTC)
    site        TEXT    NOT NULL,
    fields      TEXT    NOT NULL,  -- JSON object of numbers/booleans
    tags        TEXT    NOT NULL,  -- JSON object of strings
    PRIMARY KEY (device_id, measurement, ts_us)
) WITHOUT ROWID;
"""

_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder for the hot path, not one per call
_AGGREGATES: dict[str, str] = {"mean": "avg(v)", "min": "min(v)", "max": "max(v)", "count": "count(v)"}
# Before the contract refused them, NaN and infinities were stored in Python's spelling, which is not
# JSON: json_extract() fails on the whole row ("malformed JSON"). Read them as null (left out). Field
# names are lower-case, so these capitalised words can only be such values.
_READABLE_FIELDS = (
    "CASE WHEN fields GLOB '*[NI]*' THEN "
    "replace(replace(replace(fields, '-Infinity', 'null'), 'Infinity', 'null'), 'NaN', 'null') "
    "ELSE fields END"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"naive timestamp {ts!r}: telemetry times must be timezone-aware")
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=4096)
def _json_key(key: str) -> str:
    return _JSON.encode(key) + ":"


def _fields_json(fields: Mapping[str, float | int | bool]) -> str:
    """What ``_JSON.encode(dict(fields))`` returns, without setting up an encoder per row."""
    parts = []
    for key, value in fields.items():
        if value is True:
            text = "true"
        elif value is False:
            text = "false"
        elif type(value) is int or (type(value) is float and value - value == 0.0):  # finite: repr is JSON
            text = repr(value)
        else:  # NaN, infinities, subclasses: the encoder's own spelling
            text = _JSON.encode(value)
        parts.append(_json_key(key) + text)
    return "{" + ",".join(parts) + "}"


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class SqliteTelemetryStore:
    """``TelemetryStore`` on SQLite; a repeated (device_id, measurement, ts) is ignored."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # committed = on disk: the ingest acks after this
        self._db.executescript(_SCHEMA)
        # Reads on a connection of their own: with WAL they never wait for a write, so charts and
        # /health answer while a write waits for a lock or fails.
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA query_only=1")

    def write(self, points: Sequence[TelemetryPoint]) -> None:
        if not points:
            return
        encode = _JSON.encode
        rows = [
            (
                p.device_id,
                p.measurement,
                _to_us(p.ts),
                p.site,
                _fields_json(p.fields),
                encode(p.tags if isinstance(p.tags, dict) else dict(p.tags)) if p.tags else "{}",
            )
            for p in points
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO telemetry VALUES (?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def history(
        self,
        *,
        device_id: str,
        measurement: str,
        field: str,
        start: datetime,
        stop: datetime,
        window: timedelta | None = None,
        aggregation: Aggregation = "mean",
    ) -> list[HistoryRow]:
        start_us, stop_us = _to_us(start), _to_us(stop)
        samples = (
            f"SELECT ts_us, json_extract({_READABLE_FIELDS}, '$.' || ?) AS v FROM telemetry "
            "WHERE device_id = ? AND measurement = ? AND ts_us >= ? AND ts_us < ?"
        )
        params: list[object] = [field, device_id, measurement, start_us, stop_us]
        if window is None:
            sql = f"SELECT ts_us, v FROM ({samples}) WHERE v IS NOT NULL ORDER BY ts_us"
        else:
            window_us = int(window.total_seconds() * 1_000_000)
            if window_us <= 0:
                raise ValueError(f"aggregation window must be positive, got {window}")
            bucket = f"(? + ((ts_us - ?) / {window_us}) * {window_us})"
            params = [start_us, start_us, *params]
            if aggregation == "last":
                # SQLite returns the other columns from the row holding max(ts_us).
                sql = f"SELECT {bucket} AS b, v, max(ts_us) FROM ({samples}) WHERE v IS NOT NULL GROUP BY b ORDER BY b"
            else:
                sql = (
                    f"SELECT {bucket} AS b, {_AGGREGATES[aggregation]} FROM ({samples}) "
                    "WHERE v IS NOT NULL GROUP BY b ORDER BY b"
                )
        try:
            with self._read_lock:
                rows = self._reader.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, I/O error
            raise TelemetryUnavailableError(
                f"the telemetry database {self.path} cannot be read: {exc}"
            ) from exc
        return [HistoryRow(ts=_from_us(int(row[0])), value=float(row[1])) for row in rows]

    def count(self, *, device_id: str | None = None, measurement: str | None = None) -> int:
        sql, params = "SELECT count(*) FROM telemetry WHERE 1=1", list[str]()
        if device_id is not None:
            sql, params = sql + " AND device_id = ?", [*params, device_id]
        if measurement is not None:
            sql, params = sql + " AND measurement = ?", [*params, measurement]
        with self._read_lock:
            return int(self._reader.execute(sql, params).fetchone()[0])

    def status(self) -> StoreStatus:
        """Embedded: nothing to reach. Writes that fail show in /health as the ingest's failing writes."""
        return StoreStatus(kind="sqlite", ok=True)

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()
