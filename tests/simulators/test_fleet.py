"""The fleet simulator against a real Mosquitto and a real gateway: what it says it sent is what is stored."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from citywatch import mqtt_packets as packets
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import EventType
from gateway.devices import service as devices_service
from gateway.events.models import Event, EventRevision
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from simulators.fleet.fleet import FleetOptions, FleetThread, check_templates, fleet_devices
from tests.gateway.conftest import FAST_RETRIES
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

OFFLINE_AFTER_S = 6.0  # six silent seconds is a drop, even on a busy machine
SPEED = 60.0  # every device sends at least once a wall second: none falls silent unless dropped


def test_packet_reader_splits_a_stream_cut_anywhere() -> None:
    stream = (
        packets.puback(7) + packets.publish_qos1(packets.utf8("a/b"), b"x" * 300, 9) + packets.PINGREQ_PACKET
    )
    for cut in range(len(stream) + 1):
        reader = packets.PacketReader()
        parsed = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [first for first, _ in parsed] == [0x40, 0x32, 0xC0]
        assert packets.publish_parts(*parsed[1]) == ("a/b", 9, b"x" * 300)


def test_every_template_follows_the_contract() -> None:
    check_templates("fleet")  # raises RejectedMessage naming the field on any drift


@pytest.fixture
def dispatch_centre() -> Iterator[DispatchCentreSimulator]:
    with DispatchCentreSimulator(secret=new_secret()) as sim:
        yield sim


@pytest.fixture
def fleet_gateway(
    tmp_path: Path, mosquitto: MosquittoBroker, dispatch_centre: DispatchCentreSimulator
) -> Iterator[GatewayApp]:
    settings = Settings(
        MQTT_URL=mosquitto.url,
        MQTT_CLIENT_ID="gw-fleet-test",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        DISPATCH_URL=dispatch_centre.url,
        DISPATCH_SECRET=dispatch_centre.secret,
        DEVICE_OFFLINE_AFTER_S=OFFLINE_AFTER_S,
    )
    app = GatewayApp(settings, delivery=FAST_RETRIES)
    app.start()
    try:
        assert app.ingest.wait_connected(10)
        yield app
    finally:
        app.stop()


def _offline_events(gateway: GatewayApp) -> list[Event]:
    with gateway.session_factory() as session:
        return list(session.scalars(select(Event).where(Event.type == EventType.DEVICE_OFFLINE)))


@pytest.mark.slow
def test_a_fleet_is_held_whole_through_a_drop_and_a_reconnect_storm(
    fleet_gateway: GatewayApp,
    mosquitto: MosquittoBroker,
    dispatch_centre: DispatchCentreSimulator,
    tmp_path: Path,
) -> None:
    gateway = fleet_gateway
    options = FleetOptions(
        mqtt_url=mosquitto.url,
        devices=200,
        site="district",
        seed=7,
        speed=SPEED,
        events_per_camera_day=150.0,  # a couple of e-bikes a camera in the run's simulated half hour
        wet_fraction=0.2,
        storm_start_s=60.0,
        storm_s=900.0,
    )
    with gateway.session_factory() as session, session.begin():
        for device in fleet_devices(options):
            devices_service.provision(
                session=session, device_id=device.device_id, site=device.site, device_type=device.device_type
            )
    fleet = FleetThread(options).start()
    try:
        assert fleet.wait_connected(20), fleet.stats()
        headers = admin_headers(gateway)
        listed = lambda: {d["id"]: d for d in httpx.get(f"{gateway.url}/devices", headers=headers).json()}  # noqa: E731
        assert wait_until(lambda: all(d["online"] for d in listed().values()), timeout_s=15)
        assert len(listed()) == 200
        time.sleep(3)  # steady state: nobody silent long enough to count as offline
        assert _offline_events(gateway) == []

        dropped = fleet.drop(50)
        assert len(dropped) == 50
        raised = lambda: {e.device_id for e in _offline_events(gateway)}  # noqa: E731
        # the wills land at once; the events follow the silence window (and one presence check)
        assert wait_until(lambda: raised() == set(dropped), timeout_s=OFFLINE_AFTER_S + 8), raised() ^ set(
            dropped
        )
        assert not any(d["online"] for i, d in listed().items() if i in dropped)

        storm = fleet.restore(dropped, timeout_s=20)
        assert storm.seconds_to_all_connected is not None
        assert wait_until(
            lambda: all(e.cleared_at is not None for e in _offline_events(gateway)), timeout_s=10
        )
        time.sleep(2)  # a little more traffic after the storm
    finally:
        truth = fleet.stop(drain_s=15)
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    stats = truth["stats"]
    assert stats["unacked"] == 0 and stats["queued"] == 0, stats
    assert truth["refusals"] == []  # the gateway refused nothing the fleet sent

    # one device_offline per dropped device, no more (no storm of duplicates), all ended
    offline = _offline_events(gateway)
    assert sorted(e.device_id for e in offline) == sorted(dropped)
    assert all(e.cleared_at is not None for e in offline)
    # every telemetry sample sent is stored: per device and measurement, counted from the store. The
    # broker acknowledged the last ones before the gateway wrote them: give the ingest time to catch up
    # (a loss still fails, after the wait).
    expected = sum(sum(sent["telemetry"].values()) for sent in truth["devices"].values())
    with contextlib.suppress(AssertionError):  # a loss fails below, naming the device
        wait_until(lambda: gateway.store.count() >= expected, timeout_s=15)
    telemetry_sent = 0
    for device_id, sent in truth["devices"].items():
        for measurement, count in sent["telemetry"].items():
            telemetry_sent += count
            assert gateway.store.count(device_id=device_id, measurement=measurement) == count, (
                device_id,
                measurement,
            )
    assert telemetry_sent == gateway.store.count() > 0
    # every device event message is recorded once (dropped devices sent theirs after the storm)
    events = truth["events"]
    assert len(events) >= 20 and {e["type"] for e in events} == {"ebike_in_elevator", "water_level"}
    with gateway.session_factory() as session:
        revisions = Counter(
            (row.device_event_id, row.seq)
            for row in session.execute(select(EventRevision.device_event_id, EventRevision.seq))
        )
        event_rows = session.scalar(
            select(func.count()).select_from(Event).where(Event.type != EventType.DEVICE_OFFLINE)
        )
        event_ids = set(session.scalars(select(Event.id)))
    expected = Counter((e["event_id"], seq) for e in events for seq in range(len(e["phases"])))
    assert revisions == expected
    assert event_rows and event_rows <= len(events)
    # delivered: every event reached the dispatch centre, none twice
    assert wait_until(
        lambda: {h.event.get("id") for h in dispatch_centre.received()} >= event_ids, timeout_s=20
    )
    assert dispatch_centre.duplicates == 0
