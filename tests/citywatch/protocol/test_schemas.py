"""The committed JSON Schemas are the models' word: current, valid draft 2020-12, and in agreement with the
models on every example (docs/examples, the page's JSON blocks) and on payloads that break the contract.

Agreement is checked both ways: what the models refuse the schema refuses, and what the schema refuses
the models refuse, except where docs/protocol.md says the gateway checks beyond the schema (listed in
BEYOND_SCHEMA below).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from citywatch.protocol.codec import ClockBounds, RejectedMessage, decode
from citywatch.protocol.messages import MESSAGE_BY_CHANNEL, EventPhase
from citywatch.protocol.schemas import DIALECT, ID_PREFIX, INDEX_FILE, generate, schema_file_name
from citywatch.protocol.topics import Channel
from tests.support.paths import PROJECT_ROOT

SCHEMA_DIR = PROJECT_ROOT / "docs" / "schemas" / "v1"
EXAMPLE_DIR = PROJECT_ROOT / "docs" / "examples" / "v1"
EXAMPLES_README = PROJECT_ROOT / "docs" / "examples" / "README.md"
DOC = PROJECT_ROOT / "docs" / "protocol.md"
DOC_BLOCKS = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
EXAMPLE_FILES = sorted(EXAMPLE_DIR.rglob("*.json"))
SITE = "district-7"
ANY_DEVICE = "culvert-01"  # for gateway -> device messages, which name no device


def _example_id(path: Path) -> str:
    return str(path.relative_to(EXAMPLE_DIR))


@functools.cache
def _validator(channel: Channel) -> Draft202012Validator:
    path = SCHEMA_DIR / schema_file_name(channel)
    if not path.exists():
        pytest.fail(f"{path.relative_to(PROJECT_ROOT)} is missing: run `make schemas`")
    # format is an annotation in draft 2020-12 (the default here): what the schema alone says.
    return Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))


def _topic(channel: Channel, document: object) -> str:
    device = document.get("device_id") if isinstance(document, dict) else None
    if not isinstance(device, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", device):
        device = ANY_DEVICE
    return f"citywatch/v1/{SITE}/{device}/{channel.value}"


def _model_accepts(channel: Channel, payload: bytes, **options: Any) -> bool:
    document = json.loads(payload)
    try:
        decode(_topic(channel, document), payload, **options)
    except RejectedMessage:
        return False
    return True


def _schema_accepts(channel: Channel, payload: bytes) -> bool:
    return _validator(channel).is_valid(json.loads(payload))


def _schema_errors(channel: Channel, document: object) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in _validator(channel).iter_errors(document)
    ]


def _channels_accepting(payload: bytes) -> tuple[set[Channel], set[Channel]]:
    by_models = {channel for channel in MESSAGE_BY_CHANNEL if _model_accepts(channel, payload)}
    by_schemas = {channel for channel in MESSAGE_BY_CHANNEL if _schema_accepts(channel, payload)}
    return by_models, by_schemas


# --- the committed files ------------------------------------------------------------------------------


def test_committed_schemas_are_current() -> None:
    expected = generate()
    committed = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}
    stale = sorted(
        name for name in expected.keys() | committed.keys() if expected.get(name) != committed.get(name)
    )
    assert not stale, (
        f"docs/schemas/v1 is stale ({', '.join(stale)}): run `make schemas` and commit the result"
    )


@pytest.mark.parametrize("channel", list(MESSAGE_BY_CHANNEL), ids=str)
def test_schema_is_draft_2020_12_with_id_and_title(channel: Channel) -> None:
    schema = _validator(channel).schema
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert schema["$id"] == f"{ID_PREFIX}{channel.value}"
    assert channel.value in schema["title"]
    assert schema["required"][0] == "v"  # the codec refuses a payload without it
    version = schema["properties"]["v"]
    assert (version["const"], version["type"]) == (1, "integer")
    assert "default" not in version


def test_index_lists_every_channel_with_its_schema() -> None:
    index = json.loads((SCHEMA_DIR / INDEX_FILE).read_text(encoding="utf-8"))
    listed = {entry["channel"]: entry for entry in index["channels"]}
    assert set(listed) == {channel.value for channel in MESSAGE_BY_CHANNEL}
    for channel, entry in listed.items():
        assert (SCHEMA_DIR / entry["schema"]).is_file()
        assert entry["message"] == MESSAGE_BY_CHANNEL[Channel(channel)].__name__
    assert listed["state"]["retained"] and listed["config"]["retained"]
    assert listed["cmd"]["direction"] == "gateway_to_device"
    assert listed["telemetry"]["direction"] == "device_to_gateway"


# --- examples: docs/examples and the page's JSON blocks ------------------------------------------------


def test_every_channel_has_an_example_file() -> None:
    folders = {path.parent.name for path in EXAMPLE_FILES}
    assert folders == {channel.value for channel in MESSAGE_BY_CHANNEL}


def test_examples_cover_what_a_vendor_asks_for() -> None:
    documents = [(path.parent.name, json.loads(path.read_text())) for path in EXAMPLE_FILES]
    state = {d["status"] for c, d in documents if c == "state"}
    phases = {(d["type"], d["phase"]) for c, d in documents if c == "event"}
    acks = {(d["ok"], d.get("reason")) for c, d in documents if c == "ack"}
    assert state == {"online", "offline"}  # birth and will
    for event_type in ("water_level", "ebike_in_elevator"):
        assert {(event_type, phase.value) for phase in EventPhase} <= phases
    assert {(True, None), (False, "expired"), (False, "invalid")} <= acks
    assert all("expires" in d for c, d in documents if c == "cmd")
    measurements = {d["measurement"] for c, d in documents if c == "telemetry"}
    assert {"water_level", "health"} <= measurements


def test_examples_readme_lists_every_example() -> None:
    readme = EXAMPLES_README.read_text()
    missing = [_example_id(path) for path in EXAMPLE_FILES if f"`{_example_id(path)}`" not in readme]
    assert not missing, f"docs/examples/README.md does not list {missing}"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_example_id)
def test_example_file_is_valid_for_its_channel_only(path: Path) -> None:
    channel = Channel(path.parent.name)
    payload = path.read_bytes()
    document = json.loads(payload)
    decode(_topic(channel, document), payload)  # raises, saying why, if the models refuse it
    assert not _schema_errors(channel, document)
    assert _channels_accepting(payload) == ({channel}, {channel})


@pytest.mark.parametrize("text", DOC_BLOCKS, ids=lambda text: text[:40])
def test_doc_block_is_valid_for_the_same_channel_by_models_and_schemas(text: str) -> None:
    by_models, by_schemas = _channels_accepting(text.encode())
    assert by_models, f"no model accepts this block of docs/protocol.md: {text}"
    assert by_schemas == by_models


# --- payloads that break the contract -----------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _example(name: str) -> tuple[Channel, dict[str, Any]]:
    path = EXAMPLE_DIR / f"{name}.json"
    return Channel(path.parent.name), json.loads(path.read_text())


def _set(**changes: Any) -> Mutation:
    return lambda document: document | changes


def _drop(name: str) -> Mutation:
    return lambda document: {key: value for key, value in document.items() if key != name}


def _set_in(name: str, **changes: Any) -> Mutation:
    return lambda document: document | {name: document[name] | changes}


def _mutated(example: str, mutation: Mutation) -> tuple[Channel, bytes]:
    channel, document = _example(example)
    return channel, json.dumps(mutation(copy.deepcopy(document))).encode()


# Refused by the models and by the schema alike.
REFUSED_BY_BOTH: dict[str, tuple[str, Mutation]] = {
    "v true": ("telemetry/water_level", _set(v=True)),
    "v string": ("state/birth", _set(v="1")),
    "v 2": ("event/water_level-new", _set(v=2)),
    "v missing": ("ack/ok", _drop("v")),
    "ts epoch number": ("telemetry/water_level", _set(ts=1780315200)),
    "ts epoch string": ("telemetry/water_level", _set(ts="1780315200")),
    "ts without offset": ("state/will", _set(ts="2026-06-01T12:00:00")),
    "ts with a space": ("ack/ok", _set(ts="2026-06-01 12:00:00Z")),
    "ts without seconds": ("cmd/report_now", _set(expires="2026-06-01T12:15Z")),
    "NaN as a string in fields": ("telemetry/water_level", _set_in("fields", level_cm="NaN")),
    "number as a string in fields": ("telemetry/water_level", _set_in("fields", level_cm="1.5")),
    "NaN as a string in details": ("event/water_level-update", _set_in("details", peak_cm="NaN")),
    "number as a string in details": ("event/water_level-new", _set_in("details", level_cm="10.6")),
    "unknown field": ("telemetry/health", _set(battery_v=3.7)),
    "unknown field in details": ("event/water_level-end", _set_in("details", depth_cm=7.4)),
    "details of another type": (
        "event/water_level-new",
        _set(details={"track_id": 3, "frames_seen": 31, "door_held": True}),
    ),
    "details missing a field": ("event/sensor_fault-new", _set(details={"fault": "stuck"})),
    "details left out": ("event/water_level-new", _drop("details")),
    "update with seq 0": ("event/water_level-update", _set(seq=0)),
    "end with seq 0": ("event/ebike_in_elevator-end", _set(seq=0)),
    "new with seq 1": ("event/water_level-new", _set(seq=1)),
    "device_offline from a device": ("event/water_level-new", _set(type="device_offline", details={})),
    "confidence over 1": ("event/ebike_in_elevator-new", _set(confidence=1.5)),
    "unknown severity": ("event/water_level-new", _set(severity="emergency")),
    "field name not a name": ("telemetry/water_level", _set(fields={"Level cm": 12.4})),
    "no fields": ("telemetry/health", _set(fields={})),
    "tag value not a string": ("telemetry/water_level", _set(tags={"status": 1})),
    "outbox_seq 0": ("telemetry/water_level", _set(outbox_seq=0)),
    "session 0": ("state/birth", _set(session=0)),
    "unknown device type": ("state/birth", _set(device_type="toaster")),
    "snapshot not a JPEG": ("snapshot/ebike_in_elevator", _set(content_type="image/png")),
    "ack reason not a name": ("ack/expired", _set(reason="Expired!")),
    "cmd without ts": ("cmd/report_now", _drop("ts")),
    "config not an object": ("config/culvert", _set(config=["kind", "culvert"])),
    "receipt run of three": ("receipt/stored", _set(stored=[[1, 2, 3]])),
    "clip said to be a JPEG": ("evidence/object_thrown-clip-0", _set(content_type="image/jpeg")),
    "photo said to be a video": ("evidence/illegal_parking-photo", _set(content_type="video/mp4")),
    "evidence chunk not base64": ("evidence/object_thrown-still", _set(data_b64="/9j/4AAQ SkZJRg==")),
    "evidence chunk not padded": ("evidence/object_thrown-still", _set(data_b64="/9j/4AAQSkZJRg")),
    "evidence of 513 parts": ("evidence/object_thrown-clip-0", _set(parts=513)),
    "evidence sha256 in capitals": (
        "evidence/illegal_parking-plate_crop",
        lambda d: d | {"sha256": d["sha256"].upper()},
    ),
    "caption of two lines": ("evidence/illegal_parking-photo", _set(caption="warning\nphoto")),
    "receipt without runs": ("receipt/stored", _set(stored=[])),
}


@pytest.mark.parametrize("case", REFUSED_BY_BOTH)
def test_broken_payload_is_refused_by_models_and_schema(case: str) -> None:
    channel, payload = _mutated(*REFUSED_BY_BOTH[case])
    assert not _model_accepts(channel, payload), f"the models accept {case}"
    assert not _schema_accepts(channel, payload), f"the schema accepts {case}"


def _raw(example: str, path: tuple[str, ...], token: str) -> tuple[Channel, bytes]:
    """A number written as ``token``: strict JSON has no spelling for it (NaN) or cannot hold it (1e400)."""
    channel, document = _example(example)
    marker = 123456.25
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = marker
    return channel, json.dumps(document).replace(str(marker), token).encode()


# What JSON Schema cannot say; docs/protocol.md, "Checked beyond the schema", names each (by the phrase).
BEYOND_SCHEMA: dict[str, tuple[str, tuple[Channel, bytes], dict[str, Any]]] = {
    "v 1.0": ("`1.0`", _mutated("telemetry/water_level", _set(v=1.0)), {}),
    "integer with a fraction in details": (
        "`1.0`",
        _mutated("event/ebike_in_elevator-new", _set_in("details", frames_seen=31.0)),
        {},
    ),
    "integer with a fraction in outbox_seq": (
        "`1.0`",
        _mutated("telemetry/health", _set(outbox_seq=5.0)),
        {},
    ),
    "NaN token": ("`NaN`", _raw("telemetry/water_level", ("fields", "level_cm"), "NaN"), {}),
    "Infinity token": ("`Infinity`", _raw("telemetry/health", ("fields", "rss_mb"), "Infinity"), {}),
    "1e400": ("`1e400`", _raw("event/water_level-new", ("details", "level_cm"), "-1e400"), {}),
    "month 13": ("month 13", _mutated("ack/ok", _set(ts="2026-13-01T12:10:00Z")), {}),
    "day 32": ("day 32", _mutated("ack/ok", _set(ts="2026-06-32T12:10:00Z")), {}),
    "29 February 2026": ("29 February", _mutated("ack/ok", _set(ts="2026-02-29T12:10:00Z")), {}),
    "hour 24": ("hour 24", _mutated("cmd/report_now", _set(expires="2026-06-01T24:00:00Z")), {}),
    "second 60": ("second 60", _mutated("state/birth", _set(ts="2026-06-01T11:59:60Z")), {}),
    "offset of 24 hours": ("24 hours", _mutated("state/will", _set(ts="2026-06-01T11:58:00+24:00")), {}),
    "device_id not the topic's": (
        "`topic_mismatch`",
        (Channel.TELEMETRY, json.dumps(_example("telemetry/water_level")[1]).encode()),
        {"topic": f"citywatch/v1/{SITE}/culvert-02/telemetry"},
    ),
    "clock ahead": (
        "`CITYWATCH_CLOCK_SKEW_S`",
        _mutated("telemetry/water_level", _set(ts="2099-06-01T12:00:00Z")),
        {"clock": ClockBounds(max_ahead=timedelta(seconds=300))},
    ),
    "clock never set": (
        "before 2020",
        _mutated("telemetry/water_level", _set(ts="1970-01-01T00:00:42Z")),
        {"clock": ClockBounds(max_ahead=timedelta(seconds=300))},
    ),
    "receipt run backwards": ("`first` > `last`", _mutated("receipt/stored", _set(stored=[[9, 3]])), {}),
    "evidence part not below parts": (
        "`part` ≥ `parts`",
        _mutated("evidence/object_thrown-clip-1", _set(part=2)),
        {},
    ),
    "evidence chunk longer than the item": (
        "decoded length",
        _mutated("evidence/object_thrown-clip-0", _set(size=100)),
        {},
    ),
    "evidence item too large for its parts": (
        "`size` over `parts`",
        _mutated("evidence/object_thrown-still", _set(size=150_001)),
        {},
    ),
    "oversized": (
        "256 KiB",
        _mutated("snapshot/ebike_in_elevator", lambda d: d),
        {"max_bytes": 512},
    ),
}


def _beyond_schema_section() -> str:
    text = DOC.read_text()
    start = text.index("### Checked beyond the schema")
    end = text.index("\n#", start + 4)
    return text[start:end]


@pytest.mark.parametrize("case", BEYOND_SCHEMA)
def test_what_the_schema_cannot_say_is_refused_by_the_gateway_and_written_down(case: str) -> None:
    phrase, (channel, payload), given = BEYOND_SCHEMA[case]
    options = dict(given)
    topic = options.pop("topic", None)
    if topic is None:
        assert not _model_accepts(channel, payload, **options), f"the models accept {case}"
    else:
        with pytest.raises(RejectedMessage):
            decode(topic, payload, **options)
    # Listed as beyond the schema only while the schema really lets it through.
    assert _schema_accepts(channel, payload), f"the schema refuses {case}: take it off the page's list"
    assert phrase in _beyond_schema_section(), f"docs/protocol.md does not name {case!r} ({phrase})"


WRONG_VALUES: list[Any] = [None, "x", "1", "0.5", 1.5, 0, 1, -1, True, False, [], {}, "2026-06-01T12:00:00Z"]


def _variants(document: dict[str, Any], fields: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name in fields:
        yield name, "left out", {key: value for key, value in document.items() if key != name}
        for wrong in WRONG_VALUES:
            yield name, repr(wrong), document | {name: wrong}
        if isinstance(document.get(name), dict):
            for key in document[name]:
                rest = {k: v for k, v in document[name].items() if k != key}
                yield f"{name}.{key}", "left out", document | {name: rest}
                for wrong in WRONG_VALUES:
                    yield f"{name}.{key}", repr(wrong), document | {name: document[name] | {key: wrong}}


# Relations between fields of one message that JSON Schema cannot state: changing one field alone can
# break them, and only the models see it. (channel, field, the wrong value) -> the phrase under which
# the page's "Checked beyond the schema" names the relation.
RELATIONS: dict[tuple[Channel, str, str], str] = {
    (Channel.EVIDENCE, "size", "1"): "decoded length",  # a chunk of more than one byte
    (Channel.EVIDENCE, "parts", "1"): "`part` ≥ `parts`",  # in a part numbered 1
    (Channel.EVIDENCE, "part", "1"): "`part` ≥ `parts`",  # in an item of one part
}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_example_id)
def test_models_and_schema_agree_on_every_field_left_out_or_mistyped(path: Path) -> None:
    """Property-style: every field of the example, left out or replaced by values of every JSON type."""
    channel = Channel(path.parent.name)
    document = json.loads(path.read_text())
    fields = list(dict.fromkeys([*document, *MESSAGE_BY_CHANNEL[channel].model_fields]))
    disagreements = []
    for name, change, variant in _variants(document, fields):
        payload = json.dumps(variant).encode()
        by_model, by_schema = _model_accepts(channel, payload), _schema_accepts(channel, payload)
        if by_model == by_schema:
            continue
        relation = RELATIONS.get((channel, name, change))
        if relation is not None and by_schema and not by_model:
            assert relation in _beyond_schema_section(), f"docs/protocol.md does not name {relation}"
            continue
        disagreements.append(f"{name} {change}: models {'accept' if by_model else 'refuse'}, schema doesn't")
    assert not disagreements, f"models and schema disagree on {_example_id(path)}: {disagreements}"
