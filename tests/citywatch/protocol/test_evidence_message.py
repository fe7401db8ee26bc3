"""The ``evidence`` channel's payload: what one part may say; the example items are whole."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from citywatch.protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, RejectedMessage, decode
from citywatch.protocol.messages import (
    MAX_EVIDENCE_CHUNK_BYTES,
    MAX_EVIDENCE_PARTS,
    EvidenceMessage,
    base64_length,
)
from citywatch.protocol.topics import Channel, Topic

TOPIC = str(Topic("tower-a", "facade-1", Channel.EVIDENCE))
TAKEN = datetime(2026, 6, 1, 8, 15, tzinfo=UTC)


def part(**changes: Any) -> dict[str, Any]:
    chunk = b"\x00\x01\x02" * 10
    return {
        "v": 1,
        "device_id": "facade-1",
        "event_id": "evt-throw-0001",
        "evidence_id": "ev-0000000001",
        "kind": "clip",
        "content_type": "video/mp4",
        "ts": "2026-06-01T08:15:20Z",
        "taken_at": "2026-06-01T08:15:00Z",
        "part": 0,
        "parts": 2,
        "size": 50,
        "sha256": "0" * 64,
        "data_b64": base64.b64encode(chunk).decode(),
    } | changes


def decoded(document: dict[str, Any]) -> EvidenceMessage:
    message = decode(TOPIC, json.dumps(document).encode()).message
    assert isinstance(message, EvidenceMessage)
    return message


def refusal(document: dict[str, Any]) -> str:
    with pytest.raises(RejectedMessage) as raised:
        decode(TOPIC, json.dumps(document).encode())
    assert raised.value.reason == "invalid"
    return raised.value.detail


def test_a_well_formed_part_decodes() -> None:
    message = decoded(part(caption="warning photo", outbox_seq=12))
    assert (message.part, message.parts, message.caption, message.outbox_seq) == (0, 2, "warning photo", 12)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"part": 2}, "parts are numbered 0 to parts - 1"),
        ({"kind": "clip", "content_type": "image/jpeg"}, "a clip is video/mp4"),
        ({"kind": "photo", "content_type": "video/mp4"}, "a photo is image/jpeg"),
        ({"size": 20}, "more than the item's size"),
        ({"parts": 1, "size": MAX_EVIDENCE_CHUNK_BYTES + 1}, "does not fit in 1 part"),
        ({"parts": MAX_EVIDENCE_PARTS + 1}, "parts"),
        ({"data_b64": "AAEC!"}, "data_b64"),
        ({"data_b64": "AAE"}, "data_b64"),  # not padded
        ({"data_b64": "AA==AAEC"}, "data_b64"),  # padding inside
        ({"data_b64": ""}, "data_b64"),
        ({"sha256": "F" * 64}, "sha256"),  # lower-case hex
        ({"caption": "line one\nline two"}, "caption"),
        ({"caption": "bell\x07"}, "caption"),
        ({"caption": ""}, "caption"),
        ({"evidence_id": "short"}, "evidence_id"),
        ({"kind": "audio"}, "kind"),
    ],
)
def test_a_part_that_cannot_be_right_is_refused_with_the_reason(changes: dict[str, Any], says: str) -> None:
    assert says in refusal(part(**changes))


def test_the_decoded_length_is_read_from_the_padding() -> None:
    for raw in (b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256))):
        assert base64_length(base64.b64encode(raw).decode()) == len(raw)


def test_the_largest_part_stays_under_the_payload_limit() -> None:
    chunk = bytes(MAX_EVIDENCE_CHUNK_BYTES)
    message = EvidenceMessage.model_validate(
        part(
            data_b64=base64.b64encode(chunk).decode(),
            size=MAX_EVIDENCE_PARTS * MAX_EVIDENCE_CHUNK_BYTES,
            parts=MAX_EVIDENCE_PARTS,
            part=MAX_EVIDENCE_PARTS - 1,
            caption="x" * 200,
            outbox_seq=2**53 - 1,
        )
    )
    assert len(message.to_json()) < DEFAULT_MAX_PAYLOAD_BYTES
    with pytest.raises(ValidationError):  # one base64 character group more is over the limit
        EvidenceMessage.model_validate(part(data_b64="AAAA" * 50_001, size=200_000, parts=2))


def test_the_example_items_join_to_what_they_declare() -> None:
    """docs/examples/v1/evidence: every item's parts, joined, are its size and SHA-256, and real files."""
    from tests.support.paths import PROJECT_ROOT

    items: dict[str, list[EvidenceMessage]] = {}
    for path in sorted((PROJECT_ROOT / "docs" / "examples" / "v1" / "evidence").glob("*.json")):
        message = EvidenceMessage.model_validate_json(path.read_bytes())
        items.setdefault(message.evidence_id, []).append(message)
    kinds = set()
    for parts in items.values():
        parts.sort(key=lambda message: message.part)
        assert [message.part for message in parts] == list(range(parts[0].parts))
        whole = b"".join(base64.b64decode(message.data_b64) for message in parts)
        assert (len(whole), hashlib.sha256(whole).hexdigest()) == (parts[0].size, parts[0].sha256)
        magic = b"ftyp" if parts[0].content_type == "video/mp4" else b"\xff\xd8"
        assert magic in whole[:8]
        kinds.add(parts[0].kind.value)
    assert kinds == {"clip", "still", "photo", "plate_crop"}
    assert any(len(parts) > 1 for parts in items.values())  # a vendor sees how parts go together
