"""``edge.uplink.evidence``: an item cut into the parts the gateway joins back, refused where it would be."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from citywatch.protocol.codec import decode
from citywatch.protocol.messages import MAX_EVIDENCE_CHUNK_BYTES, base64_length
from citywatch.protocol.topics import Channel, Topic
from edge.uplink.evidence import DEFAULT_CHUNK_BYTES, evidence_messages

TOPIC = str(Topic("tower-a", "facade-1", Channel.EVIDENCE))
TAKEN = datetime(2026, 6, 1, 8, 15, tzinfo=UTC)


def test_the_edge_helper_cuts_an_item_into_parts_that_join_back() -> None:
    data = bytes(range(256)) * 1200  # 307,200 bytes
    parts = evidence_messages(
        device_id="facade-1",
        event_id="evt-throw-0001",
        kind="clip",
        content_type="video/mp4",
        data=data,
        taken_at=TAKEN,
        caption="fall",
    )
    assert [p.part for p in parts] == [0, 1, 2] and {p.parts for p in parts} == {3}
    assert len({p.evidence_id for p in parts}) == 1 and len(parts[0].evidence_id) == 32
    assert {(p.size, p.sha256) for p in parts} == {(len(data), hashlib.sha256(data).hexdigest())}
    assert b"".join(base64.b64decode(p.data_b64) for p in parts) == data
    assert [base64_length(p.data_b64) for p in parts] == [DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_BYTES, 19_200]
    for p in parts:  # each goes on the wire as the gateway decodes it
        assert decode(TOPIC, p.to_json()).message == p
    other = evidence_messages(
        device_id="facade-1",
        event_id="evt-throw-0001",
        kind="still",
        content_type="image/jpeg",
        data=b"\xff\xd8jpeg",
        taken_at=TAKEN,
        evidence_id="still-0000001",
    )
    assert [(p.evidence_id, p.parts, p.caption) for p in other] == [("still-0000001", 1, None)]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"data": b""}, "at least one byte"),
        ({"chunk_bytes": 0}, "chunk_bytes"),
        ({"chunk_bytes": MAX_EVIDENCE_CHUNK_BYTES + 1}, "chunk_bytes"),
        ({"data": bytes(513), "chunk_bytes": 1}, "513 parts"),
        ({"kind": "clip", "content_type": "image/jpeg"}, "a clip is video/mp4"),
        ({"caption": "two\nlines"}, "caption"),
    ],
)
def test_the_edge_helper_refuses_what_the_gateway_would(changes: dict[str, Any], says: str) -> None:
    arguments: dict[str, Any] = {
        "device_id": "street-1",
        "event_id": "evt-park-0001",
        "kind": "photo",
        "content_type": "image/jpeg",
        "data": b"\xff\xd8photo",
        "taken_at": TAKEN,
    } | changes
    with pytest.raises(ValueError, match=says):
        evidence_messages(**arguments)
