"""deploy/run-local-stack.sh: the production stack from Debian's packages, end to end.

The script starts a Mosquitto with the project's broker config, a private PostgreSQL cluster and two
gateways in one shared subscription, each waited for in turn; a culvert's messages published through
the broker are split between the gateways and all seen at both APIs (one database, one telemetry
store); /metrics counts them; ``stop`` leaves no process behind.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from citywatch.broker.mosquitto import mosquitto_binary
from citywatch.local_server import free_port
from citywatch.protocol.topics import Channel
from tests.gateway.helpers import Publisher, state, telemetry, topic, water_event
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a broker, a PostgreSQL cluster and two gateway processes: ~30 s

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "run-local-stack.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SITE, DEVICE = "riverside", "culvert-stack-1"
SAMPLES = 20


@dataclass(frozen=True)
class LocalStack:
    directory: Path
    env: dict[str, str]
    mqtt_url: str
    db_url: str
    gateway_urls: list[str]
    token: str

    def run(self, command: str, *, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nice", "-n", "10", str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        """Every process of the stack, from the pid files the script and the servers wrote."""
        files = {
            "mosquitto": self.directory / "mosquitto" / "mosquitto.pid",
            "postgres": self.directory / "postgres" / "data" / "postmaster.pid",
            **{p.stem: p for p in self.directory.glob("gateway-*.pid")},
        }
        return {name: int(path.read_text().split()[0]) for name, path in files.items() if path.exists()}

    def get(self, url: str, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.get(f"{url}{path}", params=params, headers=headers, timeout=10)


def _needs() -> None:
    if mosquitto_binary() is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto and mosquitto-clients are not installed (.ci/run installs them)")
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 is not installed in {PG_BIN} (.ci/run installs postgresql-15)")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    _needs()
    # Not under pytest's tmp_path: its parent is private to root, and PostgreSQL runs as user postgres.
    directory = Path(tempfile.mkdtemp(prefix="citywatch-stack-", dir="/tmp"))
    directory.chmod(0o711)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("CITYWATCH_", "STACK_"))
    } | {
        "STACK_DIR": str(directory / "stack"),
        "STACK_MQTT_PORT": str(free_port()),
        "STACK_PG_PORT": str(free_port()),
        "STACK_GATEWAY_PORTS": f"{free_port()} {free_port()}",
        "CITYWATCH": str(ROOT / ".venv" / "bin" / "citywatch"),
    }
    started = LocalStack(directory / "stack", env, "", "", [], "")
    try:
        result = started.run("start")
        assert result.returncode == 0, f"start failed:\n{result.stdout}\n{result.stderr}"
        values = dict(
            line.split("=", 1)
            for line in (directory / "stack" / "stack.env").read_text().splitlines()
            if "=" in line
        )
        yield LocalStack(
            directory=directory / "stack",
            env=env,
            mqtt_url=values["MQTT_URL"],
            db_url=values["DB_URL"],
            gateway_urls=shlex.split(values["GATEWAY_URLS"])[0].split(),
            token=Path(values["PROBE_TOKEN_FILE"]).read_text().strip(),
        )
    finally:
        started.run("stop")  # whatever happened: no process left behind
        shutil.rmtree(directory, ignore_errors=True)


def scrape(stack: LocalStack, url: str) -> dict[str, float]:
    response = stack.get(url, "/metrics")
    assert response.status_code == 200, response.text
    return {
        sample.name + "".join(f",{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_the_local_stack_shares_the_work_and_stops_clean(stack: LocalStack) -> None:
    assert len(stack.gateway_urls) == 2
    for url in stack.gateway_urls:  # the script waited for each: both say ok now
        assert stack.get(url, "/health").json()["status"] == "ok"

    # An installer provisions the culvert with the CLI against the stack's database.
    provision = subprocess.run(
        [stack.env["CITYWATCH"], "gateway", "devices", "add", DEVICE, "--site", SITE, "--type", "culvert"],
        env=stack.env | {"CITYWATCH_DB_URL": stack.db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert provision.returncode == 0, provision.stdout + provision.stderr

    with Publisher(stack.mqtt_url) as publisher:
        publisher.publish(topic(SITE, DEVICE, Channel.STATE), state(DEVICE, status="online", session=1))
        for i in range(SAMPLES):
            publisher.publish(topic(SITE, DEVICE, Channel.TELEMETRY), telemetry(DEVICE, i, level_cm=3.0 + i))
        publisher.publish(topic(SITE, DEVICE, Channel.EVENT), water_event(DEVICE, "stack-flood-01", 0))

    def event_at(url: str) -> list[dict[str, object]]:
        events: list[dict[str, object]] = stack.get(url, "/events", device=DEVICE).json()["items"]
        return events

    for url in stack.gateway_urls:  # one database: whichever gateway took it, both show it
        events = wait_until(functools.partial(event_at, url), timeout_s=20, what=f"the event at {url}")
        assert [e["type"] for e in events] == ["water_level"]
    assert event_at(stack.gateway_urls[0])[0]["id"] == event_at(stack.gateway_urls[1])[0]["id"]

    def all_stored() -> list[dict[str, float]]:
        metrics = [scrape(stack, url) for url in stack.gateway_urls]
        stored = sum(m.get("citywatch_ingest_messages_total,channel=telemetry", 0) for m in metrics)
        return metrics if stored >= SAMPLES else []

    metrics = wait_until(all_stored, timeout_s=20, what="every sample stored")
    per_gateway = [m["citywatch_ingest_messages_total,channel=telemetry"] for m in metrics]
    # The shared subscription hands each message to one gateway: split between both, none twice.
    assert sum(per_gateway) == SAMPLES and all(n > 0 for n in per_gateway), per_gateway
    assert sum(m["citywatch_ingest_messages_total,channel=event"] for m in metrics) == 1
    groups = {k for m in metrics for k in m if k.startswith("citywatch_gateway_info")}
    assert len(groups) == 2 and all("share_group=gateways" in k for k in groups), groups
    for m in metrics:
        assert m["citywatch_database_up"] == 1 and m["citywatch_mqtt_connected"] == 1
        assert m["citywatch_devices,presence=online"] == 1
        opened = [
            v for k, v in m.items() if k.startswith("citywatch_events_open,") and "type=water_level" in k
        ]
        assert sum(opened) == 1, m

    # One telemetry store for both (the shared data directory): every sample at either API.
    for url in stack.gateway_urls:
        points = stack.get(
            url,
            f"/devices/{DEVICE}/telemetry",
            measurement="water_level",
            field="level_cm",
            start="2026-06-01T07:00:00Z",
            stop="2026-06-01T09:00:00Z",
        ).json()
        assert len(points) == SAMPLES, (url, points)

    pids = stack.pids()
    assert set(pids) == {"mosquitto", "postgres", "gateway-1", "gateway-2"}, pids
    result = stack.run("stop")
    assert result.returncode == 0, result.stdout + result.stderr
    still = {name: pid for name, pid in pids.items() if _running(pid)}
    assert not still, f"left running after stop: {still}"
    assert " runs" not in stack.run("status").stdout


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waiting for an init that may not reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
