"""Evidence through a real Mosquitto into the real gateway (SQLite), served by its API, pushed to the
dispatch-centre simulator (signatures verified by the simulator with standardwebhooks).

The device side is the real edge uplink (on-disk outbox, QoS 1, kept until receipted) where the test
is about delivery, and a bare publisher where it must send what a correct device would not.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import DeviceType, EventMessage, EvidenceMessage, RefusalMessage
from citywatch.protocol.topics import Channel, subscription
from edge.uplink import Uplink
from edge.uplink.evidence import evidence_messages
from gateway.evidence.models import EvidenceItem, EvidencePart
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES, SITE, running, running_with_devices
from tests.gateway.helpers import BASE_TS, Publisher, topic, water_event
from tests.gateway.tokens import admin_headers
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test

DEVICE, OTHER = "culvert-1", "culvert-2"
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


@pytest.fixture
def gateway(gateway_settings: Settings) -> Iterator[GatewayApp]:
    settings = gateway_settings.model_copy(
        update={"RECEIPT_INTERVAL_S": 0.2, "REFUSAL_FEEDBACK_INTERVAL_S": 0.01}
    )
    yield from running_with_devices(GatewayApp(settings, delivery=FAST_RETRIES))


@pytest.fixture
def device_refusals(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    with Collector(mosquitto.url, subscription(Channel.REFUSAL)) as collector:
        yield collector


def clip_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def clip_parts(
    data: bytes,
    *,
    event_id: str,
    device_id: str = DEVICE,
    chunk_bytes: int = 100_000,
    first_seq: int | None = 100,
) -> list[EvidenceMessage]:
    parts = evidence_messages(
        device_id=device_id,
        event_id=event_id,
        kind="clip",
        content_type="video/mp4",
        data=data,
        taken_at=BASE_TS,
        caption="fall and impact",
        chunk_bytes=chunk_bytes,
        ts=BASE_TS + timedelta(seconds=20),
    )
    if first_seq is None:
        return parts
    return [part.model_copy(update={"outbox_seq": first_seq + i}) for i, part in enumerate(parts)]


def send(publisher: Publisher, message: EvidenceMessage) -> None:
    publisher.publish(topic(SITE, message.device_id, Channel.EVIDENCE), message.to_json())


def raise_event(publisher: Publisher, event_id: str, device_id: str = DEVICE) -> None:
    publisher.publish(topic(SITE, device_id, Channel.EVENT), water_event(device_id, event_id, 0))


def event_pk(gateway: GatewayApp, event_id: str, device_id: str = DEVICE) -> int:
    def found() -> int | None:
        with httpx.Client(base_url=gateway.url, headers=admin_headers(gateway)) as client:
            items = client.get("/events", params={"device": device_id}).json()["items"]
        return next((item["id"] for item in items if item["device_event_id"] == event_id), None)

    pk = wait_until(found, timeout_s=10, what=f"event {event_id} at the gateway")
    assert pk is not None
    return pk


def evidence_list(gateway: GatewayApp, pk: int) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/events/{pk}/evidence", headers=admin_headers(gateway))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def items_of(gateway: GatewayApp, pk: int) -> list[dict[str, Any]]:
    return [item for item in evidence_list(gateway, pk)["items"] if item["kind"] != "snapshot"]


def fetch(gateway: GatewayApp, url: str, **headers: str) -> httpx.Response:
    """GET an absolute evidence link on the running gateway (links carry the public URL, and a test
    gateway's port is only known once it runs)."""
    return httpx.get(gateway.url + urlsplit(url).path, headers=admin_headers(gateway) | headers)


def refusals_for(collector: Collector, device_id: str, reason: str) -> list[RefusalMessage]:
    return [
        message
        for received in collector.on(Channel.REFUSAL)
        if received.topic.split("/")[3] == device_id
        and isinstance(message := received.message, RefusalMessage)
        and message.reason == reason
    ]


def stored_rows(gateway: GatewayApp) -> tuple[list[EvidenceItem], int]:
    with gateway.read_session_factory() as session:
        items = list(session.query(EvidenceItem).order_by(EvidenceItem.id))
        parts = session.query(EvidencePart).count()
    return items, parts


def test_a_clip_sent_through_the_device_outbox_is_joined_and_served_byte_identical(
    gateway: GatewayApp, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    data = clip_bytes(250_000)
    uplink = Uplink(
        MqttOptions.from_url(mosquitto.url),
        SITE,
        DEVICE,
        DeviceType.CULVERT,
        "cfg-1",
        tmp_path / "outbox.sqlite3",
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    ).start()
    try:
        uplink.send(Channel.EVENT, EventMessage.model_validate_json(water_event(DEVICE, "evt-clip-0001", 0)))
        parts = clip_parts(data, event_id="evt-clip-0001", first_seq=None)
        assert [part.part for part in parts] == [0, 1, 2]
        for part in parts:
            uplink.send(Channel.EVIDENCE, part)
        # Rows leave the outbox only on the gateway's receipt: every part is stored for good.
        assert uplink.flush(20), f"{uplink.queue_depth} message(s) never receipted"
    finally:
        uplink.stop()
    pk = event_pk(gateway, "evt-clip-0001")
    (item,) = wait_until(lambda: items_of(gateway, pk), timeout_s=10, what="the clip listed")
    assert item["url"] == f"{gateway.settings.public_url}/events/{pk}/evidence/{parts[0].evidence_id}"
    assert (item["kind"], item["content_type"], item["size"]) == ("clip", "video/mp4", len(data))
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert item["sha1"] == hashlib.sha1(data).hexdigest()
    assert item["caption"] == "fall and impact"

    whole = fetch(gateway, item["url"])
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["etag"] == f'"{item["sha256"]}"'
    # A player seeks: byte ranges, as Starlette's FileResponse serves them.
    ranged = fetch(gateway, item["url"], Range="bytes=100000-100099")
    assert ranged.status_code == 206
    assert ranged.content == data[100_000:100_100]
    assert ranged.headers["content-range"] == f"bytes 100000-100099/{len(data)}"
    cached = fetch(gateway, item["url"], **{"If-None-Match": whole.headers["etag"]})
    assert (cached.status_code, cached.content) == (304, b"")
    assert fetch(gateway, item["url"], Authorization="").status_code == 401  # as the snapshot: a token

    items, waiting_parts = stored_rows(gateway)
    assert [(row.status, row.device_event_id) for row in items] == [("complete", "evt-clip-0001")]
    assert waiting_parts == 0  # the chunks left the database once joined
    assert (gateway.settings.evidence_dir / DEVICE / f"{parts[0].evidence_id}.mp4").read_bytes() == data


def test_duplicate_and_out_of_order_parts_join_once(gateway: GatewayApp, publisher: Publisher) -> None:
    raise_event(publisher, "evt-order-0001")
    data = clip_bytes(350_000, seed=3)
    parts = clip_parts(data, event_id="evt-order-0001")
    assert len(parts) == 4
    for index in (3, 1, 1, 0, 3):  # backwards, and QoS 1 copies
        send(publisher, parts[index])
    pk = event_pk(gateway, "evt-order-0001")
    pending = wait_until(
        lambda: evidence_list(gateway, pk)["pending"], timeout_s=10, what="the partial clip listed"
    )
    assert pending == [
        {
            "evidence_id": parts[0].evidence_id,
            "kind": "clip",
            "content_type": "video/mp4",
            "parts": 4,
            "parts_received": 3,
        }
    ]
    assert items_of(gateway, pk) == []  # not served before it is whole
    send(publisher, parts[2])
    for part in parts:  # everything again once it is complete: nothing changes
        send(publisher, part)
    (item,) = wait_until(lambda: items_of(gateway, pk), timeout_s=10, what="the clip joined")
    assert fetch(gateway, item["url"]).content == data
    wait_until(
        lambda: gateway.stats.snapshot()["evidence"].get("duplicate", 0) >= 6, timeout_s=10, what="copies"
    )
    items, waiting_parts = stored_rows(gateway)
    assert (len(items), waiting_parts) == (1, 0)
    assert evidence_list(gateway, pk)["pending"] == []
    assert gateway.stats.snapshot()["evidence"] == {"stored": 3, "completed": 1, "duplicate": 6}


def test_a_corrupted_part_is_refused_never_served_and_the_device_is_told(
    gateway: GatewayApp, publisher: Publisher, device_refusals: Collector
) -> None:
    raise_event(publisher, "evt-bad-00001")
    data = clip_bytes(250_000, seed=5)
    parts = clip_parts(data, event_id="evt-bad-00001")
    chunk = bytearray(data[100_000:200_000])
    chunk[500] ^= 0xFF  # bits flipped on the way: same length, other bytes
    parts[1] = parts[1].model_copy(update={"data_b64": base64.b64encode(bytes(chunk)).decode()})
    for part in parts:
        send(publisher, part)
    (refusal,) = wait_until(
        lambda: refusals_for(device_refusals, DEVICE, "evidence_corrupt"), timeout_s=10, what="the refusal"
    )
    assert parts[0].evidence_id in refusal.detail and "SHA-256" in refusal.detail
    assert refusal.channel is Channel.EVIDENCE and refusal.event_id == "evt-bad-00001"
    pk = event_pk(gateway, "evt-bad-00001")
    assert items_of(gateway, pk) == [] and evidence_list(gateway, pk)["pending"] == []
    assert (
        httpx.get(
            f"{gateway.url}/events/{pk}/evidence/{parts[0].evidence_id}", headers=admin_headers(gateway)
        ).status_code
        == 404
    )
    items, waiting_parts = stored_rows(gateway)
    assert [row.status for row in items] == ["refused"] and waiting_parts == 0
    assert not (gateway.settings.evidence_dir / DEVICE).exists() or not any(
        (gateway.settings.evidence_dir / DEVICE).iterdir()
    )
    assert gateway.stats.snapshot()["refused"].get("evidence_corrupt") == 1
    send(publisher, parts[1])  # a copy of the refused item's part changes nothing, and is not refused again
    wait_until(
        lambda: gateway.stats.snapshot()["evidence"].get("duplicate") == 1, timeout_s=10, what="the copy"
    )
    assert gateway.stats.snapshot()["refused"].get("evidence_corrupt") == 1


def test_an_item_over_the_limit_is_refused_part_by_part_and_nothing_is_stored(
    gateway_settings: Settings, publisher: Publisher, device_refusals: Collector
) -> None:
    settings = gateway_settings.model_copy(
        update={"EVIDENCE_MAX_BYTES": 200_000, "REFUSAL_FEEDBACK_INTERVAL_S": 0.01}
    )
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        raise_event(publisher, "evt-big-00001")
        parts = clip_parts(clip_bytes(250_000), event_id="evt-big-00001")
        for part in parts:
            send(publisher, part)
        wait_until(
            lambda: gateway.stats.snapshot()["refused"].get("evidence_too_large") == 3,
            timeout_s=10,
            what="refusals",
        )
        refusal = wait_until(
            lambda: refusals_for(device_refusals, DEVICE, "evidence_too_large"), timeout_s=10, what="feedback"
        )[0]
        assert "250000 bytes" in refusal.detail and "CITYWATCH_EVIDENCE_MAX_BYTES" in refusal.detail
        assert stored_rows(gateway) == ([], 0)


def test_evidence_before_its_event_is_kept_and_listed_in_the_events_first_push(
    gateway: GatewayApp, publisher: Publisher, dispatch_centre: DispatchCentreSimulator
) -> None:
    data = clip_bytes(120_000, seed=11)
    parts = clip_parts(data, event_id="evt-early-001")
    for part in parts:
        send(publisher, part)
    wait_until(
        lambda: gateway.stats.snapshot()["evidence"].get("completed") == 1, timeout_s=10, what="joined"
    )
    raise_event(publisher, "evt-early-001")
    pk = event_pk(gateway, "evt-early-001")
    (item,) = items_of(gateway, pk)
    assert item["evidence_id"] == parts[0].evidence_id
    assert dispatch_centre.wait_for(1)
    (created,) = [hook for hook in dispatch_centre.received() if hook.event.get("id") == pk]
    assert created.message_type == "event.created"
    assert [link["url"] for link in created.event["evidence"]] == [item["url"]]
    assert dispatch_centre.invalid_signatures == 0


def test_evidence_naming_another_devices_event_is_refused(
    gateway: GatewayApp, publisher: Publisher, device_refusals: Collector
) -> None:
    raise_event(publisher, "evt-mine-0001", device_id=DEVICE)
    pk = event_pk(gateway, "evt-mine-0001")
    for part in clip_parts(clip_bytes(120_000), event_id="evt-mine-0001", device_id=OTHER):
        send(publisher, part)
    (refusal,) = wait_until(
        lambda: refusals_for(device_refusals, OTHER, "foreign_event")[:1], timeout_s=10, what="refusal"
    )
    assert DEVICE in refusal.detail
    wait_until(
        lambda: gateway.stats.snapshot()["refused"].get("foreign_event") == 2, timeout_s=10, what="both"
    )
    assert stored_rows(gateway) == ([], 0)
    assert evidence_list(gateway, pk) == {"event_id": pk, "items": [], "pending": []}


def test_evidence_completed_after_the_event_was_pushed_follows_as_its_own_push(
    gateway: GatewayApp, publisher: Publisher, dispatch_centre: DispatchCentreSimulator
) -> None:
    raise_event(publisher, "evt-late-0001")
    pk = event_pk(gateway, "evt-late-0001")
    assert dispatch_centre.wait_for(1)
    assert dispatch_centre.received()[0].event["evidence"] == []  # nothing known when it was pushed
    data = clip_bytes(150_000, seed=13)
    for part in clip_parts(data, event_id="evt-late-0001"):
        send(publisher, part)
    assert dispatch_centre.wait_for(2)
    follow_up = dispatch_centre.received()[1]
    assert (follow_up.message_type, follow_up.event["id"]) == ("event.evidence", pk)
    (link,) = follow_up.event["evidence"]
    assert link["sha256"] == hashlib.sha256(data).hexdigest()
    assert fetch(gateway, link["url"]).content == data
    assert dispatch_centre.invalid_signatures == 0
    audit = httpx.get(f"{gateway.url}/events/{pk}", headers=admin_headers(gateway)).json()["audit"]
    assert any(entry["action"] == "evidence" and link["evidence_id"] in entry["note"] for entry in audit)


ROUTING = """
version: 1
departments:
  - id: police_station
    name: Police station
    webhook: {{url: "{url}", secrets: ["{secret}"], format: cap}}
rules:
  - id: everything
    event_types: "*"
    department: police_station
default_sla: {{critical: 1h, warning: 4h, notice: 1d, info: 3d}}
"""


def test_a_cap_department_gets_each_item_as_a_resource_and_late_evidence_as_an_update(
    gateway_settings: Settings,
    publisher: Publisher,
    dispatch_centre: DispatchCentreSimulator,
    webhook_secret: str,
    tmp_path: Path,
) -> None:
    from tests.gateway.cap.schemas import schema_errors

    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=dispatch_centre.url, secret=webhook_secret))
    settings = gateway_settings.model_copy(
        update={"ROUTING_FILE": routing, "DISPATCH_URL": "", "PUBLIC_URL": "https://citywatch.example/api"}
    )
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        early = clip_parts(clip_bytes(30_000, seed=1), event_id="evt-cap-00001", chunk_bytes=20_000)
        photo = os.urandom(5_000)
        still = evidence_messages(
            device_id=DEVICE,
            event_id="evt-cap-00001",
            kind="still",
            content_type="image/jpeg",
            data=photo,
            taken_at=BASE_TS + timedelta(seconds=3),
            caption="trajectory & origin <window>",
        )
        for part in early:
            send(publisher, part)
        wait_until(
            lambda: gateway.stats.snapshot()["evidence"].get("completed") == 1, timeout_s=10, what="clip"
        )
        raise_event(publisher, "evt-cap-00001")
        assert dispatch_centre.wait_for(1)
        send(publisher, still[0])
        assert dispatch_centre.wait_for(2)
        alert, update = (
            etree.fromstring(hook.body["cap"].encode()) for hook in dispatch_centre.received()[:2]
        )
        for document in (alert, update):
            assert schema_errors(etree.tostring(document)) == []
        assert alert.findtext("cap:msgType", namespaces=CAP) == "Alert"
        assert update.findtext("cap:msgType", namespaces=CAP) == "Update"
        assert alert.findtext("cap:identifier", namespaces=CAP) in update.findtext(
            "cap:references", namespaces=CAP
        )
        assert "evidence added: still" in update.findtext("cap:note", namespaces=CAP)
        pk = dispatch_centre.received()[0].event["id"]
        base = f"https://citywatch.example/api/events/{pk}/evidence"
        resources = [
            {child.tag.split("}")[1]: child.text for child in resource}
            for resource in update.findall("cap:info/cap:resource", namespaces=CAP)
        ]
        assert resources == [
            {
                "resourceDesc": "Video clip: fall and impact (taken 2026-06-01T08:00:00-00:00)",
                "mimeType": "video/mp4",
                "size": "30000",
                "uri": f"{base}/{early[0].evidence_id}",
                "digest": hashlib.sha1(clip_bytes(30_000, seed=1)).hexdigest(),
            },
            {
                "resourceDesc": "Annotated still: trajectory & origin <window> (taken 2026-06-01T08:00:03-00:00)",
                "mimeType": "image/jpeg",
                "size": "5000",
                "uri": f"{base}/{still[0].evidence_id}",
                "digest": hashlib.sha1(photo).hexdigest(),
            },
        ]
        assert len(alert.findall("cap:info/cap:resource", namespaces=CAP)) == 1  # the clip, known then
        # The API serves the same message as the event's latest.
        latest = httpx.get(f"{gateway.url}/events/{pk}/cap", headers=admin_headers(gateway))
        assert latest.content == dispatch_centre.received()[1].body["cap"].encode()
        assert dispatch_centre.invalid_signatures == 0
