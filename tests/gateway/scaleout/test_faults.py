"""Three gateways under load (devices publishing telemetry and events) while things break.

- ``kill -9`` of one gateway: its unacknowledged messages, and those Mosquitto keeps queueing for it
  (a member of a share group stays in the round-robin while its persistent session waits), come back
  when it restarts with the same MQTT client id; its claimed notifications go to the others when the
  claims run out. Telemetry: 0 lost; events: 0 lost, none doubled; dispatch goes on.
- PostgreSQL restarted mid-stream: the gateways hold their batches unacknowledged, retry, and go on.
- A rolling restart (SIGTERM, start again, one gateway after the other): nothing lost.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from citywatch import polling
from citywatch.bench.victoria import VictoriaMetrics
from gateway.dispatch.models import OutboxStatus
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.scaleout.cluster import (
    Cluster,
    DeviceLoad,
    missing_revisions,
    open_events_per_device_type,
    outbox,
    stored_revisions,
)
from tests.gateway.scaleout.conftest import MakeCluster
from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.slow  # three gateway processes under load, one fault each: ~25 s each

DEVICES = [f"culvert-{n:02d}" for n in range(1, 21)]


def start_under_load(make_cluster: MakeCluster) -> tuple[Cluster, DeviceLoad]:
    cluster = make_cluster().start()
    cluster.provision(DEVICES)
    load = DeviceLoad(cluster.gateways[0].env["CITYWATCH_MQTT_URL"], DEVICES, tick_s=0.1, event_every=10)
    return cluster, load.start()


def stored_telemetry(victoria: VictoriaMetrics, load: DeviceLoad) -> set[tuple[str, int]]:
    base_ms = int(load.base.timestamp() * 1000)
    keys = victoria.sample_keys('{__name__="water_level_sample"}')
    return {(dict(labels)["device_id"], ts - base_ms) for labels, ts in keys}


def settle_and_check(
    cluster: Cluster,
    load: DeviceLoad,
    victoria: VictoriaMetrics,
    centre: DispatchCentreSimulator,
    *,
    allow_resent: bool = False,
) -> dict[str, float]:
    """Wait until everything sent is stored and every notification delivered; then check nothing was
    lost or doubled. Returns figures for the report."""
    assert len(load.telemetry_sent) > 500 and len(load.events_sent) > 100, "the load did not run"

    def settled() -> bool:
        rows = outbox(cluster.engine)
        received = {hook.webhook_id for hook in centre.received()}
        return (
            stored_telemetry(victoria, load) >= load.telemetry_sent
            and not missing_revisions(load.events_sent, stored_revisions(cluster.engine))
            and all(status == OutboxStatus.DELIVERED for _, status, _, _ in rows)
            and received >= {webhook_id for webhook_id, *_ in rows}
        )

    started = time.monotonic()
    if not polling.wait_until(settled, timeout_s=60, interval_s=0.5):
        rows = outbox(cluster.engine)
        raise AssertionError(
            f"not settled: telemetry missing {len(load.telemetry_sent - stored_telemetry(victoria, load))} "
            f"of {len(load.telemetry_sent)}; events missing "
            f"{sorted(missing_revisions(load.events_sent, stored_revisions(cluster.engine)))[:10]}; outbox "
            f"{Counter(status for _, status, _, _ in rows)}\n{cluster.logs()}"
        )
    stored = stored_revisions(cluster.engine)
    assert len(stored) == len(set(stored))  # (the unique constraint's job; no doubled device message)
    assert set(stored) <= load.events_sent, "an event message was stored that no device sent"
    assert stored_telemetry(victoria, load) == load.telemetry_sent
    assert all(count == 1 for count in open_events_per_device_type(cluster.engine).values())
    rows = outbox(cluster.engine)
    assert sorted(hook.webhook_id for hook in centre.received()) == sorted(w for w, *_ in rows)
    if not allow_resent:
        assert centre.duplicates == 0
    for gateway in cluster.gateways:
        assert "processing_error" not in gateway.log() and "unknown_event" not in gateway.log(), (
            gateway.log()[-3000:]
        )
    return {
        "telemetry": len(load.telemetry_sent),
        "event_messages": len(load.events_sent),
        "notifications": len(rows),
        "resent_same_webhook_id": centre.duplicates,
        "settled_after_load_s": round(time.monotonic() - started, 1),
    }


def test_kill_9_one_of_three_gateways_mid_stream(
    make_cluster: MakeCluster, victoria: VictoriaMetrics, dispatch_centre: DispatchCentreSimulator
) -> None:
    cluster, load = start_under_load(make_cluster)
    victim = cluster.gateways[1]
    try:
        time.sleep(3)
        victim.kill()
        delivered_at_kill = len(dispatch_centre.received())
        time.sleep(3)  # the other two go on; Mosquitto queues the victim's share for its session
        assert len(dispatch_centre.received()) > delivered_at_kill, "dispatch stopped with one gateway"
        # Mosquitto 2.0 keeps the dead member in the share group's round-robin: its share of what came
        # since waits in its session's queue, not taken by the other two.
        waiting = len(load.telemetry_sent) - len(stored_telemetry(victoria, load))
        assert waiting > 100, f"expected the dead member's share to wait for it, {waiting} waiting"
        victim.start().wait_connected()  # the same client id: its queue and unacked messages come back
        time.sleep(2)
    finally:
        load.stop()
    figures = settle_and_check(cluster, load, victoria, dispatch_centre, allow_resent=True)
    print(f"kill -9: {figures}, waiting for the dead member: {waiting}")
    cluster.stop()


def test_postgresql_restart_mid_stream(
    make_cluster: MakeCluster,
    victoria: VictoriaMetrics,
    dispatch_centre: DispatchCentreSimulator,
    postgres_server: PostgresServer,
) -> None:
    cluster, load = start_under_load(make_cluster)
    try:
        time.sleep(2)
        postgres_server.stop(immediate=True)  # a crash: connections cut, no checkpoint
        time.sleep(4)
        postgres_server.start()
        time.sleep(3)
    finally:
        load.stop()
    assert all(gateway.alive for gateway in cluster.gateways)
    assert any("failed" in gateway.log() and "retrying" in gateway.log() for gateway in cluster.gateways), (
        "no gateway noticed the database go away"
    )
    figures = settle_and_check(cluster, load, victoria, dispatch_centre)
    print(f"PostgreSQL restart: {figures}")
    cluster.stop()


def test_rolling_restart_under_load(
    make_cluster: MakeCluster, victoria: VictoriaMetrics, dispatch_centre: DispatchCentreSimulator
) -> None:
    cluster, load = start_under_load(make_cluster)
    try:
        time.sleep(1)
        for gateway in cluster.gateways:
            assert gateway.terminate() == 0
            gateway.start().wait_connected()
            time.sleep(1)
    finally:
        load.stop()
    figures = settle_and_check(cluster, load, victoria, dispatch_centre)
    print(f"rolling restart: {figures}")
    cluster.stop()
