"""Names the API stores and shows to others refuse control characters, with a 422 that says which.

An escape sequence in a grid name (``\\x1b[2J``) clears the terminal of whoever lists devices; a line
break in an acknowledger's name forges a second audit line. Notes keep their line breaks and tabs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.auth.service import create_token
from gateway.runner import GatewayApp
from tests.gateway.helpers import api_only_gateway
from tests.gateway.tokens import bearer, issue_token

DEVICE = "culvert-1"
NEW_DEVICE = {"id": "culvert-2", "site": "riverside", "device_type": "culvert"}
# (method, path, body or query, the field holding the name); each once with each control character below.
NAMES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/devices", NEW_DEVICE | {"grid": "g-{}"}, "grid"),
    ("POST", "/devices", NEW_DEVICE | {"town": "east{}"}, "town"),
    ("POST", "/devices", NEW_DEVICE | {"description": "by the {}bridge"}, "description"),
    ("PATCH", f"/devices/{DEVICE}", {"grid": "g-{}"}, "grid"),
    ("PATCH", f"/devices/{DEVICE}", {"town": "{}"}, "town"),
    ("POST", "/events/1/acknowledge", {"by": "operator-7{}"}, "by"),
    ("POST", "/events/1/dispatch", {"department": "roads{}"}, "department"),
    ("POST", "/events/1/assign", {"assignee": "li.na{}"}, "assignee"),
    ("POST", "/events/1/reject", {"note": "wrong {}place"}, "note"),
    ("POST", f"/devices/{DEVICE}/config", {"config": {}, "config_version": "v{}"}, "config_version"),
    ("GET", "/devices", {"site": "riverside{}"}, "site"),
    ("GET", "/events", {"department": "roads{}"}, "department"),
]
CONTROLS = ["\x00", "\x1b", "\x7f", "\x85", "\u2028"]  # C0, DEL, C1 and the line separator


@pytest.fixture(scope="module")  # one gateway for all: every request here is refused and stores nothing
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayApp]:
    with api_only_gateway(tmp_path_factory.mktemp("names"), devices=(DEVICE,)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gateway: GatewayApp) -> Iterator[TestClient]:
    with TestClient(create_app(gateway.services), headers=bearer(issue_token(gateway, Role.ADMIN))) as client:
        yield client


def _send(client: TestClient, method: str, path: str, template: dict[str, Any], control: str) -> Any:
    filled = {
        key: value.format(control) if isinstance(value, str) else value for key, value in template.items()
    }
    if method == "GET":
        return client.get(path, params=filled)
    return client.request(method, path, json=filled)


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    ("method", "path", "template", "field"), NAMES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_control_character_in_a_name_is_a_422_naming_it(
    client: TestClient, method: str, path: str, template: dict[str, Any], field: str, control: str
) -> None:
    if field in ("description", "note") and control == "\u2028":
        pytest.skip("prose: a line separator is a line break")
    response = _send(client, method, path, template, control)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][:2] in (["body", field], ["query", field])
    assert f"U+{ord(control):04X}" in error["msg"] and "control character" in error["msg"]


def test_nothing_was_stored_and_clean_names_still_pass(client: TestClient) -> None:
    for control in CONTROLS:
        _send(client, "POST", "/devices", NEW_DEVICE | {"grid": "g-{}"}, control)
    assert client.get("/devices/culvert-2").status_code == 404
    created = client.post(
        "/devices", json=NEW_DEVICE | {"grid": "Nord-Süd 7", "description": "west bank,\n\tby the weir"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["description"] == "west bank,\n\tby the weir"


def test_a_token_name_refuses_control_characters(gateway: GatewayApp) -> None:
    with gateway.session_factory() as session, session.begin():
        with pytest.raises(ValueError, match="U\\+000A"):
            create_token(session, name="li.na\nrole=admin", role=Role.VIEWER)
        assert create_token(session, name="li.na", role=Role.VIEWER).name == "li.na"
