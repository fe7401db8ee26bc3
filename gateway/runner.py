"""One gateway process: MQTT ingest + dispatch worker + REST API, startable in-process.

with GatewayApp(Settings(MQTT_URL=broker.url, DATA_DIR=tmp)) as gateway:
    with gateway.session_factory() as session, session.begin():
        devices_service.provision(session=session, device_id="culvert-1", site="riverside", device_type="culvert")
        token = create_token(session, name="me", role="viewer").token  # every route needs one
    httpx.get(f"{gateway.url}/health", headers={"Authorization": f"Bearer {token}"})
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from citywatch.mqtt import MqttOptions
from citywatch.polling import wait_until
from citywatch.protocol.codec import ClockBounds
from gateway.api.app import create_app
from gateway.api.deps import Services
from gateway.api.metrics import DispatchLatency, make_registry
from gateway.cap.models import CapOptions
from gateway.db import make_engine, make_sessionmaker, migrate, read_sessionmaker, singleton_lock, utcnow
from gateway.devices.monitor import PresenceMonitor, PresenceOptions
from gateway.devices.service import DeviceDirectory
from gateway.dispatch import service as dispatch_service
from gateway.dispatch.worker import DeliveryOptions, DispatchWorker
from gateway.events.escalation import EscalationLoop
from gateway.events.policy import EVENT_POLICY_KEY, EventPolicy, default_routing
from gateway.evidence.service import EvidenceOptions
from gateway.ingest.broker_session import BrokerSessionWatch, ingested_before
from gateway.ingest.consumer import IngestOptions, MqttIngest
from gateway.ingest.feedback import FeedbackLimiter, RefusalFeedback
from gateway.ingest.processor import BatchProcessor
from gateway.ingest.receipts import ReceiptDesk
from gateway.ingest.refusals import RefusalRecorder
from gateway.ingest.stats import IngestStats, RateLimitedLog
from gateway.redaction import redact_url
from gateway.routing.service import RoutingConfigError, load_routing
from gateway.settings import Settings
from gateway.telemetry.factory import make_telemetry_store

log = logging.getLogger("gateway")


class GatewayStartError(RuntimeError):
    """The gateway cannot start; the message says what to change."""


class GatewayApp:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        delivery: DeliveryOptions | None = None,
        presence: PresenceOptions | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._delivery = delivery or DeliveryOptions(
            max_delay_s=self.settings.DISPATCH_RETRY_MAX_S,
            lease_s=self.settings.DISPATCH_LEASE_S,
            timeout_s=min(DeliveryOptions().timeout_s, self.settings.DISPATCH_LEASE_S / 3),
        )
        self.engine = make_engine(
            self.settings.DB_URL, sqlite_busy_timeout_s=self.settings.SQLITE_BUSY_TIMEOUT_S
        )
        self.session_factory = make_sessionmaker(self.engine)
        self.read_session_factory = read_sessionmaker(self.engine)
        # Every session carries the event policy: routing, suppression window, CAP options, clock.
        self.event_policy = self._event_policy(clock)
        for factory in (self.session_factory, self.read_session_factory):
            factory.configure(info={EVENT_POLICY_KEY: self.event_policy})
        self.stats = IngestStats()
        self.store = make_telemetry_store(self.settings)
        self.directory = DeviceDirectory(self.read_session_factory)
        self.worker = DispatchWorker(
            session_factory=self.session_factory,
            read_session_factory=self.read_session_factory,
            options=self._delivery,
            name=self.settings.MQTT_CLIENT_ID,  # in its claims: which gateway sends a notification
        )
        device_clock = ClockBounds(
            max_ahead=timedelta(seconds=self.settings.CLOCK_SKEW_S), now=self.event_policy.clock
        )
        self.refusal_feedback = (
            RefusalFeedback(
                FeedbackLimiter(
                    interval_s=self.settings.REFUSAL_FEEDBACK_INTERVAL_S,
                    max_per_s=self.settings.REFUSAL_FEEDBACK_MAX_PER_S,
                )
            )
            if self.settings.REFUSAL_FEEDBACK_INTERVAL_S > 0
            else None
        )
        self.refusals = RefusalRecorder(
            stats=self.stats,
            log=RateLimitedLog(logging.getLogger("gateway.ingest")),
            clock=device_clock,
            now=self.event_policy.clock,
            feedback=self.refusal_feedback,
        )
        processor = BatchProcessor(
            session_factory=self.session_factory,
            store=self.store,
            directory=self.directory,
            stats=self.stats,
            refusals=self.refusals,
            snapshot_dir=self.settings.snapshot_dir,
            evidence=EvidenceOptions(
                root=self.settings.evidence_dir,
                max_bytes=self.settings.EVIDENCE_MAX_BYTES,
                partial_max_age=timedelta(hours=self.settings.EVIDENCE_PARTIAL_MAX_AGE_H),
            ),
            # Alone, a gateway gets a device's messages in order; in a share group, not necessarily.
            unknown_event_wait_s=(
                self.settings.SHARE_GROUP_ORDER_WAIT_S if self.settings.MQTT_SHARE_GROUP else 0.0
            ),
        )
        self.ingest = MqttIngest(
            mqtt_options=dataclasses.replace(
                MqttOptions.from_url(self.settings.MQTT_URL), ca_file=self.settings.MQTT_CA_FILE
            ),
            options=IngestOptions(
                client_id=self.settings.MQTT_CLIENT_ID,
                max_payload_bytes=self.settings.MAX_PAYLOAD_BYTES,
                max_batch=self.settings.INGEST_MAX_BATCH,
                clock=device_clock,
                share_group=self.settings.MQTT_SHARE_GROUP,
            ),
            processor=processor,
            stats=self.stats,
            on_outbox_changed=self.worker.wake,
            receipts=ReceiptDesk(interval_s=self.settings.RECEIPT_INTERVAL_S),
            session_watch=BrokerSessionWatch(
                had_session_before=ingested_before(self.read_session_factory),
                degraded_for=timedelta(seconds=self.settings.BROKER_SESSION_LOST_DEGRADED_S),
            ),
        )
        if self.refusal_feedback is not None:  # on the ingest's session: dropped while it is not connected
            ingest = self.ingest
            self.refusal_feedback.attach(lambda topic, payload: ingest.publish(topic, payload, retain=False))
        self.presence = PresenceMonitor(
            session_factory=self.session_factory,
            read_session_factory=self.read_session_factory,
            offline_after=timedelta(seconds=self.settings.DEVICE_OFFLINE_AFTER_S),
            config_drift_after=timedelta(seconds=self.settings.CONFIG_DRIFT_AFTER_S),
            options=presence,
            on_outbox_changed=self.worker.wake,
        )
        self.escalation = EscalationLoop(
            session_factory=self.session_factory,
            interval_s=self.settings.ESCALATION_INTERVAL_S,
            on_outbox_changed=self.worker.wake,
        )
        self.services = Services(
            settings=self.settings,
            session_factory=self.session_factory,
            read_session_factory=self.read_session_factory,
            store=self.store,
            directory=self.directory,
            ingest_status=self.ingest_status,
            dispatch_status=self.dispatch_status,
            publish_to_device=self.ingest.publish,
            recent_refusals=self.refusals.recent,
            clocks_off=self.refusals.clocks_off,
        )
        # Before any session opens: the latency histogram listens to the dispatch worker's commits.
        self.services.metrics = make_registry(self.services, latency=DispatchLatency(self.session_factory))
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self.port = self.settings.HTTP_PORT
        self._started = False

    @property
    def url(self) -> str:
        return f"http://{self.settings.HTTP_HOST}:{self.port}"

    def start(self, *, wait_mqtt_s: float = 10.0) -> GatewayApp:
        """Migrate, then start the dispatch worker, the ingest and the API; waits for the MQTT connection."""
        sock = self._bind_api()  # first: the failures worth a clear message happen before any thread starts
        try:
            migrate(self.engine)
            self._configure_dispatch()
        except SQLAlchemyError as exc:
            sock.close()
            raise GatewayStartError(
                f"database {self.engine.url!r} is not usable (CITYWATCH_DB_URL): {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        self.worker.start()
        self.ingest.start()
        self.presence.start()
        self.escalation.start()
        self._started = True
        self._serve_api(sock)
        log.info(
            "gateway up: API %s, MQTT %s, database %s",
            self.url,
            redact_url(self.settings.MQTT_URL),
            redact_url(self.settings.DB_URL),
        )
        if wait_mqtt_s > 0 and not self.ingest.wait_connected(wait_mqtt_s):
            log.warning(
                "not connected to MQTT %s yet; retrying in the background", redact_url(self.settings.MQTT_URL)
            )
        return self

    def stop(self) -> None:
        """Store and ack what was received, stop delivering, close everything."""
        if not self._started:
            return
        self._started = False
        self.escalation.stop()
        self.presence.stop()
        self.ingest.stop()
        self.worker.stop()
        if self._server is not None and self._server_thread is not None:
            self.api.state.stopping.set()
            self._server.should_exit = True
            self._server_thread.join(10)
        self.store.close()
        self.engine.dispose()
        log.info("gateway stopped")

    def __enter__(self) -> GatewayApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ingest_status(self) -> dict[str, Any]:
        return {
            "connected": self.ingest.connected,
            "writer_alive": self.ingest.writer_alive,
            "url": redact_url(self.settings.MQTT_URL),
            "client_id": self.settings.MQTT_CLIENT_ID,
            "last_disconnect": self.ingest.last_disconnect,
            "queue_depth": self.ingest.queue_depth,
            "storing_for_s": round(self.ingest.storing_for_s, 3),
            "session": self.ingest.session_watch.status(),
            "receipts_sent": self.ingest.receipts.sent,
            "refusal_feedback": self.refusal_feedback.status() if self.refusal_feedback else None,
            **self.stats.snapshot(),
        }

    def dispatch_status(self) -> dict[str, Any]:
        with self.read_session_factory() as session:
            endpoints = dispatch_service.endpoint_states(session=session)
        return {
            "endpoints": endpoints,
            "delivered_since_start": self.worker.delivered,
            "failed_attempts_since_start": self.worker.failed_attempts,
            "last_error": self.worker.last_error,
        }

    def _event_policy(self, clock: Callable[[], datetime] | None) -> EventPolicy:
        if self.settings.ROUTING_FILE is not None:
            try:
                table = load_routing(self.settings.ROUTING_FILE)
            except RoutingConfigError as exc:
                raise GatewayStartError(f"CITYWATCH_ROUTING_FILE: {exc}") from exc
        else:
            try:
                table = default_routing(
                    dispatch_url=self.settings.DISPATCH_URL, dispatch_secret=self.settings.DISPATCH_SECRET
                )
            except ValidationError as exc:  # e.g. a secret too short to sign with
                problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
                raise GatewayStartError(f"CITYWATCH_DISPATCH_URL / _SECRET: {problems}") from None
        return EventPolicy(
            routing=table,
            suppression_window=timedelta(seconds=self.settings.SUPPRESSION_WINDOW_S),
            cap=CapOptions(
                sender=self.settings.CAP_SENDER,
                sender_name=self.settings.CAP_SENDER_NAME,
                status=self.settings.CAP_STATUS,
                web_base_url=self.settings.public_url,
                contact=self.settings.CAP_CONTACT,
                validity={
                    event_type.value: timedelta(seconds=seconds)
                    for event_type, seconds in self.settings.CAP_VALIDITY_S.items()
                },
            ),
            clock=clock or utcnow,
        )

    def _configure_dispatch(self) -> None:
        with self.session_factory() as session, session.begin():
            # Gateways starting together would race to insert the same endpoints: one at a time.
            singleton_lock(session, "endpoints", wait=True)
            dispatch_service.configure_endpoints(session=session, table=self.event_policy.routing)

    def _bind_api(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.HTTP_HOST, self.settings.HTTP_PORT))
        except OSError as exc:
            sock.close()
            raise GatewayStartError(
                f"cannot listen on {self.settings.HTTP_HOST}:{self.settings.HTTP_PORT} ({exc.strerror}); "
                "choose another CITYWATCH_HTTP_PORT"
            ) from exc
        self.port = sock.getsockname()[1]
        return sock

    def _serve_api(self, sock: socket.socket) -> None:
        self.api = create_app(self.services)
        config = uvicorn.Config(self.api, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="gateway-api", daemon=True
        )
        self._server_thread.start()
        server, thread = self._server, self._server_thread
        wait_until(lambda: server.started or not thread.is_alive(), timeout_s=10, interval_s=0.01)
        if not server.started:
            raise RuntimeError(f"the API server did not start on {self.url}")
