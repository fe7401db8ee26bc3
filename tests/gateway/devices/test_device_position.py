"""A device's optional position (WGS 84 latitude/longitude, for the CAP <circle>): the API, the CLI and the
service accept it, refuse what is not a position, and never keep half of one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywatch.cli import main
from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.helpers import api_only_gateway
from tests.gateway.tokens import bearer, issue_token


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with api_only_gateway(tmp_path) as gateway, TestClient(create_app(gateway.services)) as client:
        client.headers.update(bearer(issue_token(gateway, Role.INSTALLER)))
        yield client


def _create(api: TestClient, device_id: str, **position: object) -> tuple[int, dict[str, object]]:
    body = {"id": device_id, "site": "riverside", "device_type": "culvert", **position}
    response = api.post("/devices", json=body)
    return response.status_code, response.json()


def test_the_api_takes_a_position_and_refuses_what_is_not_one(api: TestClient) -> None:
    status, created = _create(api, "culvert-1", latitude=31.2304, longitude=121.4737)
    assert status == 201, created
    assert (created["latitude"], created["longitude"]) == (31.2304, 121.4737)
    status, plain = _create(api, "culvert-2")
    assert status == 201 and (plain["latitude"], plain["longitude"]) == (None, None)  # a position is optional

    for position, field in [
        ({"latitude": 90.5, "longitude": 0}, "latitude"),
        ({"latitude": -91, "longitude": 0}, "latitude"),
        ({"latitude": 0, "longitude": 180.01}, "longitude"),
        ({"latitude": 0, "longitude": -181}, "longitude"),
        ({"latitude": "north", "longitude": 0}, "latitude"),
    ]:
        status, refused = _create(api, "culvert-9", **position)
        assert status == 422, position
        assert [error["loc"][-1] for error in refused["detail"]] == [field], refused
    status, half = _create(api, "culvert-9", latitude=31.2)
    assert status == 422 and "latitude and longitude go together" in str(half["detail"])
    assert api.get("/devices/culvert-9").status_code == 404  # nothing was stored
    status, edge = _create(api, "culvert-3", latitude=-90, longitude=180)
    assert status == 201, edge  # the bounds themselves are positions


def test_patch_moves_clears_and_never_leaves_half_a_position(api: TestClient) -> None:
    assert _create(api, "culvert-1")[0] == 201
    half = api.patch("/devices/culvert-1", json={"latitude": 31.2})
    # A valid change that conflicts with what is stored (no longitude to go with it): 409, not 422.
    assert half.status_code == 409 and "go together" in half.json()["detail"]
    assert api.get("/devices/culvert-1").json()["latitude"] is None  # the refused change left no trace
    moved = api.patch("/devices/culvert-1", json={"latitude": 31.2, "longitude": 121.5})
    assert moved.status_code == 200 and (moved.json()["latitude"], moved.json()["longitude"]) == (31.2, 121.5)
    nudged = api.patch("/devices/culvert-1", json={"longitude": 121.6})  # the other half is kept
    assert nudged.status_code == 200 and (nudged.json()["latitude"], nudged.json()["longitude"]) == (
        31.2,
        121.6,
    )
    assert api.patch("/devices/culvert-1", json={"latitude": None}).status_code == 409
    assert api.patch("/devices/culvert-1", json={"latitude": 95}).status_code == 422
    cleared = api.patch("/devices/culvert-1", json={"latitude": None, "longitude": None})
    assert cleared.status_code == 200 and (cleared.json()["latitude"], cleared.json()["longitude"]) == (
        None,
        None,
    )


def test_the_cli_and_the_service_take_a_position(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path))
    add = ["gateway", "devices", "add", "culvert-7", "--site", "riverside", "--type", "culvert"]
    assert main([*add, "--latitude", "31.2304", "--longitude", "121.4737"]) == 0
    assert main([*add, "--latitude", "91", "--longitude", "0"]) == 2
    assert "latitude" in capsys.readouterr().out
    assert main([*add, "--latitude", "nan", "--longitude", "0"]) == 2
    assert "latitude" in capsys.readouterr().out
    assert main([*add, "--longitude", "121.4737"]) == 2
    assert "latitude and longitude go together" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["gateway", "devices", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert '"latitude": 31.2304' in listed and '"longitude": 121.4737' in listed

    settings = Settings(DATA_DIR=tmp_path)
    gateway = GatewayApp(settings)
    try:
        with gateway.session_factory() as session, session.begin():
            device = devices_service.provision(
                session=session, device_id="culvert-8", site="riverside", device_type="culvert",
                latitude=-33.87, longitude=151.21,
            )  # fmt: skip
            assert (device.latitude, device.longitude) == (-33.87, 151.21)
            with pytest.raises(ValueError, match="go together"):
                devices_service.provision(
                    session=session,
                    device_id="culvert-9",
                    site="riverside",
                    device_type="culvert",
                    latitude=1.0,
                )
    finally:
        gateway.store.close()
        gateway.engine.dispose()
