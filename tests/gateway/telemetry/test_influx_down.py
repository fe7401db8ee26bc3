"""With the InfluxDB store and InfluxDB away, reads answer 503 with the reason and /health says so.

The server is a real victoria-metrics (it answers InfluxDB's ``/ping``), stopped mid-test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywatch.bench.victoria import VictoriaMetrics
from gateway.api.app import create_app
from gateway.auth.roles import Role
from gateway.db import migrate
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from gateway.telemetry.views import RETRY_AFTER_S
from tests.gateway.tokens import bearer, issue_token
from tests.support.victoria import victoria_metrics_server

pytestmark = pytest.mark.slow  # a victoria-metrics process per test


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    yield from victoria_metrics_server(tmp_path / "vm")


def test_reads_answer_503_with_the_reason_and_health_says_the_store_is_down(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    settings = Settings(
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        MQTT_URL="mqtt://127.0.0.1:9",  # not started: only the API and the store are under test
        TELEMETRY_STORE="influx",
        INFLUX_URL=victoria.url,
    )
    gateway = GatewayApp(settings)
    migrate(gateway.engine)
    try:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="culvert-1", site="riverside", device_type="culvert"
            )
        headers = bearer(issue_token(gateway, Role.VIEWER))
        with TestClient(create_app(gateway.services)) as client:

            def store_check() -> dict[str, object]:
                body = client.get("/health", headers=headers).json()
                (check,) = [c for c in body["checks"] if c["name"] == "telemetry_store"]
                assert check["ok"] is body["telemetry_store"]["ok"]
                return check

            assert store_check() == {
                "name": "telemetry_store",
                "ok": True,
                "detail": "influx takes and serves telemetry",
            }
            victoria.stop()

            answer = client.get(
                "/devices/culvert-1/telemetry",
                params={"measurement": "water_level", "field": "level_cm"},
                headers=headers,
            )
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith(
                f"the telemetry store cannot answer now: InfluxDB at {victoria.url} is unreachable: "
            )
            assert "Connection refused" in answer.json()["detail"]
            assert answer.headers["retry-after"] == str(RETRY_AFTER_S)

            down = store_check()
            assert down["ok"] is False
            assert str(down["detail"]).startswith(f"InfluxDB at {victoria.url} is unreachable: ConnectError")

            victoria.start()
            assert store_check()["ok"] is True
    finally:
        gateway.store.close()
        gateway.engine.dispose()
