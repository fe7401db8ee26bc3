"""The REST API of a running gateway (as an admin): devices, events, acknowledgement, health, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from citywatch.protocol.topics import Channel
from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.db import migrate
from gateway.runner import GatewayApp
from gateway.settings import Settings
from gateway.telemetry.base import TelemetryPoint
from tests.gateway.conftest import SITE
from tests.gateway.helpers import BASE_TS, Publisher, telemetry, topic, water_event
from tests.gateway.tokens import api_client, bearer, issue_token
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test: 0.7-2 s each


@pytest.fixture
def api(gateway: GatewayApp) -> Iterator[httpx.Client]:
    with api_client(gateway) as client:  # an admin: may do everything
        yield client


def test_provision_devices_over_the_api(gateway: GatewayApp, api: httpx.Client) -> None:
    created = api.post(
        "/devices",
        json={"id": "lift-3", "site": "tower-a", "device_type": "elevator", "grid": "g-12", "town": "east"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["presence"] == "never_seen"
    again = api.post("/devices", json={"id": "lift-3", "site": "tower-a", "device_type": "elevator"})
    assert again.status_code == 409 and "already registered" in again.json()["detail"]
    bad = api.post("/devices", json={"id": "Lift 3", "site": "tower-a", "device_type": "boat"})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {("body", "id"), ("body", "device_type")}

    ids = [d["id"] for d in api.get("/devices").json()]
    assert ids == ["culvert-1", "culvert-2", "lift-3"]
    assert api.get("/devices", params={"site": "tower-a"}).json()[0]["grid"] == "g-12"
    missing = api.get("/devices/nope")
    assert missing.status_code == 404 and "not provisioned" in missing.json()["detail"]


def test_events_filters_paging_and_acknowledge(
    gateway: GatewayApp, api: httpx.Client, publisher: Publisher
) -> None:
    for device_id in ("culvert-1", "culvert-2"):
        publisher.publish(
            topic(SITE, device_id, Channel.EVENT), water_event(device_id, f"evt-{device_id}", 0)
        )
    wait_until(lambda: api.get("/events").json()["total"] == 2, what="two events")

    page = api.get("/events", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["device_id"] == "culvert-1"
    by_device = api.get("/events", params={"device": "culvert-2"}).json()
    assert [e["device_id"] for e in by_device["items"]] == ["culvert-2"]
    assert api.get("/events", params={"type": "object_thrown"}).json()["total"] == 0
    assert api.get("/events", params={"since": "2099-01-01T00:00:00Z"}).json()["total"] == 0
    assert api.get("/events", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    assert api.get("/events", params={"state": "bogus"}).status_code == 422

    event_id = by_device["items"][0]["id"]
    ack = api.post(f"/events/{event_id}/acknowledge", json={"by": "operator-7", "note": "crew sent"})
    assert ack.status_code == 200, ack.text
    body = ack.json()
    # The interim acknowledgement is the lifecycle's accept (signed for).
    assert body["state"] == "accepted"
    accepted = next(a for a in body["audit"] if a["action"] == "accept")
    assert accepted | {"at": None} == {
        "at": None,
        "actor": "operator-7",
        "role": "dispatcher",
        "action": "accept",
        "from_status": "dispatched",
        "to_status": "accepted",
        "note": "crew sent",
    }
    twice = api.post(f"/events/{event_id}/acknowledge", json={"by": "operator-8"})
    assert twice.status_code == 409 and "cannot accept an event that is accepted" in twice.json()["detail"]
    assert api.get("/events", params={"state": "accepted"}).json()["total"] == 1

    missing = api.post("/events/999999/acknowledge", json={"by": "x"})
    assert missing.status_code == 404 and missing.json()["detail"] == "event 999999 does not exist"
    assert api.get("/events/999999").status_code == 404
    assert api.post(f"/events/{event_id}/acknowledge", json={}).status_code == 422


def test_health_reports_database_mqtt_counts_and_dispatch(gateway: GatewayApp, api: httpx.Client) -> None:
    health = api.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["db"]["ok"] is True and body["mqtt"]["connected"] is True
    assert body["counts"]["devices"] == 2 and body["counts"]["telemetry"] == 0
    assert body["dispatch"]["endpoints"][0]["enabled"] is True
    assert body["refused"] == {}
    assert body["devices"] == {"never_seen": 2}
    assert body["telemetry_store"] == {
        "kind": "sqlite",
        "ok": True,
        "error": None,
        "spilling": False,
        "spilled_points": 0,
        "spilled_bytes": 0,
        "dropped_points_spill_full": 0,
    }
    assert body["ingest"]["received"] == 0 and body["ingest"]["queue_depth"] == 0


def test_openapi_lists_every_route(gateway: GatewayApp, api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/health", "/devices", "/devices/{device_id}", "/events", "/events/{event_id}"} <= set(paths)
    assert "post" in paths["/events/{event_id}/acknowledge"]


def test_telemetry_history_for_charts(gateway: GatewayApp, api: httpx.Client, publisher: Publisher) -> None:
    for i in range(120):  # one point a second from BASE_TS; level_cm = 1.0, sample = i
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
    wait_until(lambda: gateway.store.count() == 120, what="120 points")
    url = f"{gateway.url}/devices/culvert-1/telemetry"
    window = {"start": "2026-06-01T08:00:00Z", "stop": "2026-06-01T08:02:00Z"}
    per_minute = api.get(
        url, params=window | {"measurement": "water_level", "field": "sample", "window_s": 60}
    )
    assert per_minute.status_code == 200, per_minute.text
    assert per_minute.json() == [
        {"ts": "2026-06-01T08:00:00Z", "value": 29.5},
        {"ts": "2026-06-01T08:01:00Z", "value": 89.5},
    ]
    maxima = api.get(
        url,
        params=window
        | {"measurement": "water_level", "field": "sample", "window_s": 60, "aggregation": "max"},
    )
    assert [p["value"] for p in maxima.json()] == [59.0, 119.0]
    raw = api.get(
        url,
        params={
            "measurement": "water_level",
            "field": "sample",
            "start": "2026-06-01T08:00:05Z",
            "stop": "2026-06-01T08:00:07Z",
        },
    )
    assert [p["value"] for p in raw.json()] == [5.0, 6.0]

    backwards = api.get(
        url,
        params=window | {"measurement": "water_level", "field": "sample", "start": "2026-06-02T00:00:00Z"},
    )
    assert backwards.status_code == 200 and backwards.json() == []  # [start, stop) is empty
    assert api.get(url, params={"measurement": "water_level"}).status_code == 422
    missing = api.get("/devices/ghost/telemetry", params={"measurement": "m", "field": "f"})
    assert missing.status_code == 404


def test_hostile_parameters_get_4xx_not_5xx(gateway: GatewayApp, api: httpx.Client) -> None:
    """Cases schemathesis found once: each used to be a 500."""
    url = gateway.url
    assert api.get(f"{url}/events/79929538711603240126460732393914368").status_code == 422
    assert api.get(f"{url}/events", params={"offset": 9296947932444666888192}).status_code == 422
    old = api.get(f"{url}/events", params={"since": "0661-07-06T07:34:09Z"})
    assert old.status_code == 200, old.text  # a bound before anything can be stored: from the start
    surrogate = api.post(
        f"{url}/events/1/acknowledge",
        content=b'{"by": "\\ud800 lone", "note": ""}',
        headers={"content-type": "application/json"},
    )
    assert surrogate.status_code == 422
    tiny_window = api.get(
        f"{url}/devices/culvert-1/telemetry", params={"measurement": "m", "field": "f", "window_s": 5e-324}
    )
    assert tiny_window.status_code == 422


def test_health_shows_points_spilled_for_influxdb(tmp_path: Path) -> None:
    """InfluxDB away: the points wait in the spill, and /health says how many."""
    settings = Settings(
        DATA_DIR=tmp_path,
        HTTP_PORT=0,
        MQTT_URL="mqtt://127.0.0.1:9",
        TELEMETRY_STORE="influx",
        INFLUX_URL="http://127.0.0.1:9",  # nothing listens: refused at once
    )
    gateway = GatewayApp(settings)
    migrate(gateway.engine)
    try:
        gateway.store.write(
            [
                TelemetryPoint(
                    site=SITE,
                    device_id="culvert-1",
                    measurement="water_level",
                    ts=BASE_TS + timedelta(seconds=i),
                    fields={"level_cm": 1.0},
                    tags={},
                )
                for i in range(5)
            ]
        )
        with TestClient(create_app(gateway.services)) as client:
            response = client.get("/health", headers=bearer(issue_token(gateway, Role.VIEWER)))
        assert response.status_code == 200, response.text
        body = response.json()
        store = body["telemetry_store"]
        assert (store["kind"], store["spilling"], store["spilled_points"]) == ("influx", True, 5)
        assert store["spilled_bytes"] > 5 * 40 and store["dropped_points_spill_full"] == 0
        assert body["counts"]["telemetry"] is None  # no full-bucket query against a server that is away
        assert body["status"] == "degraded"
        failing = {check["name"] for check in body["checks"] if not check["ok"]}
        assert failing == {"telemetry_store", "mqtt", "ingest"}  # the gateway itself is not started
    finally:
        gateway.store.close()
        gateway.engine.dispose()
