"""A lost MQTT connection is logged with its cause in words, not paho's "Unspecified error".

Both causes are real: Mosquitto stopped cleanly (SIGTERM), and a TCP relay between the gateway and
Mosquitto that resets the connection (RST), as a failing network does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import FAST_RETRIES, running
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # broker restarts and reconnects: seconds each

DISCONNECTED = "MQTT disconnected from"


def disconnect_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(DISCONNECTED)]


def mqtt_check(gateway: GatewayApp) -> dict[str, object]:
    body = httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway), timeout=10).json()
    (check,) = [c for c in body["checks"] if c["name"] == "mqtt"]
    return check


def test_a_clean_broker_shutdown_is_named(
    gateway: GatewayApp, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    mosquitto.stop()  # SIGTERM: Mosquitto closes every connection and exits
    wait_until(lambda: disconnect_lines(caplog), what="the disconnection logged")
    (line,) = disconnect_lines(caplog)
    assert line == (
        f"{DISCONNECTED} {mosquitto.url}: the broker closed the connection (a broker shutdown or restart, "
        "or it dropped this client, e.g. for another connection with the same client id)"
    )
    assert "Unspecified error" not in caplog.text
    check = mqtt_check(gateway)
    assert check["ok"] is False and "the broker closed the connection" in str(check["detail"])

    mosquitto.start()
    assert gateway.ingest.wait_connected(15), "the gateway did not reconnect"
    assert mqtt_check(gateway)["ok"] is True


class ResettingRelay:
    """A TCP relay to the broker whose ``reset()`` aborts the gateway's side with an RST."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections: list[tuple[socket.socket, socket.socket, threading.Thread]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            reader = threading.Thread(target=_copy, args=(client, upstream), daemon=True)
            reader.start()
            threading.Thread(target=_copy, args=(upstream, client), daemon=True).start()
            self._connections.append((client, upstream, reader))

    def reset(self) -> None:
        for client, upstream, reader in self._connections:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.shutdown(socket.SHUT_RD)  # wakes the thread reading it; sends nothing
            reader.join(5)
            client.close()  # with a zero linger and no thread inside: an RST, not a FIN
            upstream.close()
        self._connections.clear()

    def close(self) -> None:
        self._listener.close()
        self.reset()


def _copy(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)


@pytest.fixture
def relay(mosquitto: MosquittoBroker) -> Iterator[ResettingRelay]:
    relay = ResettingRelay(mosquitto.port)
    yield relay
    relay.close()


def test_a_network_error_is_named(
    gateway_settings: Settings, relay: ResettingRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    settings = gateway_settings.model_copy(update={"MQTT_URL": relay.url})
    with running(GatewayApp(settings, delivery=FAST_RETRIES)) as gateway:
        relay.reset()
        wait_until(lambda: disconnect_lines(caplog), what="the disconnection logged")
        (line,) = disconnect_lines(caplog)
        assert (
            line
            == f"{DISCONNECTED} {relay.url}: network error: ConnectionResetError: Connection reset by peer"
        )
        assert gateway.ingest.wait_connected(15), "the gateway did not reconnect through the relay"
