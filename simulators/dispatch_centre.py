"""A simulated city dispatch centre: receives Standard Webhooks, verifies them, records what arrived.

JSON pushes are recorded as sent; CAP pushes (``application/cap+xml``) as ``type`` ``cap.<msgType>``,
``data.id`` the event id, ``cap`` the XML (verified as docs/cap.md tells receivers).

It can be told (at start, at runtime over ``POST /control``, or from Python) to fail with 5xx,
answer slowly, throttle with 429 + Retry-After, or be down (drop connections). ``stop()`` then
``start()`` takes it off the network entirely and brings it back on the same port.

Routes: ``POST /webhook`` (also ``/``) receives; ``GET /received`` lists; ``DELETE /received``
forgets; ``GET``/``POST /control`` reads/changes the behaviour; ``GET /health``.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lxml import etree
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from citywatch.polling import wait_until

log = logging.getLogger("citywatch.sim.dispatch")

WEBHOOK_PATHS = frozenset({"/", "/webhook"})
CAP_MEDIA_TYPE = "application/cap+xml"
_CAP_NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


def new_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + base64 of 24 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the centre answers webhooks. Checked in this order: down, throttle, failure, delay."""

    fail_rate: float = 0.0  # probability of answering fail_status
    fail_status: int = 500
    delay_s: float = 0.0  # wait before answering (every request)
    down: bool = False  # close the connection without answering
    throttle_retry_after_s: float | None = None  # answer 429 with this Retry-After

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be within 0..1, got {self.fail_rate}")
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s}")
        if not 400 <= self.fail_status <= 599:
            raise ValueError(f"fail_status must be a 4xx/5xx code, got {self.fail_status}")


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    webhook_id: str
    message_type: str
    timestamp: int
    received_at: float  # time.time()
    body: dict[str, Any]

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = self.body.get("data", {})
        return data


@dataclass
class _Tally:
    received: list[ReceivedWebhook] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    invalid_signatures: int = 0
    refused: int = 0  # answered with an error on purpose (fail, throttle, down)


