"""A desk with a site key and a culvert config whose sensor replays a constant level (12 cm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edge.installer import keys
from edge.installer.signing import SigningKey

SITE = "s1"
DEVICE = "c1"
LEVEL_CM = 12.0
MOUNT_MM = 2000


def desk_config(
    path: Path,
    broker_url: str,
    *,
    notice_cm: float = 15.0,
    device_id: str = DEVICE,
    site: str = SITE,
    **mqtt: Any,
) -> Path:
    """A culvert config at the desk; its level file beside it (bundled by flash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    level = path.parent / "level.csv"
    if not level.exists():
        distance = MOUNT_MM - LEVEL_CM * 10
        level.write_text(f"offset_s,dist_mm\n0,{distance:g}\n864000,{distance:g}\n")
    raw = {
        "kind": "culvert",
        "device": {"id": device_id, "site": site},
        "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, **mqtt},
        "outbox": {"path": str(path.parent / "outbox.sqlite3")},
        "sensor": {"type": "replay", "file": str(level), "loop": True},
        "culvert": {
            "mount_height_mm": MOUNT_MM,
            "sample_interval_s": 0.05,
            "median_window": 1,
            "relock_samples": 1,
            "thresholds": {"notice_cm": notice_cm, "warning_cm": 20, "critical_cm": 30},
        },
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def site_keys(root: Path, site: str = SITE) -> list[SigningKey]:
    keys.init(site, root)
    return keys.signing_keys(site, root)
