"""No secret in any answer, audit entry, stream or log line.

Secrets are planted everywhere a gateway takes one: the MQTT URL's password, a routing table whose
webhook URLs carry user:password and ``?token=`` / ``?api_key=``, its signing secrets, the dispatch
secret, the InfluxDB token, the API tokens. Then a real gateway (Mosquitto, a dispatch centre, a
victoria-metrics for InfluxDB) delivers an event, and every GET route of the API (walked from the
OpenAPI paths with an admin token), the SSE stream, the audit table, the captured log and the
``citywatch gateway`` command's own output are searched for each of them.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from citywatch.bench.victoria import VictoriaMetrics
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.topics import Channel
from gateway.auth.roles import TOKEN_ROLES
from gateway.db import make_engine, migrate
from gateway.events.models import EventAudit
from gateway.redaction import MASK, redact_text, redact_url
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from tests.gateway.conftest import FAST_RETRIES, SITE, running
from tests.gateway.helpers import Publisher, telemetry, topic, water_event
from tests.gateway.test_lifecycle_migration import _upgrade as upgrade_to
from tests.gateway.tokens import bearer, issue_token
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until
from tests.support.victoria import victoria_metrics_server


@dataclass(frozen=True)
class Planted:
    mqtt_password: str
    webhook_password: str
    webhook_token: str
    roads_password: str
    roads_key: str
    rotated_secret: str
    roads_secret: str
    dispatch_secret: str
    influx_token: str

    def items(self) -> dict[str, str]:
        found = {name: getattr(self, name) for name in self.__dataclass_fields__}
        # A signing secret leaks as much by its base64 part as whole.
        return found | {
            f"{n}_key": v.removeprefix("whsec_") for n, v in found.items() if v.startswith("whsec_")
        }


def _plant() -> Planted:
    def word(name: str) -> str:
        return f"{name}{secrets.token_hex(10)}"

    return Planted(
        mqtt_password=word("mqttpw"),
        webhook_password=word("hookpw"),
        webhook_token=word("hooktoken"),
        roads_password=word("roadspw"),
        roads_key=word("roadskey"),
        rotated_secret=new_secret(),
        roads_secret=new_secret(),
        dispatch_secret=new_secret(),
        influx_token=word("influxtoken"),
    )


def _routing_file(path: Path, planted: Planted, centre: DispatchCentreSimulator) -> Path:
    hook = f"http://dispatcher:{planted.webhook_password}@127.0.0.1:{centre.port}/webhook"
    roads = f"http://roads:{planted.roads_password}@127.0.0.1:{centre.port}/webhook"
    path.write_text(
        f"""version: 1
departments:
  - id: dispatch-centre
    name: City dispatch centre
    webhook:
      url: "{hook}?site=riverside&token={planted.webhook_token}"
      secrets: ["{centre.secret}", "{planted.rotated_secret}"]
  - id: roads
    name: Roads
    webhook:
      url: "{roads}?api_key={planted.roads_key}"
      secrets: ["{planted.roads_secret}"]
rules:
  - id: everything
    event_types: "*"
    department: dispatch-centre
