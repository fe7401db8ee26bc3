"""``citywatch config new``: a commented starting config for a device kind, written from the model.

Every field of the kind's config model is written with its default and a comment from the model's own
title and description (so the template cannot drift from the model); the few fields without a
default get a starting value below that installers replace (camera URL, sensor port, building...).
The result passes ``config check``.
"""

from __future__ import annotations

import json
import textwrap
import typing
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge.config import DeviceConfig, validate_config_dict
from edge.installer.fields import members

# Starting values of the fields a kind's model has no default for; replace them on site.
STARTERS: dict[str, dict[str, Any]] = {
    "culvert": {
        "sensor": {"type": "serial", "port": "/dev/ttyUSB0"},
        "culvert": {"mount_height_mm": 2200},
    },
    "elevator": {
        "elevator": {
            "camera": {
                "source": {"kind": "stream", "url": "rtsp://10.0.0.20:554/stream1"},
                "width": 640,
                "height": 360,
            },
            "detector": {"model": "models/ebike-detector.onnx", "score_threshold": 0.3},
        }
    },
    "facade": {
        "facade": {
            "camera": {"source": {"kind": "stream", "url": "rtsp://10.0.0.21:554/stream1"}},
            "building": {"floors": 18},
            "calibration": {
                "method": "four_points",
                "points": [
                    {"pixel": [560, 1040], "facade": [0.0, 0.0]},
                    {"pixel": [1360, 1040], "facade": [24.0, 0.0]},
                    {"pixel": [1180, 60], "facade": [24.0, 54.0]},
                    {"pixel": [740, 60], "facade": [0.0, 54.0]},
                ],
            },
        }
    },
    "street": {
        "street": {
            "camera": {"source": {"kind": "stream", "url": "rtsp://10.0.0.22:554/stream1"}},
            "zones": [{"name": "no_parking", "polygon": [[600, 700], [1300, 700], [1350, 900], [560, 900]]}],
        }
    },
}
HEADER = """\
# citywatch {kind} device {site}/{device_id}: a starting config from `citywatch config new`.
# Every field is listed with its default; replace the values marked CHANGE ME with the site's, delete
# what you keep at its default if you like, then check it before the truck leaves:
#   citywatch config check {path}
# Schema (for editors): firmware_configs/schema/device-config.schema.json
"""
CHANGE_ME = "CHANGE ME"


def kinds() -> list[str]:
    return [typing.get_args(m.model_fields["kind"].annotation)[0] for m in members(DeviceConfig)]


def new_config(kind: str, site: str, device_id: str, *, path: str = "CONFIG.yaml") -> str:
    """The commented YAML of a new device; raises ValueError for an unknown kind or a bad id."""
    if kind not in STARTERS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(kinds())}")
    raw: dict[str, Any] = {
        "kind": kind,
        "device": {"id": device_id, "site": site, "description": f"{CHANGE_ME}: where it is, for people"},
        "outbox": {"path": f"/var/lib/citywatch/{device_id}/outbox.sqlite3"},
        **STARTERS[kind],
    }
    config = validate_config_dict(raw, source="config new")  # ConfigError: a bad id or site
    starters = _paths(STARTERS[kind]) | {"device.description"}
    lines = HEADER.format(kind=kind, site=site, device_id=device_id, path=path).splitlines()
    lines += _render(config, indent=0, prefix="", starters=starters)
    text = "\n".join(lines) + "\n"
    validate_config_dict(yaml.safe_load(text), source="config new")  # what is written is valid
    return text


def _paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {p for key, item in value.items() for p in _paths(item, f"{prefix}.{key}" if prefix else key)}
    return {prefix}


def _comment(info: FieldInfo | None, pad: str) -> list[str]:
    """The field's title and description as comment lines above it."""
    if info is None:
        return []
    text = " ".join(t.rstrip(".") + "." for t in (info.title, info.description) if t)
    return [f"{pad}# {line}" for line in textwrap.wrap(text, width=max(40, 100 - len(pad)))]


def _mark(changed: bool) -> str:
    return f"  # {CHANGE_ME}" if changed else ""


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        dumped = yaml.safe_dump(value, default_style=None, width=10_000).strip()
        return dumped.removesuffix("\n...").strip()
    return json.dumps(value)


def _render(model: BaseModel, *, indent: int, prefix: str, starters: set[str]) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    fields = type(model).model_fields
    for name in sorted(fields, key=lambda n: n not in ("kind", "type", "method")):  # the tag first
        info, value = fields[name], getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        marked = path in starters
        if indent == 0 and lines:
            lines.append("")
        if isinstance(value, BaseModel):
            lines += _comment(info, pad)
            lines.append(f"{pad}{name}:{_mark(marked)}")
            lines += _render(value, indent=indent + 1, prefix=path, starters=starters)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            lines += _comment(info, pad)
            lines.append(f"{pad}{name}:{_mark(marked)}")
            for item in value:
                body = _render(item, indent=indent + 2, prefix=path, starters=starters)
                first = next(i for i, line in enumerate(body) if not line.lstrip().startswith("#"))
                lines += body[:first]
                lines.append(f"{pad}  - {body[first].lstrip()}")
                lines += body[first + 1 :]
        else:
            dumped = json.loads(type(model).__pydantic_serializer__.to_json(model, include={name}))[name]
            text = _scalar(dumped) if not isinstance(dumped, list | dict) else json.dumps(dumped)
            lines += _comment(info, pad)
            lines.append(f"{pad}{name}: {text}{_mark(marked)}")
    return lines
