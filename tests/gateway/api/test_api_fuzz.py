"""Schemathesis against the gateway's OpenAPI schema, with every check it has: the schema tells the truth.

Besides "no 5xx", the checks hold the app to its own description: every status code answered is
declared (``status_code_conformance``), every body matches its declared schema, 422s included
(``response_schema_conformance``), declared content types and headers, schema-valid requests are not
refused (``positive_data_acceptance``), schema-invalid ones are (``negative_data_rejection``), and a
request without or with a wrong token gets 401 (``ignored_auth``). Generation runs the examples,
coverage (boundary and invalid values) and fuzzing phases, as an admin (every handler is reached)
and as a viewer (the role checks answer 403 where the schema says they may). Part of ``make test``.

Not run: the stateful phase (``schema.as_state_machine()``). Its preconditions depend on what the
gateway stored in earlier examples, which Hypothesis reports as a FlakyStrategyDefinition; the checks
only it runs look for resources still answering after a DELETE (the API has none) and for one
identity reading another's objects (every role reads everything here).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from citywatch.broker.mosquitto import MosquittoBroker, mosquitto_binary
from gateway.api.app import create_app
from gateway.api.deps import Services
from gateway.auth.models import ApiToken
from gateway.auth.roles import Role
from gateway.auth.service import TOKEN_PREFIX, hash_token
from gateway.db import migrate
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings

pytestmark = pytest.mark.slow  # hundreds of generated requests per role to a gateway on a real broker

# Schemathesis's fixture-based loader does not run on pytest 9, so the schema is loaded at import from
# an app without services; the ``gateway`` fixture gives it those of the gateway it starts.
APP = create_app(cast(Services, None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def generated(examples: int) -> settings:
    """Hypothesis settings: ``examples`` per operation and phase, besides the coverage phase's own cases."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )


# Schemathesis puts tokens into its coverage cases at collection, before any gateway runs: the tokens
# are drawn here and stored (hashed, as ``create_token`` does) by the ``gateway`` fixture.
TOKENS = {role: TOKEN_PREFIX + secrets.token_urlsafe(32) for role in (Role.ADMIN, Role.VIEWER)}


class _Token:
    """Schemathesis's auth provider: it leaves the token out where a case tests a missing one."""

    role: Role

    def get(self, _case: schemathesis.Case, _context: schemathesis.AuthContext) -> str:
        return TOKENS[self.role]

    def set(self, case: schemathesis.Case, token: str, _context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


class AdminToken(_Token):
    role = Role.ADMIN


class ViewerToken(_Token):
    role = Role.VIEWER


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayApp]:
    # The API on its own database, with the ingest connected to a real broker (so cmd/config are
    # published) but no HTTP server: schemathesis calls the app in-process.
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it with apt)")
    data_dir = tmp_path_factory.mktemp("fuzz")
    broker = MosquittoBroker(data_dir=data_dir / "mosquitto").start()
    gateway = GatewayApp(Settings(DATA_DIR=data_dir, HTTP_PORT=0, MQTT_URL=broker.url))
    migrate(gateway.engine)
    gateway.ingest.start()
    try:
        assert gateway.ingest.wait_connected(10), "the gateway's ingest did not connect to the test broker"
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="culvert-1", site="riverside", device_type="culvert"
            )
            for role, token in TOKENS.items():
                session.add(
                    ApiToken(
                        name=f"schemathesis-{role}",
                        role=role.value,
                        token_hash=hash_token(token),
                        token_prefix=token[:10],
                    )
                )
        APP.state.services = gateway.services
        yield gateway
    finally:
        gateway.ingest.stop()
        gateway.store.close()
        gateway.engine.dispose()
        broker.stop()


@schema.auth(AdminToken, refresh_interval=None)
@schema.parametrize()
@generated(20)
def test_the_api_answers_an_admin_as_its_schema_says(case: schemathesis.Case, gateway: GatewayApp) -> None:
    response = case.call_and_validate()
    if _carries_token(case, Role.ADMIN):  # the checks take 401/403 as a fine answer to valid data
        assert response.status_code not in (401, 403), f"the admin token was refused: {response.text}"


@schema.auth(ViewerToken, refresh_interval=None)
@schema.parametrize()
@generated(10)  # most of what a viewer may call, an admin's run calls too
def test_the_api_answers_a_viewer_as_its_schema_says(case: schemathesis.Case, gateway: GatewayApp) -> None:
    response = case.call_and_validate()
    if _carries_token(case, Role.VIEWER):
        assert response.status_code != 401, f"the viewer token was refused: {response.text}"


def _carries_token(case: schemathesis.Case, role: Role) -> bool:
    """Whether the case was sent with the role's token (not one of those testing a missing or bad one)."""
    return (case.headers or {}).get("Authorization") == f"Bearer {TOKENS[role]}"


def test_every_check_schemathesis_has_is_on() -> None:
    load_all_checks()
    names = CHECKS.get_all_names()
    assert {"response_schema_conformance", "status_code_conformance", "positive_data_acceptance"} <= set(
        names
    )
    assert [name for name in names if not schema.config.checks.get_by_name(name=name).enabled] == []
