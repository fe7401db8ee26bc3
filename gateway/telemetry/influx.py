"""Telemetry in InfluxDB 2.x, with a disk spill so that nothing is lost while InfluxDB is away.

``write()`` sends each batch with the synchronous write API (gzip, retries with backoff) and returns
only when the server took it or when it sits fsynced in the spill directory; the library's batching
``write_api`` is not used because it drops batches after its retries. While InfluxDB is unreachable,
new batches go straight to the spill (in order, behind the ones already there) and a background thread
replays the spill every ``replay_interval_s`` until it is empty. A store opened on a spill directory
left by a crash replays it. Replays are safe: InfluxDB overwrites a point with the same series and
timestamp. The schema is in docs/telemetry.md.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast, get_args

import httpx
import urllib3.exceptions
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gateway.redaction import redact_text
from gateway.retry_after import parse_retry_after
from gateway.telemetry.base import (
    Aggregation,
    HistoryRow,
    StoreStatus,
    TelemetryPoint,
    TelemetryUnavailableError,
)
from gateway.telemetry.influx_spill import SpillQueue, SpillSegment

log = logging.getLogger(__name__)

# Device timestamps are stored to the millisecond (the library types its constants as plain str).
PRECISION = cast(WritePrecision, WritePrecision.MS)
RESERVED_TAGS = ("device_id", "site")
# Malformed data: retrying or replaying it cannot help, so it is set aside (413: batch_size too large).
_REJECTED_STATUSES = frozenset({400, 413, 422})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PING_TIMEOUT_S = 1.0  # /health waits at most this for InfluxDB


@dataclass(frozen=True, slots=True)
class InfluxOptions:
    """Where and how the store writes. ``spill_dir`` must be on persistent storage."""

    url: str
    token: str = field(repr=False)  # a secret: never in a repr, a log line or an answer
    org: str
    bucket: str
    spill_dir: Path
    batch_size: int = 5000  # points per HTTP write
    timeout_s: float = 10.0  # per HTTP request
    max_retries: int = 3  # after the first attempt, before a batch goes to the spill
    retry_backoff_s: float = 0.2  # first retry delay; doubles each retry, with jitter
    max_backoff_s: float = 5.0
    replay_interval_s: float = 2.0  # how often the spill is retried while InfluxDB is away
    # Bound on the spill, so a long outage cannot fill the disk the event database lives on; once it
    # is reached new telemetry is dropped and counted (events never go through this store). 0: none.
    spill_max_bytes: int = 0
    gzip: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 point per write, got {self.batch_size}")
        if self.timeout_s <= 0 or self.replay_interval_s <= 0:
            raise ValueError("timeout_s and replay_interval_s must be positive numbers of seconds")
        if self.max_retries < 0 or self.retry_backoff_s < 0:
            raise ValueError("max_retries and retry_backoff_s cannot be negative")
        if self.spill_max_bytes < 0:
            raise ValueError(
                f"spill_max_bytes cannot be negative (0 means no limit), got {self.spill_max_bytes}"
            )


class InfluxUnavailableError(RuntimeError):
    """InfluxDB could not take a batch (down, timing out, 5xx, or refusing our credentials)."""


class InfluxRejectedError(ValueError):
    """InfluxDB refused a batch as malformed; the batch is kept under ``spill_dir/rejected``."""


def to_line_protocol(point: TelemetryPoint) -> str:
    """One point as a line of InfluxDB line protocol ("" when no field has a finite value).

    Equal to what ``influxdb_client.Point`` makes of the same point (a test holds it to that), but
    several times faster: a device's series key is escaped once and cached. Numbers are written as
    floats, because InfluxDB refuses a field that changes type and devices may send 12 then 12.5.
    """
    fields = ",".join(
        f"{_escape_key(key)}={_field_value(value)}"
        for key, value in sorted(point.fields.items())
        if isinstance(value, bool | int) or math.isfinite(value)
    )
    if not fields:
        return ""
    extra_tags = tuple(sorted(point.tags.items())) if point.tags else ()
    series = _series_key(point.measurement, point.device_id, point.site, extra_tags)
    # The time as an exact integer: the library's own datetime conversion divides in floating point
    # and can land a millisecond early (…250 ms becomes …249), which would break idempotent replays.
    return f"{series} {fields} {to_epoch_ms(point.ts)}"


# Line-protocol escaping, as influxdb_client.client.write.point does it.
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})


@functools.lru_cache(maxsize=65536)
def _escape_key(key: str) -> str:
    return key.translate(_KEY_ESCAPES)


@functools.lru_cache(maxsize=65536)
def _series_key(measurement: str, device_id: str, site: str, extra_tags: tuple[tuple[str, str], ...]) -> str:
    tags = {key: value for key, value in extra_tags if key not in RESERVED_TAGS}
    tags["device_id"], tags["site"] = device_id, site
    tag_text = "".join(
        f",{_escape_key(key)}={_escape_tag_value(value)}"
        for key, value in sorted(tags.items())
        if key and value
    )
    return measurement.translate(_MEASUREMENT_ESCAPES) + tag_text


def _escape_tag_value(value: str) -> str:
    escaped = _escape_key(value)
    # A final backslash would escape the separator after it.
    return escaped + " " if escaped.endswith("\\") else escaped


def _field_value(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(float(value))
    return text[:-2] if text.endswith(".0") else text


def to_epoch_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"telemetry time {ts.isoformat()} has no UTC offset; device times must be aware")
    return (ts - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class _Batch:
    body: bytes
    points: int


def _batches(points: Sequence[TelemetryPoint], size: int) -> Iterator[_Batch]:
    for start in range(0, len(points), size):
        lines = [line for line in map(to_line_protocol, points[start : start + size]) if line]
        if lines:
            yield _Batch("\n".join(lines).encode(), len(lines))


class InfluxTelemetryStore:
    """A ``TelemetryStore`` on InfluxDB 2.x (or anything speaking its v2 write API, for writes)."""

    def __init__(self, options: InfluxOptions) -> None:
        self.options = options
        self._client = InfluxDBClient(
            url=options.url,
            token=options.token,
            org=options.org,
            timeout=int(options.timeout_s * 1000),
            enable_gzip=options.gzip,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._spill = SpillQueue(options.spill_dir)
        self._lock = threading.Lock()  # orders sends and spill appends
        # True while the spill holds batches: new ones queue behind them to keep the order.
        self._spilling = self._spill.oldest() is not None
        self._dropped_points = 0
        self._last_drop_log = -math.inf
        self._closed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._replayer = threading.Thread(target=self._replay_loop, name="influx-spill-replay", daemon=True)
        self._replayer.start()
        if self._spilling:
            log.warning(
                "replaying %d telemetry points spilled in %s", self._spill.pending_points(), options.spill_dir
            )
            self._wake.set()

    # -- TelemetryStore ----------------------------------------------------------------------------

    def write(self, points: Sequence[TelemetryPoint]) -> None:
        """Return once every point is in InfluxDB or fsynced in the spill.

        Raises ``InfluxRejectedError`` (after storing the other batches) when the server refused a
        batch as malformed; that batch is kept under ``spill_dir/rejected``.
        """
        if self._closed:
            raise RuntimeError("the InfluxDB telemetry store is closed")
        rejections: list[str] = []
        batches = list(_batches(points, self.options.batch_size))
        with self._lock:
            for batch in batches:
                if self._spilling:
                    self._to_spill(batch)
                    continue
                try:
                    self._send(batch.body, retries=self.options.max_retries)
                except InfluxUnavailableError as error:
                    log.error(
                        "InfluxDB unavailable, spilling telemetry to %s: %s", self.options.spill_dir, error
                    )
                    self._to_spill(batch)
                    self._spilling = True
                    self._wake.set()
                except InfluxRejectedError as error:
                    kept = self._spill.keep_rejected(batch.body, points=batch.points, reason=str(error))
                    rejections.append(f"{error} (batch kept in {kept})")
        if rejections:
            raise InfluxRejectedError("; ".join(rejections))

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
        """Samples of one field in [start, stop) via Flux, aggregated per window when given."""
        query = (
            "from(bucket: params.bucket)\n"
            "  |> range(start: params.start, stop: params.stop)\n"
            "  |> filter(fn: (r) => r._measurement == params.measurement and r._field == params.field"
            " and r.device_id == params.device_id)\n"
            "  |> toFloat()\n"
            "  |> group()\n"  # one series even when extra tags split it
            '  |> sort(columns: ["_time"])\n'
        )
        if aggregation not in get_args(Aggregation):
            raise ValueError(f"aggregation must be one of {get_args(Aggregation)}, got {aggregation!r}")
        if window is not None:
            every_ms = int(window / timedelta(milliseconds=1))
            if every_ms < 1:
                raise ValueError(f"window must be at least 1 ms, got {window}")
            query += (
                f"  |> aggregateWindow(every: {every_ms}ms, fn: {aggregation},"
                ' timeSrc: "_start", createEmpty: false)\n'
            )
        params: dict[str, Any] = {
            "bucket": self.options.bucket,
            "start": start,
            "stop": stop,
            "measurement": measurement,
            "field": field,
            "device_id": device_id,
        }
        rows = []
        for table in self._query(query, params):
            for record in table.records:
                value = record.get_value()
                if value is not None:
                    rows.append(HistoryRow(ts=record.get_time(), value=float(value)))
        return sorted(rows, key=lambda row: row.ts)

    def count(self, *, device_id: str | None = None, measurement: str | None = None) -> int:
        """Distinct (device, measurement, timestamp) points in the bucket, via Flux."""
        conditions = ["true"]
        params: dict[str, Any] = {"bucket": self.options.bucket}
        if device_id is not None:
            conditions.append("r.device_id == params.device_id")
            params["device_id"] = device_id
        if measurement is not None:
            conditions.append("r._measurement == params.measurement")
            params["measurement"] = measurement
        query = (
            "from(bucket: params.bucket)\n"
            "  |> range(start: 1970-01-01T00:00:00Z)\n"
            f"  |> filter(fn: (r) => {' and '.join(conditions)})\n"
            '  |> group(columns: ["device_id", "_measurement"])\n'
            '  |> distinct(column: "_time")\n'  # a point with several fields counts once
            "  |> count()\n"
            "  |> group()\n"
            "  |> sum()\n"
        )
        tables = self._query(query, params)
        return sum(int(record.get_value() or 0) for table in tables for record in table.records)

    def close(self) -> None:
        """Replay what is spilled (if InfluxDB is there) and release the client; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._replayer.join()
        self._replay_spill()
        pending = self._spill.pending_points()
        if pending:
            log.warning(
                "closing with %d telemetry points still spilled in %s: they are replayed on the next start",
                pending,
                self.options.spill_dir,
            )
        self._client.close()

    def status(self) -> StoreStatus:
        """Degraded while InfluxDB does not answer its ``/ping`` or batches wait in the spill."""
        error = self._ping()
        if error is None and self._spilling:
            error = "InfluxDB answers, but telemetry still waits in the spill (replaying, or writes refused)"
        return StoreStatus(
            kind="influx",
            ok=error is None,
            error=error,
            spilling=self._spilling,
            spilled_points=self.spilled_points(),
            spilled_bytes=self.spilled_bytes(),
            dropped_points_spill_full=self._dropped_points,
        )

    # -- state, for health checks and tests --------------------------------------------------------

    @property
    def spilling(self) -> bool:
        """True while batches wait in the spill for InfluxDB."""
        return self._spilling

    def spilled_points(self) -> int:
        return self._spill.pending_points()

    def spilled_bytes(self) -> int:
        return self._spill.pending_bytes()

    def dropped_points(self) -> int:
        """Points dropped because the spill was full (since this process started)."""
        return self._dropped_points

    def rejected_batches(self) -> list[Path]:
        return sorted(self._spill.rejected_dir.glob("*.lp"))

    # -- internals ---------------------------------------------------------------------------------

    def _query(self, query: str, params: dict[str, Any]) -> Any:
        """Run a Flux query; a server that is away or refuses becomes ``TelemetryUnavailableError``."""
        try:
            return self._client.query_api().query(query, params=params)
        except ApiException as error:
            body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
            raise TelemetryUnavailableError(
                redact_text(f"InfluxDB answered HTTP {error.status} {error.reason}: {(body or '')[:200]}"),
                retry_after_s=parse_retry_after(error.headers.get("Retry-After") if error.headers else None),
            ) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            cause = getattr(error, "reason", None) or error
            raise TelemetryUnavailableError(
                redact_text(f"InfluxDB at {self.options.url} is unreachable: {type(cause).__name__}: {cause}")
            ) from error

    def _ping(self) -> str | None:
        """None when InfluxDB answers ``GET /ping`` (no token needed) within a second, else why not."""
        url = f"{self.options.url.rstrip('/')}/ping"
        try:
            response = httpx.get(url, timeout=PING_TIMEOUT_S)
        except httpx.HTTPError as error:
            return redact_text(
                f"InfluxDB at {self.options.url} is unreachable: {type(error).__name__}: {error}"
            )
        if response.status_code >= 300:
            return redact_text(
                f"InfluxDB at {self.options.url} answered its ping with HTTP {response.status_code}"
            )
        return None

    def _to_spill(self, batch: _Batch) -> None:
        limit = self.options.spill_max_bytes
        if limit and self._spill.pending_bytes() + len(batch.body) > limit:
            self._dropped_points += batch.points
            now = time.monotonic()
            if now - self._last_drop_log >= 60:  # loud, but not a line per batch for hours
                self._last_drop_log = now
                log.error(
                    "telemetry spill %s is full (%d MB, the limit): dropping new telemetry until InfluxDB "
                    "is back; %d points dropped so far (events are not affected)",
                    self.options.spill_dir,
                    self._spill.pending_bytes() // 1_000_000,
                    self._dropped_points,
                )
            return
        self._spill.append(batch.body, points=batch.points)

    def _send(self, body: bytes, *, retries: int) -> None:
        attempt = 0
        while True:
            try:
                self._write_api.write(
                    bucket=self.options.bucket, org=self.options.org, record=body, write_precision=PRECISION
                )
                return
            except ApiException as error:
                body_text = (
                    error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
                )
                reason = f"HTTP {error.status} {error.reason}: {(body_text or '')[:500]}".strip()
                if error.status in _REJECTED_STATUSES:
                    raise InfluxRejectedError(f"InfluxDB refused a batch as malformed: {reason}") from error
                failure = InfluxUnavailableError(reason)
                retry_after = parse_retry_after(error.headers.get("Retry-After") if error.headers else None)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                failure = InfluxUnavailableError(f"{type(error).__name__}: {error}")
                retry_after = None
            if attempt >= retries:
                raise failure
            delay = min(self.options.max_backoff_s, self.options.retry_backoff_s * 2**attempt)
            delay = retry_after if retry_after is not None else delay * random.uniform(0.5, 1.0)
            attempt += 1
            log.debug("InfluxDB write attempt %d failed (%s), retrying in %.2fs", attempt, failure, delay)
            time.sleep(min(delay, self.options.max_backoff_s))

    def _replay_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.options.replay_interval_s)
            self._wake.clear()
            if self._spilling and not self._stop.is_set():
                self._replay_spill()

    def _replay_spill(self) -> None:
        """Send spilled batches oldest first; stop at the first that InfluxDB cannot take yet."""
        while True:
            segments = self._spill.segments()
            if not segments:
                with self._lock:  # no append can slip in between this check and the switch
                    if self._spill.oldest() is None:
                        if self._spilling:
                            log.info("telemetry spill replayed into InfluxDB; writing directly again")
                        self._spilling = False
                        return
                continue
            for group in _group_segments(segments, self.options.batch_size):
                if not self._replay_group(group):
                    return

    def _replay_group(self, group: list[SpillSegment]) -> bool:
        """Replay consecutive small batches in one request; False while InfluxDB is still away."""
        try:
            self._send(b"\n".join(segment.read() for segment in group), retries=0)
        except InfluxUnavailableError as error:
            log.debug("InfluxDB still unavailable (%s)", error)
            return False
        except InfluxRejectedError as error:
            if len(group) > 1:  # find the malformed batch and keep the others
                return all(self._replay_group([segment]) for segment in group)
            kept = self._spill.reject(group[0], str(error))
            log.error("%s; batch kept in %s", error, kept)
            return True
        for segment in group:
            self._spill.remove(segment)
        return True


def _group_segments(segments: list[SpillSegment], max_points: int) -> Iterator[list[SpillSegment]]:
    group: list[SpillSegment] = []
    points = 0
    for segment in segments:
        if group and points + segment.points > max_points:
            yield group
            group, points = [], 0
        group.append(segment)
        points += segment.points
    if group:
        yield group
