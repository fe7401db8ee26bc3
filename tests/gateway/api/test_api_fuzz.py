"""Schemathesis-generated requests against the gateway's OpenAPI schema, as an admin: never a 5xx.

An admin may call every operation, so the generated requests reach the handlers (not just the
401/403 in front of them). Part of ``make test``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from citywatch.broker.mosquitto import MosquittoBroker
from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.db import migrate
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.tokens import bearer, issue_token

pytestmark = pytest.mark.slow  # hundreds of generated requests to a running gateway: ~9 s

ApiUnderTest = tuple[schemathesis.BaseSchema, dict[str, str]]


@pytest.fixture
def api_schema(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[ApiUnderTest]:
    # The API on its own database, with the ingest connected to a real broker (so cmd/config can be
    # published) but no HTTP server: schemathesis calls the app in-process.
    gateway = GatewayApp(Settings(DATA_DIR=tmp_path, HTTP_PORT=0, MQTT_URL=mosquitto.url))
    migrate(gateway.engine)
    gateway.ingest.start()
    assert gateway.ingest.wait_connected(10), "the gateway's ingest did not connect to the test broker"
    with gateway.session_factory() as session, session.begin():
        devices_service.provision(
            session=session, device_id="culvert-1", site="riverside", device_type="culvert"
        )
    admin = bearer(issue_token(gateway, Role.ADMIN, name="schemathesis"))
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(gateway.services)), admin
    gateway.ingest.stop()
    gateway.store.close()
    gateway.engine.dispose()


def test_generated_requests_never_get_a_server_error(api_schema: ApiUnderTest) -> None:
    schema, admin = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=admin, checks=[not_a_server_error])
            assert response.status_code not in (401, 403), f"the admin token was refused: {response.text}"

        no_server_error()
