"""Evidence files: ``<evidence_dir>/<device_id>/<evidence_id>.<mp4|jpg>``, written whole or not at all.

A joined item is written to a temporary file while it is hashed, fsynced, then renamed into place: a
crash leaves no half file under a served name, and writing the same item again (a batch retried after a
database error) replaces it with the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("gateway.evidence")

EXTENSIONS = {"video/mp4": "mp4", "image/jpeg": "jpg"}
_TMP_SUFFIX = ".part"


@dataclass(frozen=True, slots=True)
class Written:
    """A joined item on disk, under a temporary name until ``keep`` (or ``discard``)."""

    path: Path
    tmp: Path
    size: int
    sha256: str
    sha1: str

    def keep(self) -> None:
        self.tmp.replace(self.path)
        _fsync_dir(self.path.parent)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class EvidenceFiles:
    root: Path

    def relative_name(self, device_id: str, evidence_id: str, content_type: str) -> str:
        # Both ids match the protocol's patterns ([A-Za-z0-9_-]): nothing here can climb out of root.
        return f"{device_id}/{evidence_id}.{EXTENSIONS[content_type]}"

    def path(self, relative_name: str) -> Path:
        path = (self.root / relative_name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"evidence file name {relative_name!r} points outside the evidence folder")
        return path

    def write(self, relative_name: str, chunks: Iterable[bytes]) -> Written:
        """Write the chunks in order, hashing them; the file keeps a temporary name until ``keep``."""
        path = self.path(relative_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
        sha256, sha1, size = hashlib.sha256(), hashlib.sha1(usedforsecurity=False), 0
        try:
            with tmp.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    sha256.update(chunk)
                    sha1.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())  # on disk before the commit that says it is there
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Written(path=path, tmp=tmp, size=size, sha256=sha256.hexdigest(), sha1=sha1.hexdigest())

    def remove_stale_temporaries(self, older_than_s: float) -> int:
        """Temporary files a crash left behind; returns how many went."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for tmp in self.root.glob(f"*/*{_TMP_SUFFIX}"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fsync_dir(directory: Path) -> None:
    """The rename itself survives a power cut only once its directory is synced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems do not sync directories; the file itself is synced
        log.debug("could not fsync %s: %s", directory, exc)
    finally:
        os.close(fd)
