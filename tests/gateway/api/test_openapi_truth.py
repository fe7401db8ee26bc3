"""The OpenAPI document tells the truth: what a route answers is declared, in the declared shape, and a
request the schema allows is taken.

Each test here failed before the schema and the app were made to agree (401, 403, 404 and 400 were
undeclared; handlers answered 422 bodies of another shape; ``since=1970-01-01T00:00:01Z`` and an empty
time range were refused; ``site: null`` was allowed by the schema and refused by the app). The
schemathesis run in test_api_fuzz.py looks for more of the same; these pin what it found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.auth.roles import TOKEN_ROLES, Role
from gateway.runner import GatewayApp
from tests.gateway.helpers import api_only_gateway
from tests.gateway.tokens import bearer, issue_token

DEVICE = "culvert-1"
# Path parameters nothing answers to: every route that looks something up answers 404.
UNKNOWN = {
    "device_id": "no-such-device",
    "event_id": "999999",
    "identifier": "no-such-alert",
    "evidence_id": "no-such-evidence",
}
# What each operation needs besides its path to get past validation, up to the look-up.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/devices"): {"json": {"id": "culvert-new", "site": "riverside", "device_type": "culvert"}},
    ("PATCH", "/devices/{device_id}"): {"json": {"grid": "g-1"}},
    ("POST", "/devices/{device_id}/cmd"): {"json": {"command": "ping"}},
    ("POST", "/devices/{device_id}/config"): {"json": {"config": {}}},
    ("GET", "/devices/{device_id}/telemetry"): {
        "params": {"measurement": "water_level", "field": "level_cm"}
    },
    ("POST", "/events/{event_id}/acknowledge"): {"json": {"by": "operator-7"}},
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayApp]:
    with api_only_gateway(tmp_path, devices=(DEVICE,)) as gateway:
        yield gateway


@pytest.fixture
def app(gateway: GatewayApp) -> FastAPI:
    return create_app(gateway.services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def schema(app: FastAPI) -> schemathesis.BaseSchema:
    """The app's own OpenAPI document, to validate answers against (schemathesis, no generation)."""
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def admin(gateway: GatewayApp) -> dict[str, str]:
    return bearer(issue_token(gateway, Role.ADMIN))


def _conforms(schema: schemathesis.BaseSchema, method: str, path: str, response: Any) -> None:
    """The status is declared for the operation and the body matches the schema declared for it."""
    declared = set(schema.raw_schema["paths"][path][method.lower()]["responses"])
    assert str(response.status_code) in declared, (
        f"{method} {path} answered {response.status_code}, declared: {sorted(declared)}: {response.text}"
    )
    schema[path][method].validate_response(response)  # raises when the body is not as declared


def test_every_status_a_route_answers_is_declared_with_its_body(
    gateway: GatewayApp, client: TestClient, schema: schemathesis.BaseSchema
) -> None:
    callers = {"no token": {}} | {role: bearer(issue_token(gateway, role)) for role in sorted(TOKEN_ROLES)}
    answered: set[int] = set()
    operations = [
        (method.upper(), path)
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "put", "delete")
    ]
    assert len(operations) >= 20
    for method, path in operations:
        url = re.sub(r"\{(\w+)\}", lambda m: UNKNOWN[m.group(1)], path)
        for who, headers in callers.items():
            response = client.request(method, url, headers=headers, **REQUESTS.get((method, path), {}))
            try:
                _conforms(schema, method, path, response)
            except Exception as error:
                raise AssertionError(f"as {who}: {error}") from None
            answered.add(response.status_code)
    assert {401, 403, 404} <= answered  # each was answered somewhere, and declared there


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/events", {"since": "1970-01-01T00:00:01Z"}),
        ("/events/metrics", {"since": "1970-01-01T00:00:01Z"}),
        ("/events", {"since": "9999-12-31T23:59:59-23:59"}),
        (
            "/devices/{device_id}/telemetry",
            {"measurement": "water_level", "field": "level_cm", "start": "1970-01-01T00:00:01Z"},
        ),
    ],
)
def test_any_time_the_schema_allows_is_taken(
    client: TestClient,
    schema: schemathesis.BaseSchema,
    admin: dict[str, str],
    path: str,
    params: dict[str, str],
) -> None:
    response = client.get(path.format(device_id=DEVICE), params=params, headers=admin)
    assert response.status_code == 200, response.text
    _conforms(schema, "GET", path, response)