class DispatchCentreSimulator:
    def __init__(
        self,
        *,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        behaviour: Behaviour | None = None,
        seed: int | None = 0,
    ) -> None:
        self._verifier = Webhook(secret)
        self.secret = secret
        self.host = host
        self.port = port
        self._behaviour = behaviour or Behaviour()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The webhook endpoint to give the gateway (CITYWATCH_DISPATCH_URL)."""
        return f"http://{self.host}:{self.port}/webhook"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DispatchCentreSimulator:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="dispatch-centre-sim", daemon=True)
        self._thread.start()
        log.info("dispatch centre simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Off the network (connections refused) until ``start()``; what was received is kept."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> DispatchCentreSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control --------------------------------------------------------------------------------

    @property
    def behaviour(self) -> Behaviour:
        return self._behaviour

    def set_behaviour(self, behaviour: Behaviour | None = None, **changes: Any) -> Behaviour:
        """Replace the behaviour, or change some of its fields: ``set_behaviour(fail_rate=1.0)``."""
        with self._lock:
            self._behaviour = replace(behaviour or self._behaviour, **changes)
            return self._behaviour

    # -- what arrived ---------------------------------------------------------------------------

    def received(self) -> list[ReceivedWebhook]:
        """Unique webhooks (by webhook-id) in arrival order."""
        with self._lock:
            return list(self._tally.received)

    @property
    def duplicates(self) -> int:
        with self._lock:
            return self._tally.duplicates

    @property
    def invalid_signatures(self) -> int:
        with self._lock:
            return self._tally.invalid_signatures

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "unique": len(self._tally.received),
                "duplicates": self._tally.duplicates,
                "invalid_signatures": self._tally.invalid_signatures,
                "refused": self._tally.refused,
                "behaviour": asdict(self._behaviour),
            }

    def clear(self) -> None:
        with self._lock:
            self._tally = _Tally()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> bool:
        """True once at least ``count`` unique webhooks arrived."""
        return bool(wait_until(lambda: len(self.received()) >= count, timeout_s=timeout_s, interval_s=0.02))

    # -- request handling (server threads) ------------------------------------------------------

    def _decide(self) -> tuple[Behaviour, bool]:
        with self._lock:
            behaviour = self._behaviour
            fail = behaviour.fail_rate > 0 and self._random.random() < behaviour.fail_rate
            return behaviour, fail

    def _accept(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        cap = headers.get("content-type", "").startswith(CAP_MEDIA_TYPE)
        try:
            if cap:  # docs/cap.md: the signature on the raw bytes, then the XML (verify() would parse JSON)
                self._verifier.verify(body, headers, json_parse=False)
                payload = _cap_summary(body)
            else:
                payload = self._verifier.verify(body, headers)
        except etree.XMLSyntaxError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": f"signed, but not a CAP document: {exc}"}
        except WebhookVerificationError as exc:
            with self._lock:
                self._tally.invalid_signatures += 1
            log.warning("refused a webhook with a bad signature: %s", exc)
            return HTTPStatus.UNAUTHORIZED, {"error": f"signature verification failed: {exc}"}
        webhook_id = headers.get("webhook-id", "")
        record = ReceivedWebhook(
            webhook_id=webhook_id,
            message_type=str(payload.get("type", "")) if isinstance(payload, dict) else "",
            timestamp=int(headers.get("webhook-timestamp", "0")),
            received_at=time.time(),
            body=payload if isinstance(payload, dict) else {"data": payload},
        )
        with self._lock:
            if webhook_id in self._tally.ids:
                self._tally.duplicates += 1
                return HTTPStatus.OK, {"duplicate": True}
            self._tally.ids.add(webhook_id)
            self._tally.received.append(record)
        log.info("received %s %s (event %s)", record.message_type, webhook_id, record.event.get("id"))
        return HTTPStatus.OK, {"duplicate": False}

    def _count_refused(self) -> None:
        with self._lock:
            self._tally.refused += 1


def _cap_summary(body: bytes) -> dict[str, Any]:
    """A CAP push as the simulator records it: ``type`` cap.<msgType>, the event id, the document."""
    alert = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    msg_type = alert.findtext("cap:msgType", namespaces=_CAP_NS) or ""
    incident = (alert.findtext("cap:incidents", namespaces=_CAP_NS) or "").split(".")  # citywatch.{id}.{uid}
    event_id = int(incident[1]) if len(incident) > 1 and incident[1].isdigit() else None
    identifier = alert.findtext("cap:identifier", namespaces=_CAP_NS)
    return {
        "type": f"cap.{msg_type}",
        "data": {"id": event_id, "identifier": identifier},
        "cap": body.decode(),
    }


def _handler_for(sim: DispatchCentreSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "citywatch-dispatch-sim"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            if self.path == "/received":
                self._send_json(
                    HTTPStatus.OK,
                    sim.summary() | {"received": [asdict(r) for r in sim.received()]},
                )
            elif self.path == "/control":
                self._send_json(HTTPStatus.OK, asdict(sim.behaviour))
            elif self.path == "/health":
                self._send_json(HTTPStatus.OK, {"status": "ok"})
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

        def do_DELETE(self) -> None:
            if self.path == "/received":
                sim.clear()
                self._send_json(HTTPStatus.OK, {"cleared": True})
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/control":
                try:
                    changes = json.loads(body or b"{}")
                    if not isinstance(changes, dict):
                        raise ValueError("the body must be a JSON object of behaviour fields")
                    behaviour = sim.set_behaviour(**changes)
                except (ValueError, TypeError) as exc:
                    self._send_json(
                        HTTPStatus.BAD_REQUEST,
                        {"error": str(exc), "fields": list(Behaviour.__dataclass_fields__)},
                    )
                    return
                log.info("behaviour now %s", behaviour)
                self._send_json(HTTPStatus.OK, asdict(behaviour))
                return
            if self.path.partition("?")[0] not in WEBHOOK_PATHS:  # receivers keep access tokens in queries
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
                return
            behaviour, fail = sim._decide()
            if behaviour.delay_s:
                time.sleep(behaviour.delay_s)
            if behaviour.down:
                sim._count_refused()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if behaviour.throttle_retry_after_s is not None:
                sim._count_refused()
                self._send_json(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    {"error": "throttled"},
                    {"retry-after": f"{behaviour.throttle_retry_after_s:g}"},
                )
                return
            if fail:
                sim._count_refused()
                self._send_json(behaviour.fail_status, {"error": "simulated failure"})
                return
            status, payload = sim._accept(body, {k.lower(): v for k, v in self.headers.items()})
            self._send_json(status, payload)

    return Handler


def run(args: Any) -> int:
    """``citywatch sim dispatch-centre``: serve until interrupted."""
    import signal

    if args.new_secret:
        print(new_secret())
        return 0
    secret = args.secret or new_secret()
    behaviour = Behaviour(
        fail_rate=args.fail_rate,
        delay_s=args.delay,
        down=args.down,
        throttle_retry_after_s=args.retry_after,
    )
    sim = DispatchCentreSimulator(
        secret=secret, host=args.host, port=args.port, behaviour=behaviour, seed=args.seed
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with sim:
        print(f"dispatch centre simulator: webhook {sim.url}  control {sim.base_url}/control", flush=True)
        if not args.secret:
            print(f"secret (set CITYWATCH_DISPATCH_SECRET to it): {secret}", flush=True)
        stop.wait()
    print(json.dumps(sim.summary()), flush=True)
    return 0
