"""/health tells the truth: writes that fail, a writer that hangs, a backlog, notifications that wait.

Every cause is real: a SQLite file locked by another connection, a full filesystem (a tiny tmpfs,
where the test may mount one), a PostgreSQL table locked by another session, a dispatch centre that
is off the network.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from citywatch.protocol.topics import Channel
from gateway.events.policy import DEFAULT_DEPARTMENT
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES, SITE, running
from tests.gateway.helpers import Publisher, telemetry, topic, water_event
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL run)
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test, and outages of a few seconds


def health(gateway: GatewayApp) -> httpx.Response:
    return httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway), timeout=10)


def failing_checks(body: dict[str, object]) -> dict[str, str]:
    checks = body["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check["detail"] for check in checks if not check["ok"]}


def publish_samples(publisher: Publisher, count: int) -> None:
    for i in range(count):
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))


def test_a_healthy_gateway_passes_every_named_check(gateway: GatewayApp) -> None:
    body = health(gateway).json()
    assert body["status"] == "ok", body["checks"]
    assert [check["name"] for check in body["checks"]] == [
        "database",
        "mqtt",
        "broker_session",
        "ingest",
        "dispatch",
        "telemetry_store",
    ]
    assert all(check["ok"] and check["detail"] for check in body["checks"])
    assert body["db"]["writes"] == {"ok": True, "failures": 0, "failing_since": None, "last_error": None}


# -- writes that fail ------------------------------------------------------------------------------


@dataclass
class WriteBlocker:
    """Makes the gateway's writes fail for real, then lets them through again."""

    settings: Settings
    expected_error: str
    block: contextlib.AbstractContextManager[None] = field(repr=False)


@contextlib.contextmanager
def _telemetry_locked(path: Path) -> Iterator[None]:
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # e.g. a backup or a stuck admin shell holds the lock
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@contextlib.contextmanager
def _disk_filled(directory: Path) -> Iterator[None]:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):  # ENOSPC: full
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


@contextlib.contextmanager
def _tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


@pytest.fixture(params=["locked", "disk_full"])
def write_blocker(request: pytest.FixtureRequest, gateway_settings: Settings) -> Iterator[WriteBlocker]:
    if request.param == "locked":
        settings = gateway_settings.model_copy(update={"SQLITE_BUSY_TIMEOUT_S": 0.2})
        yield WriteBlocker(settings, "database is locked", _telemetry_locked(settings.telemetry_db_path))
        return
    with _tiny_filesystem(gateway_settings.DATA_DIR.parent / "tiny", "8m") as data_dir:
        settings = Settings(**(gateway_settings.model_dump() | {"DATA_DIR": data_dir, "DB_URL": ""}))
        yield WriteBlocker(settings, "database or disk is full", _disk_filled(data_dir))


def test_health_is_degraded_while_writes_fail_and_nothing_is_lost(
    write_blocker: WriteBlocker, publisher: Publisher
) -> None:
    with running(GatewayApp(write_blocker.settings, delivery=FAST_RETRIES)) as gateway:
        assert health(gateway).json()["status"] == "ok"
        with write_blocker.block:
            publish_samples(publisher, 10)
            wait_until(lambda: health(gateway).status_code == 503, what="/health to say the writes fail")
            body = health(gateway).json()
            assert body["status"] == "degraded" and body["db"]["ok"] is False
            assert write_blocker.expected_error in failing_checks(body)["database"]
            assert body["db"]["writes"]["failing_since"] is not None
            # Reads still work: the API keeps answering what it has.
            devices = httpx.get(f"{gateway.url}/devices", headers=admin_headers(gateway), timeout=10)
            assert devices.status_code == 200
        wait_until(lambda: gateway.store.count() == 10, what="every sample stored once writes work again")
        wait_until(lambda: health(gateway).json()["status"] == "ok", what="/health back to ok")
        assert health(gateway).json()["db"]["writes"]["failures"] == 0


# -- a writer that hangs, a backlog ----------------------------------------------------------------


@contextlib.contextmanager
def _devices_table_locked(db_url: str) -> Iterator[None]:
    """Another session holds PostgreSQL's EXCLUSIVE lock: reads go on, writes wait (no timeout)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("LOCK TABLE devices IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                connection.rollback()
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_hung_writer_and_its_backlog_make_health_degraded(
    database: str, request: pytest.FixtureRequest, gateway_settings: Settings, publisher: Publisher
) -> None:
    changes: dict[str, object] = {
        "HEALTH_INGEST_QUEUE_MAX": 5,
        "HEALTH_INGEST_STALLED_S": 0.5,
        "SQLITE_BUSY_TIMEOUT_S": 60.0,  # the write waits rather than fails
    }
    if database == "postgresql":
        changes["DB_URL"] = request.getfixturevalue("postgres_url")
    settings = gateway_settings.model_copy(update=changes)
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        assert health(gateway).json()["status"] == "ok"
        hold = (
            _devices_table_locked(settings.DB_URL)
            if database == "postgresql"
            else _telemetry_locked(settings.telemetry_db_path)
        )
        with hold:
            publish_samples(publisher, 3)
            wait_until(lambda: "ingest" in failing_checks(health(gateway).json()), what="the stall reported")
            publish_samples(publisher, 20)
            wait_until(lambda: gateway.ingest.queue_depth >= 5, what="a backlog")
            answer = health(gateway)
            assert answer.status_code == 200  # nothing failed yet: degraded, not down
            detail = failing_checks(answer.json())["ingest"]
            assert "has not been stored for" in detail and "messages wait for the writer" in detail
        wait_until(lambda: gateway.store.count() == 20, what="every sample stored once the lock is gone")
        wait_until(lambda: health(gateway).json()["status"] == "ok", what="/health back to ok")


# -- notifications that wait -----------------------------------------------------------------------


def test_notifications_waiting_longer_than_the_bound_make_health_degraded(
    gateway_settings: Settings, dispatch_centre: DispatchCentreSimulator, publisher: Publisher
) -> None:
    settings = gateway_settings.model_copy(update={"HEALTH_DISPATCH_PENDING_MAX_S": 1.0})
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        dispatch_centre.stop()  # off the network: connections refused
        event_id = f"evt-{uuid.uuid4().hex[:10]}"
        publisher.publish(topic(SITE, "culvert-1", Channel.EVENT), water_event("culvert-1", event_id, 0))
        wait_until(lambda: "dispatch" in failing_checks(health(gateway).json()), what="the backlog reported")
        body = health(gateway).json()
        assert body["status"] == "degraded" and health(gateway).status_code == 200
        detail = failing_checks(body)["dispatch"]
        assert (
            detail.startswith(f"{DEFAULT_DEPARTMENT}: 1 waiting, the oldest for") and "(last error" in detail
        )
        (endpoint,) = body["dispatch"]["endpoints"]
        assert endpoint["pending"] == 1 and endpoint["oldest_pending_at"] is not None

        dispatch_centre.start()
        assert dispatch_centre.wait_for(1, timeout_s=15)
        wait_until(lambda: health(gateway).json()["status"] == "ok", what="/health back to ok")
