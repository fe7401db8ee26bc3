"""The codec's fast path (pydantic parsing the bytes) refuses exactly what the checked path refuses.

Each payload is decoded as given; the expected outcome is the contract's (an accepted message or the
refusal reason), including the cases where a schema default could hide a missing version.
"""

from __future__ import annotations

import pytest

from citywatch.protocol.codec import RejectedMessage, decode

TOPIC = "citywatch/v1/s1/d1/telemetry"
BODY = '"device_id":"d1","ts":"2026-01-01T00:00:00Z","measurement":"m","fields":{"a":1}'


def _payload(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        ("{" + BODY + "}", "wrong_version"),  # no "v": the model's default must not accept it
        ('{"v":null,' + BODY + "}", "wrong_version"),
        ('{"v":"1",' + BODY + "}", "wrong_version"),
        ('{"v":2,' + BODY + "}", "wrong_version"),
        ('{"v":1,"v":2,' + BODY + "}", "wrong_version"),  # the last duplicate key counts
        ('{"v":2,"v":1,' + BODY + "}", "ok"),
        ('{"v":1,' + BODY + "} trailing", "malformed_json"),
        ('{"v":1,' + BODY + "}", "ok"),
        (' {"v":1,' + BODY + "} ", "ok"),
        ('{"v":true,' + BODY + "}", "wrong_version"),
        ('{"v":1.0,' + BODY + "}", "wrong_version"),
        ('{"v":1,' + BODY.replace('"a":1', '"a":NaN') + "}", "invalid"),
        ('{"v":1,' + BODY.replace('"a":1', '"a":1e400') + "}", "invalid"),
        ('{"v":1,' + BODY.replace('"a":1', '"a":"1.5"') + "}", "invalid"),
        ('{"v":1,' + BODY.replace('"2026-01-01T00:00:00Z"', "1767225600") + "}", "invalid"),
        ('{"v":1,' + BODY.replace('"m"', '"\\ud800"') + "}", "invalid"),
        ('{"v":1,' + BODY.replace("d1", "d2", 1) + "}", "topic_mismatch"),
        ('{"v":1,' + BODY.replace("00:00Z", "00:00") + "}", "invalid"),
        ('{"v":1,' + BODY + ',"x":1}', "invalid"),
        ("[1]", "malformed_json"),
        ("", "malformed_json"),
    ],
)
def test_fast_path_keeps_the_contract(payload: str, outcome: str) -> None:
    if outcome == "ok":
        message = decode(TOPIC, _payload(payload)).message
        assert message.model_dump(include={"v", "device_id", "measurement"}) == {
            "v": 1,
            "device_id": "d1",
            "measurement": "m",
        }
    else:
        with pytest.raises(RejectedMessage) as refused:
            decode(TOPIC, _payload(payload))
        assert refused.value.reason == outcome


def test_invalid_utf8_is_malformed_json() -> None:
    with pytest.raises(RejectedMessage) as refused:
        decode(TOPIC, b'{"v":1,' + BODY.encode().replace(b'"m"', b'"\xff"') + b"}")
    assert refused.value.reason == "malformed_json"


def test_a_repeated_topic_is_still_checked() -> None:
    for _ in range(2):  # the second parse comes from the cache, a bad topic never does
        assert decode(TOPIC, _payload('{"v":1,' + BODY + "}")).topic.device_id == "d1"
        with pytest.raises(RejectedMessage) as refused:
            decode("citywatch/v1/S!/d1/telemetry", _payload('{"v":1,' + BODY + "}"))
        assert refused.value.reason == "bad_topic"