default_sla: {{critical: 1h, warning: 4h, notice: 1d, info: 3d}}
"""
    )
    return path


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    yield from victoria_metrics_server(tmp_path / "vm")


@pytest.fixture
def planted() -> Planted:
    return _plant()


@pytest.fixture
def secret_settings(
    tmp_path: Path,
    planted: Planted,
    mosquitto: MosquittoBroker,
    dispatch_centre: DispatchCentreSimulator,
    victoria: VictoriaMetrics,
) -> Settings:
    return Settings(
        MQTT_URL=f"mqtt://gateway:{planted.mqtt_password}@127.0.0.1:{mosquitto.port}",
        MQTT_CLIENT_ID=f"gw-test-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        ROUTING_FILE=_routing_file(tmp_path / "routing.yaml", planted, dispatch_centre),
        DISPATCH_SECRET=planted.dispatch_secret,
        TELEMETRY_STORE="influx",
        INFLUX_URL=victoria.url,
        INFLUX_TOKEN=planted.influx_token,
    )


def _leaks(texts: dict[str, str], secret_values: dict[str, str]) -> list[str]:
    return [
        f"{secret_name} in {where}"
        for where, text in texts.items()
        for secret_name, value in secret_values.items()
        if value in text
    ]


def _get_every_route(client: httpx.Client, *, event_id: int) -> dict[str, str]:
    """Every GET of the OpenAPI schema (path parameters and required query parameters filled in),
    and the pages outside it; the whole answer (status, headers, body) of each."""
    paths = client.get("/openapi.json").json()["paths"]
    answers: dict[str, str] = {}
    for path, operations in paths.items():
        if "get" not in operations:
            continue
        url = path.replace("{device_id}", "culvert-1").replace("{event_id}", str(event_id))
        url = re.sub(r"\{[^}]+\}", "unknown", url)  # a route added later is walked too (its 404 counts)
        query = {
            parameter["name"]: (
                parameter.get("schema", {}).get("examples") or parameter.get("examples") or ["x"]
            )[0]
            for parameter in operations["get"].get("parameters", [])
            if parameter["in"] == "query" and parameter.get("required")
        }
        answers[f"GET {path}"] = _whole(client.get(url, params=query))
    for page in ("/health/live", "/metrics", "/docs", "/openapi.json"):
        answers[f"GET {page}"] = _whole(client.get(page))
    return answers


def _whole(response: httpx.Response) -> str:
    return f"{response.status_code} {dict(response.headers)} {response.text}"


def _stream(gateway: GatewayApp, token: str, *, until_audit_id: int) -> str:
    """The SSE stream from the start, read until it has sent every audit line up to ``until_audit_id``."""
    lines: list[str] = []
    with (
        httpx.Client(base_url=gateway.url, headers=bearer(token), timeout=10) as client,
        client.stream("GET", "/events/stream", params={"after": 0}) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(line)
            if line == f"id: {until_audit_id}":
                break
    return "\n".join(lines)


@pytest.mark.slow
def test_no_secret_in_any_answer_audit_entry_stream_or_log_line(
    secret_settings: Settings,
    planted: Planted,
    dispatch_centre: DispatchCentreSimulator,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: dict[str, str] = {}
    tokens: dict[str, str] = {}
    viewer_health: dict[str, Any] = {}
    with running(GatewayApp(secret_settings, delivery=FAST_RETRIES)) as gateway:
        tokens = {f"api_token_{role}": issue_token(gateway, role) for role in TOKEN_ROLES}
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 1))
        publisher.publish(
            topic(SITE, "culvert-1", Channel.EVENT),
            water_event("culvert-1", f"evt-{uuid.uuid4().hex[:8]}", 0),
        )
        assert dispatch_centre.wait_for(1, timeout_s=15), dispatch_centre.summary()

        def audit_trail() -> list[EventAudit]:
            with gateway.read_session_factory() as session:
                return list(session.scalars(select(EventAudit).order_by(EventAudit.id)))

        wait_until(lambda: any(entry.action == "push" for entry in audit_trail()), what="the push audited")
        audit = audit_trail()
        texts["audit table"] = "\n".join(
            f"{entry.actor} {entry.role} {entry.action} {entry.note}" for entry in audit
        )
        admin = tokens["api_token_admin"]
        with httpx.Client(base_url=gateway.url, headers=bearer(admin), timeout=10) as client:
            texts |= _get_every_route(client, event_id=audit[0].event_id)
            for role in TOKEN_ROLES:  # /health as every role, the viewer included
                health = client.get("/health", headers=bearer(tokens[f"api_token_{role}"]))
                texts[f"GET /health as {role}"] = _whole(health)
            viewer_health = client.get("/health", headers=bearer(tokens["api_token_viewer"])).json()
        texts["SSE /events/stream"] = _stream(gateway, admin, until_audit_id=audit[-1].id)

    # The gateway's log; the dispatch centre's simulator runs in this process too, but the token in
    # its request log is its own.
    texts["log"] = "\n".join(
        caplog.handler.format(record)
        for record in caplog.records
        if not record.name.startswith("citywatch.sim")
    )
    assert "GET /events/{event_id}" in texts and "GET /devices/{device_id}/telemetry" in texts
    assert viewer_health["mqtt"]["url"] == redact_url(secret_settings.MQTT_URL)
    assert viewer_health["mqtt"]["url"].startswith(f"mqtt://gateway:{MASK}@127.0.0.1:")
    shown = {endpoint["name"]: endpoint["url"] for endpoint in viewer_health["dispatch"]["endpoints"]}
    assert shown["dispatch-centre"].endswith(f"/webhook?site=riverside&token={MASK}")
    assert shown["roads"].startswith(f"http://roads:{MASK}@127.0.0.1:")
    assert f"to http://dispatcher:{MASK}@127.0.0.1:" in texts["audit table"]
    assert _leaks(texts, planted.items() | tokens) == []


@pytest.mark.slow
def test_the_gateway_command_prints_no_secret(secret_settings: Settings, planted: Planted) -> None:
    """``citywatch gateway``'s own output (the start-up line, its log on stderr) at DEBUG."""
    env = os.environ | {
        f"CITYWATCH_{name}": str(value)
        for name, value in secret_settings.model_dump().items()
        if value not in (None, "") and name != "DB_URL"
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "citywatch.cli", "-v", "gateway"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("gateway API on" in line for line in stdout), timeout_s=30, what="start-up")
        time.sleep(1.0)  # let the ingest connect and the dispatch worker run a round
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    reader.join(5)
    output = "".join(stdout) + stderr
    assert process.returncode == 0, output
    started = re.search(r"gateway up: API \S+, MQTT (\S+), database", output)
    assert started is not None, output
    assert started.group(1) == redact_url(secret_settings.MQTT_URL) and MASK in started.group(1)
    assert _leaks({"citywatch gateway output": output}, planted.items()) == []


