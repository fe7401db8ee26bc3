"""Every CAP message of the demo's storm through the OASIS, the extended and the IPAWS profile schemas.

The demo's scenario (its three culverts, registered with their positions, real edge agents on a
fast-forward clock through Mosquitto), with the dispatch centre taking CAP: the storm floods two
culverts and recedes, the centre accepts, resolves and closes each event. Every document a consumer
can get is checked: each push (verified as docs/cap.md tells receivers), ``/events/{id}/cap``, the
feed, and each document the feed links to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from lxml import etree
from sqlalchemy import func, select

from citywatch.broker.mosquitto import MosquittoBroker, mosquitto_binary
from citywatch.demo.runner import DEMO_DEVICES, provision_demo_devices, start_demo_culverts
from gateway.auth.roles import Role
from gateway.events.models import EventCapMessage
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import new_secret
from tests.gateway.cap.receiver import cap_receiver, recipes
from tests.gateway.cap.schemas import (
    CAP_TIME,
    NOT_IPAWS,
    NS,
    cap_times,
    deviations_from_the_list,
    schema_errors,
)
from tests.gateway.conftest import FAST_RETRIES
from tests.gateway.tokens import api_client
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until
from tests.support.webhooks import RecordingReceiver

pytestmark = pytest.mark.slow  # the storm at 400x: ~10 s

SPEED = 400.0  # the storm (3,360 simulated seconds) in about 8 s
PUBLIC_URL = "https://citywatch.riverside.example"
ROUTING = """
version: 1
departments:
  - id: dispatch-centre
    name: City dispatch centre
    webhook: {{url: "{url}", format: cap, secrets: ["{secret}"]}}
rules:
  - id: everything
    event_types: "*"
    department: dispatch-centre
