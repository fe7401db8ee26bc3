"""JSON Schema (draft 2020-12) for every channel's payload, generated from the protocol models.

``make schemas`` (``python -m citywatch.protocol.schemas``) writes ``docs/schemas/v1/``: one
``{channel}.schema.json`` per entry of ``MESSAGE_BY_CHANNEL`` and an ``index.json``. A test regenerates
them in memory and fails when the committed files differ, so the files are always the models' word.

pydantic's own schema describes each field; what the models check beyond single fields is added here,
so that a payload the schema accepts is one the models accept (the exceptions, which JSON Schema cannot
express, are listed in docs/protocol.md, "Checked beyond the schema"):

- ``v`` is required (the codec refuses a payload without it, though the model has a default);
- dictionary keys that must match a pattern refuse other keys (pydantic writes ``patternProperties``
  alone, which lets any other key through);
- an event's ``details`` are checked against the model for its ``type`` (``if``/``then``), a device may
  not send ``device_offline``, and ``seq`` is 0 exactly for phase ``new``;
- an evidence item's ``content_type`` is the one its ``kind`` has (``if``/``then``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from citywatch.protocol.messages import (
    DETAILS_BY_TYPE,
    EVIDENCE_CONTENT_TYPES,
    GATEWAY_EVENT_TYPES,
    MESSAGE_BY_CHANNEL,
    PROTOCOL_VERSION,
    QOS_BY_CHANNEL,
    RETAINED_CHANNELS,
    EventMessage,
    EventPhase,
    EventType,
    EvidenceMessage,
)
from citywatch.protocol.topics import DEVICE_TO_GATEWAY, GATEWAY_TO_DEVICE, Channel

DIALECT = "https://json-schema.org/draft/2020-12/schema"
VERSION_DIR = f"v{PROTOCOL_VERSION}"
INDEX_FILE = "index.json"
# No host serves these files: a URN names each schema without pretending one does.
ID_PREFIX = f"urn:citywatch:protocol:{VERSION_DIR}:"
GENERATED_BY = (
    "Generated from citywatch/protocol/messages.py by `make schemas`; do not edit. "
    "docs/protocol.md lists what the gateway checks beyond this schema."
)
# Raised by the gateway itself: a device sending it is refused.
GATEWAY_ONLY_EVENT_TYPES = GATEWAY_EVENT_TYPES


def schema_file_name(channel: Channel) -> str:
    return f"{channel.value}.schema.json"


def channel_schema(channel: Channel) -> dict[str, Any]:
    """The JSON Schema of one channel's payload."""
    model = MESSAGE_BY_CHANNEL[channel]
    schema = model.model_json_schema(mode="validation")
    _require_version(schema)
    for node in _subschemas(schema):
        _close_pattern_keys(node)
    if model is EventMessage:
        _add_event_rules(schema)
    if model is EvidenceMessage:
        _add_evidence_rules(schema)
    header = {
        "$schema": DIALECT,
        "$id": f"{ID_PREFIX}{channel.value}",
        "$comment": GENERATED_BY,
        "title": f"citywatch/{VERSION_DIR} `{channel.value}` payload ({model.__name__})",
    }
    return header | {key: value for key, value in schema.items() if key not in header}


def generate() -> dict[str, str]:
    """Every file of ``docs/schemas/v1/``, by name relative to it, as the exact text to write."""
    files = {schema_file_name(channel): _dump(channel_schema(channel)) for channel in MESSAGE_BY_CHANNEL}
    files[INDEX_FILE] = _dump(_index())
    return files


