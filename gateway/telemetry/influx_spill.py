"""The InfluxDB store's on-disk spill: line-protocol batches kept in order until InfluxDB takes them.

One file per batch, named ``{sequence:012d}-{points}.lp``: written to a temporary name, fsynced, then
renamed (and the directory fsynced), so a crash leaves either the whole batch or nothing. Batches the
server refuses as malformed go to ``rejected/`` with the server's answer beside them, never deleted.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

_SEGMENT_RE = re.compile(r"^(\d{12})-(\d+)\.lp$")


@dataclass(frozen=True, slots=True)
class SpillSegment:
    path: Path
    sequence: int
    points: int

    def read(self) -> bytes:
        return self.path.read_bytes()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, body: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as file:
        file.write(body)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class SpillQueue:
    """FIFO of line-protocol batches in a directory: one appending thread, one replaying thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.rejected_dir = directory / "rejected"
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):  # a batch whose write was cut off by a crash
            leftover.unlink()
        # Sequence numbers are never reused, so a kept rejected batch is never overwritten either.
        used = [segment.sequence for segment in self.segments() + self.segments(self.rejected_dir)]
        self._next_sequence = max(used, default=0) + 1
        self._size_lock = threading.Lock()  # the appending and the replaying thread both change it
        self._pending_bytes = sum(segment.path.stat().st_size for segment in self.segments())

    def segments(self, directory: Path | None = None) -> list[SpillSegment]:
        """Spilled batches, oldest first."""
        found = []
        for path in (directory or self.directory).iterdir():
            match = _SEGMENT_RE.match(path.name)
            if match:
                found.append(SpillSegment(path, int(match.group(1)), int(match.group(2))))
        return sorted(found, key=lambda segment: segment.sequence)

    def oldest(self) -> SpillSegment | None:
        segments = self.segments()
        return segments[0] if segments else None

    def append(self, body: bytes, *, points: int) -> SpillSegment:
        """Store one batch durably (fsynced) at the end of the queue."""
        sequence = self._next_sequence
        self._next_sequence += 1
        path = self.directory / f"{sequence:012d}-{points}.lp"
        _write_durably(path, body)
        with self._size_lock:
            self._pending_bytes += len(body)
        return SpillSegment(path, sequence, points)

    def remove(self, segment: SpillSegment) -> None:
        self._forget(segment)
        segment.path.unlink(missing_ok=True)

    def _forget(self, segment: SpillSegment) -> None:
        try:
            size = segment.path.stat().st_size
        except FileNotFoundError:
            return
        with self._size_lock:
            self._pending_bytes -= size

    def pending_bytes(self) -> int:
        """Bytes of batches waiting in the queue (the rejected ones are not counted)."""
        return self._pending_bytes

    def reject(self, segment: SpillSegment, reason: str) -> Path:
        """Move a batch the server refused out of the queue, keeping it and the reason for an operator."""
        target = self.rejected_dir / segment.path.name
        _write_durably(target.with_suffix(".error.txt"), reason.encode())
        self._forget(segment)
        os.replace(segment.path, target)
        _fsync_dir(self.rejected_dir)
        return target

    def keep_rejected(self, body: bytes, *, points: int, reason: str) -> Path:
        """Keep a refused batch that never entered the queue (same layout as ``reject``)."""
        sequence = self._next_sequence
        self._next_sequence += 1
        target = self.rejected_dir / f"{sequence:012d}-{points}.lp"
        _write_durably(target.with_suffix(".error.txt"), reason.encode())
        _write_durably(target, body)
        return target

    def pending_points(self) -> int:
        return sum(segment.points for segment in self.segments())
