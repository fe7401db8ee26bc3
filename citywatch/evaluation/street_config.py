"""The street analyzer's config for a video with ``citywatch-street-truth/1`` ground truth: the one mapping
from the truth's zones to the config's (``citywatch eval parking``, the street e2e test and the street
benchmark all use it).

A truth zone is a ``street.zones`` entry as it stands: its ``name``, ``polygon`` (pixels of the truth's
``width`` x ``height``, inside the frame) and ``exempt_classes`` are copied, and so are ``dwell_s`` and
``grace_s`` where a zone has its own (labelled real footage may), else the truth's ``rules``. What only the
truth has (``kind``, ``polygon_m``) is left out. Zone hours are not mapped: the truth's times are seconds
from the first frame, not a time of day, so the ban is scored as in force all the time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge.street.config import StreetConfig

# The truth zone keys that are config keys too (copied as they are).
ZONE_KEYS = ("name", "polygon", "exempt_classes", "dwell_s", "grace_s")
DEFAULT_DWELL_S, DEFAULT_GRACE_S = 120.0, 600.0


def zone_configs(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """The truth's zones as ``street.zones`` entries (plain data, validated with the whole config)."""
    rules = truth.get("rules") or {}
    defaults = {
        "dwell_s": float(rules.get("dwell_s", DEFAULT_DWELL_S)),
        "grace_s": float(rules.get("grace_s", DEFAULT_GRACE_S)),
    }
    return [
        defaults | {key: zone[key] for key in ZONE_KEYS if zone.get(key) is not None}
        for zone in truth["zones"]
    ]


def analyzer_config_from_truth(
    truth: dict[str, Any],
    *,
    video: Path | None = None,
    source: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> StreetConfig:
    """A ``StreetConfig`` for the truth document's camera and zones.

    The source: ``source`` when given (e.g. the ``street_simulator`` section that made the truth), else
    ``video`` as a file read as fast as it decodes. ``overrides``: sections (``detector``, ``plate``,
    ``evidence``, ``tracking``, ...) merged over the defaults; a list or a scalar replaces.
    """
    if source is None:
        if video is None:
            raise ValueError("give the video file or the source section the truth belongs to")
        source = {"kind": "file", "path": str(video), "realtime": False}
    raw: dict[str, Any] = {
        "camera": {
            "source": source,
            "fps": float(truth["fps"]),
            "width": int(truth["width"]),
            "height": int(truth["height"]),
        },
        "zones": zone_configs(truth),
    }
    for section, values in (overrides or {}).items():
        # Merged into the section's defaults (a detector override keeps the COCO label map the vehicle
        # classes name), not put in their place.
        current = raw.get(section, _default_section(section))
        raw[section] = (
            {**current, **values} if isinstance(current, dict) and isinstance(values, dict) else values
        )
    return StreetConfig.model_validate(raw)


def _default_section(section: str) -> object:
    field = StreetConfig.model_fields.get(section)
    default = field.get_default(call_default_factory=True) if field is not None else None
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else None