def write(root: Path) -> list[Path]:
    """Write the schemas under ``root/v1`` and delete schema files no channel has any more."""
    target = root / VERSION_DIR
    target.mkdir(parents=True, exist_ok=True)
    files = generate()
    for stale in target.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _dump(document: dict[str, Any]) -> str:
    # Sorted keys and a trailing newline: the staleness test compares bytes.
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _index() -> dict[str, Any]:
    return {
        "$comment": GENERATED_BY,
        "protocol_version": PROTOCOL_VERSION,
        "topic": f"citywatch/{VERSION_DIR}/{{site}}/{{device_id}}/{{channel}}",
        "channels": [
            {
                "channel": channel.value,
                "direction": _direction(channel),
                "qos": QOS_BY_CHANNEL[channel],
                "retained": channel in RETAINED_CHANNELS,
                "message": model.__name__,
                "schema": schema_file_name(channel),
                "$id": f"{ID_PREFIX}{channel.value}",
            }
            for channel, model in MESSAGE_BY_CHANNEL.items()
        ],
    }


def _direction(channel: Channel) -> str:
    if channel in DEVICE_TO_GATEWAY:
        return "device_to_gateway"
    if channel in GATEWAY_TO_DEVICE:
        return "gateway_to_device"
    raise ValueError(
        f"channel {channel.value!r} is in neither DEVICE_TO_GATEWAY nor GATEWAY_TO_DEVICE "
        "(citywatch/protocol/topics.py): say which way it goes"
    )


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _subschemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _subschemas(item)


def _require_version(schema: dict[str, Any]) -> None:
    version = schema["properties"]["v"]
    version.pop("default", None)  # a default would say "may be left out": the codec refuses that
    schema["required"] = ["v", *[name for name in schema.get("required", []) if name != "v"]]


def _close_pattern_keys(node: dict[str, Any]) -> None:
    """A dict whose keys pydantic checks against a pattern: keys that do not match are refused too."""
    if "patternProperties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False


def _add_event_rules(schema: dict[str, Any]) -> None:
    defs = schema.setdefault("$defs", {})
    event_type = defs[EventType.__name__]
    event_type["enum"] = [value for value in event_type["enum"] if value not in GATEWAY_ONLY_EVENT_TYPES]
    event_type["description"] = (
        "What a device may raise. "
        + ", ".join(sorted(GATEWAY_ONLY_EVENT_TYPES))
        + " are raised by the gateway only."
    )
    rules: list[dict[str, Any]] = []
    for kind, details_model in DETAILS_BY_TYPE.items():
        if kind in GATEWAY_ONLY_EVENT_TYPES:
            continue
        defs[details_model.__name__] = _details_schema(details_model)
        then: dict[str, Any] = {"properties": {"details": {"$ref": f"#/$defs/{details_model.__name__}"}}}
        if any(field.is_required() for field in details_model.model_fields.values()):
            then["required"] = ["details"]  # left out, details are {}: these fields would be missing
        rules.append({"if": _field_is("type", kind.value), "then": then})
    rules.append(
        {
            "if": _field_is("phase", EventPhase.NEW.value),
            "then": {"properties": {"seq": {"const": 0}}},
            "else": {"properties": {"seq": {"minimum": 1}}},
        }
    )
    schema["allOf"] = rules


def _add_evidence_rules(schema: dict[str, Any]) -> None:
    schema["allOf"] = [
        {
            "if": _field_is("kind", kind.value),
            "then": {"properties": {"content_type": {"const": content_type}}},
        }
        for kind, content_type in EVIDENCE_CONTENT_TYPES.items()
    ]


def _details_schema(model: type[BaseModel]) -> dict[str, Any]:
    details = model.model_json_schema(mode="validation")
    if "$defs" in details:  # the details models are flat today; a nested one needs its defs hoisted
        raise ValueError(f"{model.__name__} has nested definitions: hoist them into the event schema")
    details.setdefault("description", f"`details` of an event of this type ({model.__name__}).")
    return details


def _field_is(name: str, value: str) -> dict[str, Any]:
    return {"properties": {name: {"const": value}}, "required": [name]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m citywatch.protocol.schemas",
        description="Write the JSON Schema of every channel's payload (docs/schemas/v1/).",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("docs/schemas"), help="root folder (default: docs/schemas)"
    )
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
