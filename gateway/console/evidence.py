"""An event's evidence as the console shows it: the snapshot, and the clips and photos of the evidence
domain (``gateway.evidence``) when this gateway has it.

The API's evidence links need a bearer token, which a browser page cannot send, so the console serves
the same files under its own session (``/console/events/{id}/snapshot`` and ``.../evidence/{eid}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from gateway.events.models import Event
from gateway.settings import Settings

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class EvidenceView:
    evidence_id: str
    kind: str  # snapshot, clip, still, photo, plate_crop
    content_type: str
    url: str  # the console's own address for it
    caption: str | None
    taken_at: datetime | None

    @property
    def is_video(self) -> bool:
        return self.content_type.startswith("video/")


def snapshot_file(settings: Settings, event: Event) -> Path | None:
    """The event's snapshot JPEG when it has arrived."""
    if not event.snapshot_id or not _ID.match(event.snapshot_id):
        return None
    path = settings.snapshot_dir / f"{event.snapshot_id}.jpg"
    return path if path.is_file() else None


def _evidence_domain() -> Any:
    """``gateway.evidence`` (clips, photos, plate crops), or None on a gateway without it."""
    try:
        from gateway.evidence import files, links
    except ImportError:
        return None
    return files, links


def evidence_of(session: Session, settings: Settings, event: Event, *, prefix: str) -> list[EvidenceView]:
    """The snapshot first (once it has arrived), then every complete item by the time it shows."""
    views: list[EvidenceView] = []
    if snapshot_file(settings, event) is not None:
        views.append(
            EvidenceView(
                evidence_id=event.snapshot_id or "",
                kind="snapshot",
                content_type="image/jpeg",
                url=f"{prefix}/events/{event.id}/snapshot",
                caption=None,
                taken_at=event.started_at,
            )
        )
    domain = _evidence_domain()
    if domain is None:
        return views
    _files, links = domain
    for item in links.items_of(session, event):
        views.append(
            EvidenceView(
                evidence_id=item.evidence_id,
                kind=item.kind,
                content_type=item.content_type,
                url=f"{prefix}/events/{event.id}/evidence/{item.evidence_id}",
                caption=item.caption,
                taken_at=item.taken_at,
            )
        )
    return views


def evidence_file(
    session: Session, settings: Settings, event: Event, evidence_id: str
) -> tuple[Path, str] | None:
    """(file, content type) of one complete item of the event, or None."""
    domain = _evidence_domain()
    if domain is None or not _ID.match(evidence_id):
        return None
    files, links = domain
    item = links.find(session, event, evidence_id)
    if item is None or not item.file_name:
        return None
    root = getattr(settings, "evidence_dir", settings.DATA_DIR / "evidence")
    try:
        path: Path = files.EvidenceFiles(root).path(item.file_name)
    except ValueError:
        return None
    return (path, item.content_type) if path.is_file() else None
