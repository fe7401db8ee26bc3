"""docs/protocol.md stays true: every JSON example in it decodes with the reference models."""

from __future__ import annotations

import json
import re

import pytest

from citywatch.protocol import Channel
from citywatch.protocol.codec import decode
from citywatch.protocol.messages import MESSAGE_BY_CHANNEL
from tests.support.paths import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "protocol.md"
EXAMPLES = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
CHANNEL_BY_MESSAGE = {model.__name__: channel for channel, model in MESSAGE_BY_CHANNEL.items()}


def _channel_for(example: dict[str, object]) -> Channel:
    if "status" in example:
        return Channel.STATE
    if "stored" in example:
        return Channel.RECEIPT
    if "detail" in example and "reason" in example:
        return Channel.REFUSAL
    if "measurement" in example:
        return Channel.TELEMETRY
    if "evidence_id" in example:
        return Channel.EVIDENCE
    if "data_b64" in example:
        return Channel.SNAPSHOT
    if "phase" in example:
        return Channel.EVENT
    if "config" in example:
        return Channel.CONFIG
    if "ok" in example:
        return Channel.ACK
    return Channel.CMD


def test_doc_has_an_example_for_every_channel() -> None:
    channels = {_channel_for(json.loads(text)) for text in EXAMPLES}
    assert channels == set(Channel)


@pytest.mark.parametrize("text", EXAMPLES)
def test_doc_example_is_valid(text: str) -> None:
    example = json.loads(text)
    channel = _channel_for(example)
    device = str(example.get("device_id", "culvert-01"))
    decoded = decode(f"citywatch/v1/district-7/{device}/{channel.value}", text.encode())
    assert type(decoded.message).__name__ in CHANNEL_BY_MESSAGE


def test_doc_names_every_channel_and_event_type() -> None:
    from citywatch.protocol import EventType

    text = DOC.read_text()
    for channel in Channel:
        assert f"`{channel.value}`" in text
    for event_type in EventType:
        assert f"`{event_type.value}`" in text
