"""Three gateway processes in one share group on a private PostgreSQL, a real Mosquitto, a real
dispatch-centre simulator and victoria-metrics as the shared telemetry store (InfluxDB write API)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from citywatch.bench.victoria import VictoriaMetrics
from citywatch.broker.mosquitto import MosquittoBroker
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.scaleout.cluster import Cluster, GatewayProcess, gateway_env
from tests.support.postgres_server import PostgresServer, unavailable_reason
from tests.support.victoria import victoria_metrics_server

GATEWAYS = 3


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A private cluster (these tests restart it): never the machine's PostgreSQL on 5432."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    yield from victoria_metrics_server(tmp_path / "vm")


MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    dispatch_centre: DispatchCentreSimulator,
    webhook_secret: str,
    postgres_server: PostgresServer,
    victoria: VictoriaMetrics,
) -> Iterator[MakeCluster]:
    """``make_cluster(**settings)``: three gateways (not started) on a fresh, empty database."""
    made: list[Cluster] = []

    def make(**overrides: Any) -> Cluster:
        db_url = postgres_server.create_database(f"citywatch_{uuid.uuid4().hex[:10]}")
        gateways = [
            GatewayProcess(
                f"gateway-{index}",
                gateway_env(
                    index=index,
                    data_dir=tmp_path / f"gateway-{index}",
                    mqtt_url=mosquitto.url,
                    db_url=db_url,
                    dispatch_url=dispatch_centre.url,
                    dispatch_secret=webhook_secret,
                    influx_url=victoria.url,
                    **overrides,
                ),
                tmp_path / f"gateway-{index}.log",
            )
            for index in range(1, GATEWAYS + 1)
        ]
        cluster = Cluster(gateways=gateways, engine=create_engine(db_url, pool_pre_ping=True))
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.kill_all()
        cluster.engine.dispose()
