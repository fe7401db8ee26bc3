"""/metrics: a running gateway on a real broker counts what it is sent, in Prometheus' text format.

The output is parsed with prometheus_client's own parser (what Prometheus accepts), the counters are
read before and after real MQTT traffic, and the text is searched for the secrets the gateway holds.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from citywatch.protocol.topics import Channel
from gateway.api.metrics import METRICS_PATH, make_registry
from gateway.auth.roles import Role
from gateway.db import make_engine, make_sessionmaker, migrate, utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.devices.service import presence_counts
from gateway.runner import GatewayApp
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import SITE
from tests.gateway.helpers import Publisher, api_only_gateway, telemetry, topic, water_event
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL run)
from tests.gateway.tokens import bearer, issue_token
from tests.support.polling import wait_until

SCALING_DOC = Path(__file__).resolve().parents[3] / "docs" / "scaling.md"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: GatewayApp, token: str) -> tuple[str, Samples]:
    response = httpx.get(f"{gateway.url}{METRICS_PATH}", headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.slow  # a gateway on Mosquitto
def test_counters_move_with_real_traffic_and_no_secret_shows(
    gateway: GatewayApp,
    publisher: Publisher,
    dispatch_centre: DispatchCentreSimulator,
    webhook_secret: str,
) -> None:
    token = issue_token(gateway, Role.VIEWER)  # the least role, as for /health
    _, before = scrape(gateway, token)
    assert value(before, "citywatch_mqtt_connected") == 1
    assert value(before, "citywatch_database_up") == 1
    assert value(before, "citywatch_devices", presence="never_seen") == 2  # the two provisioned culverts
    assert value(before, "citywatch_ingest_messages_total", channel="telemetry") == 0
    assert value(before, "citywatch_dispatch_latency_seconds_count") == 0
    info = {dict(labels)["client_id"] for (name, labels) in before if name == "citywatch_gateway_info"}
    assert info == {gateway.settings.MQTT_CLIENT_ID}

    for i in range(5):
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), b"{not json")  # refused: malformed_json
    publisher.publish(topic(SITE, "culvert-2", Channel.EVENT), water_event("culvert-2", "flood-0001", 0))
    assert dispatch_centre.wait_for(1), "the event was not delivered"

    def settled() -> bool:
        _, now = scrape(gateway, token)
        return value(now, "citywatch_dispatch_latency_seconds_count") >= 1 and (
            value(now, "citywatch_ingest_received_messages_total") >= 7
        )

    assert wait_until(settled, timeout_s=10), "the counters did not move"
    text, after = scrape(gateway, token)

    assert value(after, "citywatch_ingest_received_messages_total") == 7
    assert value(after, "citywatch_ingest_messages_total", channel="telemetry") == 5
    assert value(after, "citywatch_ingest_messages_total", channel="event") == 1
    assert value(after, "citywatch_ingest_telemetry_points_total") == 5
    assert value(after, "citywatch_ingest_refused_messages_total", reason="malformed_json") == 1
    assert value(after, "citywatch_ingest_queue_depth") == 0
    # The event is open (new, or further along if routed), counted by its state and type.
    open_water = sum(
        v
        for (name, labels), v in after.items()
        if name == "citywatch_events_open" and ("type", "water_level") in labels
    )
    assert open_water == 1
    assert value(after, "citywatch_dispatch_delivered_total") >= 1
    # created -> delivered of a notification to an endpoint that answers at once: well under the bound.
    assert value(after, "citywatch_dispatch_latency_seconds_count") == value(
        after, "citywatch_dispatch_delivered_total"
    )
    assert 0 < value(after, "citywatch_dispatch_latency_seconds_sum") < 10
    assert value(after, "citywatch_dispatch_outbox_messages", status="pending") == 0
    endpoints = [
        dict(labels)["endpoint"]
        for (name, labels) in after
        if name == "citywatch_dispatch_oldest_pending_age_seconds"
    ]
    assert endpoints, "no endpoint listed"
    assert (
        value(after, "citywatch_devices", presence="online")
        + value(after, "citywatch_devices", presence="silent")
        >= 1
    )
    assert value(after, "process_resident_memory_bytes") > 0

    # Every name docs/scaling.md tells operators to alert on is served.
    documented = set(re.findall(r"`(citywatch_[a-z_]+|process_[a-z_]+)", SCALING_DOC.read_text()))
    served = {name for name, _ in after} | {
        name.rsplit("_", 1)[0] for name, _ in after if name.endswith(("_bucket", "_count", "_sum"))
    }
    assert documented and not documented - served, documented - served

    # Nothing secret: not the webhook secret (nor its key part), not the token, not the endpoint URL.
    for secret in (webhook_secret, webhook_secret.removeprefix("whsec_"), token, dispatch_centre.url):
        assert secret not in text


@pytest.mark.slow  # a gateway on Mosquitto
def test_metrics_need_a_token(gateway: GatewayApp) -> None:
    url = f"{gateway.url}{METRICS_PATH}"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers=bearer(f"cw_{uuid.uuid4().hex}"), timeout=10).status_code == 401
    openapi = httpx.get(f"{gateway.url}/openapi.json", timeout=10).json()
    assert METRICS_PATH not in openapi["paths"]  # plain text: not part of the JSON API's contract


@pytest.mark.slow  # a gateway on Mosquitto
def test_dispatch_backlog_shows_its_age(
    gateway: GatewayApp, publisher: Publisher, dispatch_centre: DispatchCentreSimulator
) -> None:
    """An endpoint off the network: the notification waits, and its age grows in the gauge."""
    token = issue_token(gateway, Role.VIEWER)
    dispatch_centre.stop()
    publisher.publish(topic(SITE, "culvert-1", Channel.EVENT), water_event("culvert-1", "flood-0009", 0))

    def waiting() -> bool:
        _, now = scrape(gateway, token)
        return value(now, "citywatch_dispatch_outbox_messages", status="pending") >= 1 and any(
            v >= 1.0
            for (name, _), v in now.items()
            if name == "citywatch_dispatch_oldest_pending_age_seconds"
        )

    assert wait_until(waiting, timeout_s=10), "the waiting notification did not show"
    _, now = scrape(gateway, token)
    assert value(now, "citywatch_dispatch_failed_attempts_total") >= 1
    assert value(now, "citywatch_dispatch_latency_seconds_count") == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_presence_counts_agree_with_the_registry(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The SQL behind ``citywatch_devices`` gives every device the presence ``devices.service`` gives it."""
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'db.sqlite'}"
    )
    engine = make_engine(url)
    try:
        migrate(engine)
        sessions = make_sessionmaker(engine)
        now = utcnow()
        silent_after = timedelta(minutes=10)
        old, recent = now - timedelta(hours=1), now - timedelta(minutes=1)
        shapes: list[dict[str, object]] = [
            {"session": 0},  # never seen
            {"session": 2, "online": True, "last_seen": None},  # a birth, nothing since
            {"session": 1, "online": True, "last_seen": recent},
            {"session": 1, "online": True, "last_seen": old},  # silent
            {"session": 1, "online": False, "last_seen": old, "presence_changed_at": recent},  # its will
            {"session": 1, "online": False, "last_seen": recent, "presence_changed_at": old},  # data since
            {
                "session": 1,
                "online": False,
                "last_seen": old,
                "presence_changed_at": now - timedelta(hours=2),
            },
            {"session": 0, "online": False, "last_seen": recent, "presence_changed_at": None},  # no births
            {"session": 1, "online": False, "last_seen": None, "presence_changed_at": recent},
            {
                "session": 1,
                "online": False,
                "last_seen": recent,
                "presence_changed_at": recent,
            },  # same instant
        ]
        with sessions() as session, session.begin():
            for i, shape in enumerate(shapes):
                session.add(Device(id=f"dev-{i}", site=SITE, device_type="culvert", **shape))
        with sessions() as session:
            expected = Counter(
                devices_service.presence(device, silent_after=silent_after, now=now)
                for device in session.scalars(select(Device))
            )
            counted = presence_counts(session=session, silent_after=silent_after, now=now)
        assert set(expected) == {"never_seen", "online", "silent", "offline"}  # every branch taken
        assert counted == dict.fromkeys(counted, 0) | dict(expected)
    finally:
        engine.dispose()


def test_a_scrape_answers_while_the_database_is_away(tmp_path: Path) -> None:
    """The collector reports ``citywatch_database_up 0`` and the process's own figures, raising nothing.
    (Over HTTP a scrape needs the database too, for its token: Prometheus' own ``up`` shows that.)"""
    with api_only_gateway(tmp_path) as gateway:
        away = make_engine("postgresql+psycopg://citywatch:pw-planted-4711@127.0.0.1:9/citywatch")
        services = dataclasses.replace(
            gateway.services, read_session_factory=make_sessionmaker(away), metrics=None
        )

        def dispatch_status() -> dict[str, object]:
            with services.read_session_factory() as session:
                session.execute(select(1))
            return {}

        services.dispatch_status = dispatch_status
        text = generate_latest(make_registry(services)).decode()
        away.dispose()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["citywatch_database_up"] == 0
    assert "citywatch_ingest_received_messages_total" in samples
    assert "citywatch_devices" not in samples
    assert "pw-planted-4711" not in text
