"""Sensor -> edge agent -> broker -> gateway -> event -> dispatch-centre simulator, all real parts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citywatch.broker.embedded import RunningBroker, start_broker
from citywatch.broker.mosquitto import MosquittoBroker, mosquitto_binary
from citywatch.demo.runner import FAST_FORWARD_CLOCK_SKEW_S
from edge.clock import ScaledClock
from edge.culvert.agent import CulvertAgent
from gateway.devices import service as devices_service
from gateway.events import service as events_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from simulators.water_fleet import WaterFleetOptions, device_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # the whole chain, with broker restarts: 3-10 s a test

SITE = "riverside"
DEVICE = "culvert-e2e-1"


@dataclass
class Stack:
    gateway: GatewayApp
    dispatch: DispatchCentreSimulator
    data_dir: Path

    def agent(self, mqtt_url: str, *, speed: float, peak_cm: float = 30.0) -> CulvertAgent:
        options = WaterFleetOptions(
            site=SITE,
            mqtt_url=mqtt_url,
            scenario="storm",
            peak_cm=peak_cm,
            start_after_s=30.0,
            speed=speed,
            outbox_dir=self.data_dir / "devices",
        )
        return CulvertAgent(device_config(options, DEVICE, 0), clock=ScaledClock(speed=speed))

    def stored_telemetry(self) -> int:
        return self.gateway.store.count(device_id=DEVICE)

    def water_events(self) -> int:
        with self.gateway.read_session_factory() as session:
            return events_service.count(session=session)

    def delivered(self, event_type: str, severity: str | None = None) -> list[dict[str, object]]:
        return [
            hook.event
            for hook in self.dispatch.received()
            if hook.event.get("type") == event_type
            and (severity is None or hook.event.get("severity") == severity)
        ]


@contextlib.contextmanager
def make_stack(tmp_path: Path, mqtt_url: str) -> Iterator[Stack]:
    dispatch = DispatchCentreSimulator(secret=new_secret()).start()
    settings = Settings(
        MQTT_URL=mqtt_url,
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        DISPATCH_URL=dispatch.url,
        DISPATCH_SECRET=dispatch.secret,
        DISPATCH_RETRY_MAX_S=1.0,
        CLOCK_SKEW_S=FAST_FORWARD_CLOCK_SKEW_S,  # the agents' clocks run fast-forward
    )
    settings.DATA_DIR.mkdir(parents=True)
    gateway = GatewayApp(settings).start()
    with gateway.session_factory() as session, session.begin():
        devices_service.provision(session=session, device_id=DEVICE, site=SITE, device_type="culvert")
    try:
        yield Stack(gateway=gateway, dispatch=dispatch, data_dir=tmp_path)
    finally:
        gateway.stop()
        dispatch.stop()


@pytest.fixture(params=["mosquitto", "embedded"])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningBroker]:
    if request.param == "mosquitto" and mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it with apt)")
    broker = start_broker(data_dir=tmp_path / "broker", kind=request.param)
    yield broker
    broker.stop()


def test_flood_reaches_the_dispatch_centre(any_broker: RunningBroker, tmp_path: Path) -> None:
    with make_stack(tmp_path, any_broker.url) as stack:
        agent = stack.agent(any_broker.url, speed=300.0).start()
        try:
            wait_until(
                lambda: stack.delivered("water_level", "critical"), what="a critical flood at dispatch"
            )
        finally:
            agent.stop()
        # the agent flushed its outbox on stop: the store holds each sample exactly once
        wait_until(
            lambda: stack.stored_telemetry() == agent.telemetry_sent,
            what=f"{agent.telemetry_sent} telemetry points in the store",
        )
        flood = stack.delivered("water_level", "critical")[-1]
        assert flood["device_id"] == DEVICE
        assert flood["details"]["peak_cm"] >= 25.0  # type: ignore[index]
        assert stack.dispatch.duplicates == 0
        assert stack.dispatch.invalid_signatures == 0


def test_broker_restart_mid_stream_loses_nothing(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    with make_stack(tmp_path, mosquitto.url) as stack:
        agent = stack.agent(mosquitto.url, speed=120.0).start()
        try:
            wait_until(lambda: stack.stored_telemetry() >= 5, what="telemetry flowing")
            mosquitto.stop()
            sent_while_down = agent.telemetry_sent
            wait_until(lambda: agent.telemetry_sent >= sent_while_down + 20, what="samples queued while down")
            assert agent.uplink.queue_depth > 0, "the agent should be holding messages in its outbox"
            mosquitto.start()
            wait_until(
                lambda: stack.delivered("water_level", "critical"), timeout_s=60, what="flood at dispatch"
            )
        finally:
            agent.stop(flush_timeout_s=10.0)
        assert agent.uplink.queue_depth == 0
        wait_until(
            lambda: stack.stored_telemetry() == agent.telemetry_sent,
            what=f"all {agent.telemetry_sent} telemetry points stored exactly once",
        )
        delivered_ids = [hook.webhook_id for hook in stack.dispatch.received()]
        assert len(delivered_ids) == len(set(delivered_ids))
        assert stack.dispatch.duplicates == 0
        # one flood is one event, however often its messages were redelivered
        assert len({event["id"] for event in stack.delivered("water_level")}) == 1
