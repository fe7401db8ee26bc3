"""Shared fixtures: real brokers on free loopback ports, the shared/ data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker, mosquitto_binary
from tests.support.mqtt import Collector
from tests.support.paths import SHARED_DIR


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A Mosquitto started with the project's broker config on a free port (restartable)."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it with apt)")
    broker = MosquittoBroker(data_dir=tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` from the project root; tests that need it skip with a reason where it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: this test needs the project's shared test material")
    return SHARED_DIR


@pytest.fixture
def collector(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    """Records everything published on the fixture's Mosquitto (``collector.of(...)`` validates it)."""
    with Collector(mosquitto.url) as subscriber:
        yield subscriber
