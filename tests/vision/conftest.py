"""Fixtures of the vision tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from tests.vision.elevator_helpers import Collector


@pytest.fixture
def collector(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    """Subscribes to everything devices publish, decoding (validating) each message."""
    subscriber = Collector(mosquitto)
    yield subscriber
    subscriber.close()