default_sla: {{critical: 1h, warning: 4h, notice: 1d, info: 3d}}
"""


@dataclass
class Storm:
    gateway: GatewayApp
    receiver: RecordingReceiver
    event_ids: list[int]


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storm]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it with apt)")
    tmp_path = tmp_path_factory.mktemp("storm")
    broker = MosquittoBroker(data_dir=tmp_path / "broker").start()
    secret = new_secret()
    receiver = cap_receiver(secret=secret, recipe=recipes()["catch the JSON error"])
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=receiver.url, secret=secret))
    settings = Settings(
        MQTT_URL=broker.url,
        MQTT_CLIENT_ID=f"gw-storm-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        ROUTING_FILE=routing,
        CAP_STATUS="Exercise",  # as the demo
        PUBLIC_URL=PUBLIC_URL,
        CAP_CONTACT="Riverside duty desk +86 21 5555 0100",
        CLOCK_SKEW_S=86_400,  # device time runs 400x ahead
    )
    gateway = GatewayApp(settings, delivery=FAST_RETRIES).start()
    agents = []
    try:
        with gateway.session_factory() as session, session.begin():
            provision_demo_devices(session)
        assert gateway.ingest.wait_connected(10)
        agents = start_demo_culverts(mqtt_url=broker.url, outbox_dir=tmp_path / "devices", speed=SPEED)
        with api_client(gateway, Role.DISPATCH_CENTRE) as centre:
            events = wait_until(lambda: _all_over(centre), timeout_s=60, what="the storm's events, all over")
            for agent in agents:
                agent.stop()
            agents = []
            for event in events:
                for action, body in (("accept", {}), ("resolve", {"note": "culvert cleared"}), ("close", {})):
                    answer = centre.post(f"/events/{event['id']}/{action}", json=body)
                    assert answer.status_code == 200, answer.text
        wait_until(
            lambda: len(receiver.received()) == _stored(gateway), timeout_s=30, what="every message pushed"
        )
        yield Storm(gateway, receiver, [event["id"] for event in events])
    finally:
        for agent in agents:
            agent.stop()
        gateway.stop()
        receiver.close()
        broker.stop()


def _all_over(api: httpx.Client) -> list[dict[str, Any]] | None:
    events: list[dict[str, Any]] = api.get("/events", params={"limit": 100}).json()["items"]
    flooded = {event["device_id"] for event in events if event["type"] == "water_level"}
    if len(flooded) < 2 or any(event["cleared_at"] is None for event in events):
        return None  # two culverts flood; wait until the water is down everywhere
    return events


def _stored(gateway: GatewayApp) -> int:
    with gateway.read_session_factory() as session:
        return session.scalar(select(func.count()).select_from(EventCapMessage)) or 0


def _documents(storm: Storm) -> dict[str, list[bytes]]:
    documents: dict[str, list[bytes]] = {"push": [push.raw for push in storm.receiver.received()]}
    with api_client(storm.gateway, Role.VIEWER) as viewer:
        documents["/events/{id}/cap"] = [viewer.get(f"/events/{i}/cap").content for i in storm.event_ids]
        feed = viewer.get("/cap/feed", params={"limit": 500})
        assert feed.status_code == 200
        root = etree.fromstring(feed.content)
        documents["feed entry"] = [
            etree.tostring(alert) for alert in root.iterfind("atom:entry/atom:content/cap:alert", NS)
        ]
        documents["feed link"] = []
        for link in root.iterfind("atom:entry/atom:link[@rel='alternate']", NS):
            href = link.get("href", "")
            assert href.startswith(f"{PUBLIC_URL}/cap/alerts/"), href
            answer = viewer.get(href.removeprefix(PUBLIC_URL))
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(
                "application/cap+xml"
            )
            documents["feed link"].append(answer.content)
    return documents


def _text(xml: bytes, path: str) -> list[str]:
    return [node.text for node in etree.fromstring(xml).findall(path, NS)]


def test_every_cap_document_of_the_demo_is_valid_everywhere(storm: Storm) -> None:
    documents = _documents(storm)
    pushed = len(documents["push"])
    assert (
        pushed == _stored(storm.gateway) >= 2 * 5
    )  # each flood: Alert, its updates, the condition over, ..., Cancel
    assert len(documents["feed entry"]) == len(documents["feed link"]) == pushed
    assert storm.receiver.refused == 0
    positions = {(f"{d.latitude:.6f},{d.longitude:.6f} 0.1") for d in DEMO_DEVICES}
    for kind, xmls in documents.items():
        for xml in xmls:
            where = f"{kind} {_text(xml, 'cap:identifier')}"
            assert schema_errors(xml) == [], where  # OASIS CAP 1.2, extended 1.2, IPAWS profile 1.0
            assert deviations_from_the_list(xml) == [], where  # not IPAWS only as NOT_IPAWS says
            assert all(CAP_TIME.match(value) for value in cap_times(xml)), where
            assert _text(xml, "cap:status") == ["Exercise"]
            assert _text(xml, "cap:info/cap:contact") == ["Riverside duty desk +86 21 5555 0100"]
            sent = datetime.fromisoformat(_text(xml, "cap:sent")[0])
            assert datetime.fromisoformat(_text(xml, "cap:info/cap:expires")[0]) > sent
            assert _text(xml, "cap:info/cap:area/cap:circle")[0] in positions, where
            geocodes = _text(xml, "cap:info/cap:area/cap:geocode/cap:valueName")
            assert geocodes == ["citywatch:site", "citywatch:grid", "citywatch:town"], where
    assert {_text(xml, "cap:identifier")[0] for xml in documents["feed link"]} == {
        _text(xml, "cap:identifier")[0] for xml in documents["push"]
    }


def test_the_demo_chains_alert_updates_condition_over_then_cancel(storm: Storm) -> None:
    by_incident: dict[str, list[bytes]] = {}
    for push in storm.receiver.received():
        by_incident.setdefault(_text(push.raw, "cap:incidents")[0], []).append(push.raw)
    assert len(by_incident) == len(storm.event_ids)
    for incident, chain in by_incident.items():
        kinds = [_text(xml, "cap:msgType")[0] for xml in chain]
        assert kinds[0] == "Alert" and kinds[-1] == "Cancel" and set(kinds[1:-1]) == {"Update"}, (
            incident,
            kinds,
        )
        identifiers = [_text(xml, "cap:identifier")[0] for xml in chain]
        for position, xml in enumerate(chain[1:], start=1):
            referenced = [reference.split(",")[1] for reference in _text(xml, "cap:references")[0].split()]
            assert referenced == identifiers[:position]  # the chain so far, in order
        over = [
            xml
            for xml in chain
            if "cleared"
            in _text(xml, "cap:info/cap:parameter[cap:valueName='citywatch:condition']/cap:value")
        ]
        assert over, incident  # the storm receded before the centre closed the event
        for xml in over:
            assert _text(xml, "cap:info/cap:urgency") == ["Past"]
            assert _text(xml, "cap:info/cap:severity") == ["Minor"]
            assert _text(xml, "cap:info/cap:responseType") == ["AllClear"]
        live = chain[0]
        assert _text(live, "cap:info/cap:urgency") != ["Past"]


def test_the_docs_list_what_is_deliberately_not_ipaws() -> None:
    """docs/cap.md names the same deviations as NOT_IPAWS, which every message above is checked against."""
    page = (PROJECT_ROOT / "docs" / "cap.md").read_text()
    section = page.split("## Deliberately not IPAWS", 1)[1].split("\n## ", 1)[0].replace("`", "")
    for item in NOT_IPAWS:
        assert f"- {item.rule}" in section, item.rule
    assert section.count("\n- ") == len(NOT_IPAWS)