def test_redaction_rules() -> None:
    assert redact_url("mqtt://gw:s3cret@broker:1883") == f"mqtt://gw:{MASK}@broker:1883"
    assert redact_url("https://abcdef0123456789@hooks.example/x") == f"https://{MASK}@hooks.example/x"
    assert (
        redact_url("https://h.example/w?site=a&token=t1&api_key=k&X-Amz-Signature=s&page=2#access_token=f")
        == f"https://h.example/w?site=a&token={MASK}&api_key={MASK}&X-Amz-Signature={MASK}&page=2"
        f"#access_token={MASK}"
    )
    assert redact_url("http://h.example/plain?q=1") == "http://h.example/plain?q=1"
    assert redact_url("http://[::1:bad") == MASK  # unparseable: nothing of it shown
    text = "POST to http://u:p4ss@h.example/w?sig=abc failed; secret whsec_QUJDREVGR0g= was refused"
    assert redact_text(text, secrets=["whsec_QUJDREVGR0g="]) == (
        f"POST to http://u:{MASK}@h.example/w?sig={MASK} failed; secret {MASK} was refused"
    )


def test_migration_redacts_credentials_from_earlier_push_notes(tmp_path: Path) -> None:
    """Databases written before the redaction kept webhook URLs with credentials in push notes."""
    migration = importlib.import_module("gateway.migrations.versions.0005_redact_push_notes")
    path = tmp_path / "gw.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade_to(engine, migration.down_revision)
        old = sqlite3.connect(path)  # as the old gateway wrote them (no event rows needed for this)
        with old:
            old.executemany(
                "INSERT INTO event_audit (event_id, at, actor, role, action, from_status, to_status, note) "
                "VALUES (1, '2026-06-01 08:00:00', ?, 'system', ?, 'dispatched', 'dispatched', ?)",
                [
                    (
                        "gateway",
                        "push",
                        "event.created to http://u:pw1@h.example/w?token=tk1 (msg_1): delivered",
                    ),
                    ("operator-7", "accept", "crew sent"),
                ],
            )
        old.close()
        migrate(engine)
        with engine.connect() as connection:
            notes = connection.execute(text("SELECT note FROM event_audit ORDER BY id")).scalars().all()
        assert notes == [
            f"event.created to http://u:{MASK}@h.example/w?token={MASK} (msg_1): delivered",
            "crew sent",
        ]
    finally:
        engine.dispose()