@pytest.mark.parametrize(
    "since", ["0.5", "1780315200", "2026-06-01T12:00:00", "2026-06-01T12:00Z", "2026-06-01 12:00:00Z"]
)
def test_a_time_the_schema_refuses_is_refused_in_the_declared_shape(
    client: TestClient, schema: schemathesis.BaseSchema, admin: dict[str, str], since: str
) -> None:
    response = client.get("/events", params={"since": since}, headers=admin)
    assert response.status_code == 422, response.text
    _conforms(schema, "GET", "/events", response)
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "since"]]


def test_an_empty_time_range_has_no_samples(
    client: TestClient, schema: schemathesis.BaseSchema, admin: dict[str, str]
) -> None:
    bounds = {"measurement": "water_level", "field": "level_cm"}
    for start, stop in [("2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z"), ("2026-06-02T00:00:00Z", None)]:
        params = bounds | {"start": start} | ({"stop": stop} if stop else {})
        response = client.get(f"/devices/{DEVICE}/telemetry", params=params, headers=admin)
        assert (response.status_code, response.json()) == (200, []), response.text
        _conforms(schema, "GET", "/devices/{device_id}/telemetry", response)


def test_site_and_description_cannot_be_null_and_the_schema_says_so(
    client: TestClient, schema: schemathesis.BaseSchema, admin: dict[str, str]
) -> None:
    update = schema.raw_schema["components"]["schemas"]["DeviceUpdate"]["properties"]
    assert (update["site"]["type"], update["description"]["type"]) == ("string", "string")
    assert "anyOf" in update["grid"]  # grid and town are nullable: null removes them
    for field in ("site", "description"):
        refused = client.patch(f"/devices/{DEVICE}", json={field: None}, headers=admin)
        assert refused.status_code == 422, refused.text
        _conforms(schema, "PATCH", "/devices/{device_id}", refused)
        assert refused.json()["detail"][0]["loc"] == ["body", field]
    cleared = client.patch(f"/devices/{DEVICE}", json={"grid": None}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["grid"] is None


def test_an_unknown_query_parameter_is_refused_not_ignored(
    client: TestClient, schema: schemathesis.BaseSchema, admin: dict[str, str]
) -> None:
    """A misspelt filter answered as if no filter had been asked for."""
    response = client.get("/events", params={"devce": DEVICE}, headers=admin)
    assert response.status_code == 422, response.text
    _conforms(schema, "GET", "/events", response)
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "devce"] and "device" in error["msg"]
    assert (
        client.get("/events", params={"device": DEVICE, "type": "water_level"}, headers=admin).status_code
        == 200
    )


def test_a_query_parameter_given_twice_is_refused_not_half_read(
    client: TestClient, schema: schemathesis.BaseSchema, admin: dict[str, str]
) -> None:
    """``?site=a&site=b`` answered for b alone."""
    response = client.get("/devices?site=riverside&site=hillside", headers=admin)
    assert response.status_code == 422, response.text
    _conforms(schema, "GET", "/devices", response)
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "site"] and "2 times" in error["msg"]


@pytest.mark.parametrize(
    ("path", "methods"), [("/devices", "GET, POST"), (f"/devices/{DEVICE}", "GET, PATCH")]
)
def test_405_names_every_method_of_the_path(
    client: TestClient, admin: dict[str, str], path: str, methods: str
) -> None:
    response = client.request("DELETE", path, headers=admin)
    assert response.status_code == 405
    assert response.headers["allow"] == methods


def test_a_body_that_is_not_utf8_is_a_declared_400(
    client: TestClient, schema: schemathesis.BaseSchema, admin: dict[str, str]
) -> None:
    response = client.post(
        "/devices", content=b'{"id": "\xff"}', headers=admin | {"content-type": "application/json"}
    )
    assert response.status_code == 400
    _conforms(schema, "POST", "/devices", response)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/devices",
            {"id": "c-9", "site": "s", "device_type": "culvert", "latitude": True, "longitude": 1},
            "latitude",
        ),
        (
            "/devices",
            {"id": "c-9", "site": "s", "device_type": "culvert", "latitude": 1, "longitude": "2"},
            "longitude",
        ),
        (f"/devices/{DEVICE}/cmd", {"command": "ping", "expires_in_s": "60"}, "expires_in_s"),
        (f"/devices/{DEVICE}/cmd", {"command": "ping", "expires_in_s": True}, "expires_in_s"),
        ("/events/1/close", {"rating": "5"}, "rating"),
    ],
)
def test_a_number_in_a_body_is_a_json_number(
    client: TestClient, admin: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    """pydantic's lax mode took "60" and true for numbers; the schema says number."""
    response = client.post(path, json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert [error["loc"][:2] for error in response.json()["detail"]] == [["body", field]]
