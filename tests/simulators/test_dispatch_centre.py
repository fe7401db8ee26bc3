"""The dispatch-centre simulator over real HTTP: verification, de-duplication, behaviours, control."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from citywatch.broker.mosquitto import free_port
from gateway.dispatch.worker import signed_headers
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret

pytestmark = pytest.mark.slow  # a webhook server per test, one as a process: 0.6-1 s each


@pytest.fixture
def sim() -> Iterator[DispatchCentreSimulator]:
    with DispatchCentreSimulator(secret=new_secret()) as centre:
        yield centre


def _send(sim: DispatchCentreSimulator, webhook_id: str, *, secret: str | None = None) -> httpx.Response:
    body = '{"type":"event.created","timestamp":"2026-06-01T08:00:00Z","data":{"id":1}}'
    headers = signed_headers(secret=secret or sim.secret, webhook_id=webhook_id, payload=body)
    return httpx.post(sim.url, content=body, headers=headers, timeout=5)


def test_records_verified_webhooks_once_and_counts_repeats(sim: DispatchCentreSimulator) -> None:
    assert _send(sim, "msg_1").status_code == 200
    assert _send(sim, "msg_1").json() == {"duplicate": True}
    assert _send(sim, "msg_2").status_code == 200
    assert [w.webhook_id for w in sim.received()] == ["msg_1", "msg_2"]
    assert sim.received()[0].event == {"id": 1} and sim.duplicates == 1

    listing = httpx.get(f"{sim.base_url}/received").json()
    assert listing["unique"] == 2 and listing["duplicates"] == 1
    assert [r["webhook_id"] for r in listing["received"]] == ["msg_1", "msg_2"]
    assert httpx.delete(f"{sim.base_url}/received").status_code == 200
    assert sim.received() == []


def test_bad_signatures_are_refused_and_not_recorded(sim: DispatchCentreSimulator) -> None:
    answer = _send(sim, "msg_forged", secret=new_secret())
    assert answer.status_code == 401 and "signature" in answer.json()["error"]
    unsigned = httpx.post(sim.url, content=b"{}", timeout=5)
    assert unsigned.status_code == 401
    assert sim.received() == [] and sim.invalid_signatures == 2


def test_behaviours_set_over_the_control_endpoint(sim: DispatchCentreSimulator) -> None:
    assert httpx.post(f"{sim.base_url}/control", json={"fail_rate": 1.0}).json()["fail_rate"] == 1.0
    assert _send(sim, "msg_a").status_code == 500

    httpx.post(f"{sim.base_url}/control", json={"fail_rate": 0.0, "throttle_retry_after_s": 7})
    throttled = _send(sim, "msg_a")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"

    httpx.post(f"{sim.base_url}/control", json={"throttle_retry_after_s": None, "down": True})
    with pytest.raises(httpx.TransportError):
        _send(sim, "msg_a")

    httpx.post(f"{sim.base_url}/control", json={"down": False})
    assert _send(sim, "msg_a").status_code == 200
    assert sim.summary()["refused"] == 3 and len(sim.received()) == 1

    bad = httpx.post(f"{sim.base_url}/control", json={"fail_rate": 3})
    assert bad.status_code == 400 and "fail_rate" in bad.json()["error"]
    unknown = httpx.post(f"{sim.base_url}/control", json={"colour": "red"})
    assert unknown.status_code == 400 and "fail_rate" in unknown.json()["fields"]


def test_stop_and_start_keep_the_port_and_the_records(sim: DispatchCentreSimulator) -> None:
    _send(sim, "msg_1")
    port = sim.port
    sim.stop()
    with pytest.raises(httpx.ConnectError):
        _send(sim, "msg_2")
    sim.start()
    assert sim.port == port
    assert _send(sim, "msg_2").status_code == 200
    assert [w.webhook_id for w in sim.received()] == ["msg_1", "msg_2"]


def test_command_line_serves_until_terminated() -> None:
    port = free_port()
    secret = new_secret()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "citywatch.cli",
            "sim",
            "dispatch-centre",
            "--port",
            str(port),
            "--secret",
            secret,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"127.0.0.1:{port}/webhook" in process.stdout.readline()
        sim_client = DispatchCentreSimulator(secret=secret, port=port)  # only to reuse its URL and secret
        assert _send(sim_client, "msg_cli").status_code == 200
        process.terminate()
        out, _ = process.communicate(timeout=10)
        assert process.returncode == 0 and '"unique": 1' in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
