"""/metrics: the gateway in Prometheus' text format, for dashboards and alerts (docs/scaling.md).

Treated like ``/health``: a bearer token of any role (Prometheus sends it with ``authorization:
credentials_file``). The API has one port, often the public one, and the figures say how many devices
and open events a city has; the output carries no URL, credential or device id, only fixed label sets
(channels, refusal reasons, states, event types, presence, endpoint names). Plain text, so not in the
OpenAPI schema.

What is read at scrape time is either this process's own counters (ingest, dispatch attempts,
dispatch latency: sum them over the gateways) or cheap queries of the shared database (outbox
backlog and open events on their status indexes, devices by presence in one aggregate: about 20 ms for
10,000 devices on SQLite). Those are the same for every gateway, so take ``max`` over them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, object_session, sessionmaker

from citywatch import __version__
from citywatch.protocol.topics import DEVICE_TO_GATEWAY
from gateway.api.deps import Services, ServicesDep
from gateway.auth.deps import AnyCaller
from gateway.db import utcnow
from gateway.devices import service as devices_service
from gateway.dispatch import service as dispatch_service
from gateway.dispatch.models import OutboxMessage, OutboxStatus
from gateway.events.lifecycle.models import FINISHED_STATES
from gateway.events.models import Event
from gateway.redaction import redact_text

log = logging.getLogger("gateway.metrics")
router = APIRouter()
METRICS_PATH = "/metrics"

# created -> delivered: a healthy endpoint answers in well under a second; the tail shows retries.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_DELIVERED_KEY = "citywatch_metrics_delivered"


@router.get(METRICS_PATH, include_in_schema=False)
def metrics(_caller: AnyCaller, services: ServicesDep) -> Response:
    registry = services.metrics or make_registry(services)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def make_registry(services: Services, *, latency: DispatchLatency | None = None) -> CollectorRegistry:
    """One registry per gateway (not prometheus_client's global one: tests run several in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(services))
    if latency is not None:
        registry.register(latency.histogram)
    ProcessCollector(registry=registry)  # CPU seconds, resident memory, open files of this process
    return registry


class DispatchLatency:
    """``citywatch_dispatch_latency_seconds``: created -> delivered of each notification this process
    delivered, observed when the delivery commits. Outbox rows getting a ``delivered_at`` are noted on
    their session (an attribute event: nothing runs on the ingest's flushes) and observed when a session
    of ``sessions`` commits, so the dispatch worker needs no metrics code."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.histogram = Histogram(
            "citywatch_dispatch_latency_seconds",
            "Time from a notification's outbox row being written (with its event change) to the endpoint's "
            "2xx, for the notifications this gateway delivered.",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._after_rollback)

    def _after_commit(self, session: Session) -> None:
        for seconds in session.info.pop(_DELIVERED_KEY, ()):
            self.histogram.observe(seconds)

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(_DELIVERED_KEY, None)  # not delivered after all: retried, observed then


@event.listens_for(OutboxMessage.delivered_at, "set")
def _note_delivery(row: OutboxMessage, value: datetime | None, old: object, _initiator: object) -> None:
    """One listener for the class, whichever gateway's session the row is in (tests run several)."""
    session = object_session(row)
    if session is None or value is None or isinstance(old, datetime) or row.created_at is None:
        return
    session.info.setdefault(_DELIVERED_KEY, []).append(max(0.0, (value - row.created_at).total_seconds()))


class GatewayCollector(Collector):
    """Everything but the latency histogram, read when Prometheus scrapes."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        services = self._services
        ingest = services.ingest_status()
        yield from _ingest_metrics(ingest, services=services)
        yield from _store_metrics(services)
        try:
            dispatch = services.dispatch_status()
        except Exception:  # the database is away: the process counters are still worth having
            log.debug("metrics: dispatch status unavailable", exc_info=True)
            dispatch = None
        yield from _dispatch_metrics(dispatch)
        yield from _database_metrics(services)
        yield _gauge(
            "citywatch_metrics_collect_seconds",
            "Time this scrape spent collecting (mostly the database queries).",
            time.perf_counter() - started,
        )


def _ingest_metrics(ingest: dict[str, Any], *, services: Services) -> Iterator[Metric]:
    settings = services.settings
    info = GaugeMetricFamily(
        "citywatch_gateway_info",
        "This gateway: version, MQTT client id and shared-subscription group (empty: none).",
        labels=["version", "client_id", "share_group"],
    )
    info.add_metric([__version__, settings.MQTT_CLIENT_ID, settings.MQTT_SHARE_GROUP], 1)
    yield info
    yield _gauge(
        "citywatch_mqtt_connected", "1 while connected to the broker.", bool(ingest.get("connected"))
    )
    yield _gauge(
        "citywatch_broker_session_lost",
        "1 for a while after the broker came back without this gateway's persistent session.",
        bool(ingest.get("session", {}).get("degraded", False)),
    )
    yield _counter(
        "citywatch_ingest_received_messages",
        "MQTT messages received by this gateway (before decoding).",
        ingest.get("received", 0),
    )
    yield _labelled_counter(
        "citywatch_ingest_messages",
        "Messages stored, by channel (telemetry, state, event, evidence, ack, ...).",
        "channel",
        # Every device channel from the start, so that rate() has a series before the first message.
        dict.fromkeys(sorted(DEVICE_TO_GATEWAY), 0) | ingest.get("accepted", {}),
    )
    yield _labelled_counter(
        "citywatch_ingest_refused_messages",
        "Messages refused, by reason (docs/protocol.md, What the gateway refuses).",
        "reason",
        ingest.get("refused", {}),
    )
    yield _labelled_counter(
        "citywatch_ingest_event_messages",
        "Device event messages, by what became of them (created, merged, duplicate, ...).",
        "outcome",
        ingest.get("events", {}),
    )
    yield _counter(
        "citywatch_ingest_batches", "Batches stored (one transaction each).", ingest.get("batches", 0)
    )
    yield _counter(
        "citywatch_ingest_telemetry_points", "Telemetry points written.", ingest.get("telemetry_written", 0)
    )
    yield _counter(
        "citywatch_ingest_retries",
        "Batches stored again after a transient database error (locked, server away).",
        ingest.get("retries", 0),
    )
    yield _gauge(
        "citywatch_ingest_queue_depth",
        "Received messages waiting for the writer (unacknowledged to the broker).",
        ingest.get("queue_depth", 0),
    )
    yield _gauge(
        "citywatch_ingest_batch_in_progress_seconds",
        "How long the writer has been on its current batch (0 when idle).",
        ingest.get("storing_for_s", 0.0),
    )
    yield _gauge(
        "citywatch_ingest_write_failures",
        "Failed attempts to store the current batch since the last commit (0: writes work).",
        ingest.get("writes", {}).get("failures", 0),
    )
    yield _gauge(
        "citywatch_ingest_writer_up", "1 while the writer thread runs.", ingest.get("writer_alive", True)
    )


def _store_metrics(services: Services) -> Iterator[Metric]:
    store = services.store.status()
    yield _gauge("citywatch_telemetry_store_up", "1 while the telemetry store takes writes.", store.ok)
    yield _gauge(
        "citywatch_telemetry_spilled_points",
        "Telemetry points waiting on disk for InfluxDB.",
        store.spilled_points,
    )
    yield _counter(
        "citywatch_telemetry_dropped_points",
        "Telemetry points dropped because the spill was full.",
        store.dropped_points_spill_full,
    )


def _dispatch_metrics(dispatch: dict[str, Any] | None) -> Iterator[Metric]:
    if dispatch is None:
        return
    yield _counter(
        "citywatch_dispatch_delivered",
        "Notifications this gateway delivered.",
        dispatch.get("delivered_since_start", 0),
    )
    yield _counter(
        "citywatch_dispatch_failed_attempts",
        "Delivery attempts of this gateway that failed (to be retried, or given up).",
        dispatch.get("failed_attempts_since_start", 0),
    )
    pending = GaugeMetricFamily(
        "citywatch_dispatch_pending_messages",
        "Notifications waiting for an endpoint (shared database: the same on every gateway).",
        labels=["endpoint"],
    )
    oldest = GaugeMetricFamily(
        "citywatch_dispatch_oldest_pending_age_seconds",
        "Age of the oldest notification waiting for an endpoint (0: none waits).",
        labels=["endpoint"],
    )
    enabled = GaugeMetricFamily(
        "citywatch_dispatch_endpoint_enabled",
        "1 for an endpoint that takes deliveries (0 after a 410 Gone).",
        labels=["endpoint"],
    )
    now = utcnow()
    for endpoint in dispatch.get("endpoints", []):
        if not endpoint.get("configured", True) and not endpoint.get("pending"):
            continue  # gone from the routing table, nothing left for it
        name = str(endpoint["name"])
        pending.add_metric([name], endpoint.get("pending", 0))
        at = endpoint.get("oldest_pending_at")
        age = (now - datetime.fromisoformat(at)).total_seconds() if at else 0.0
        oldest.add_metric([name], max(0.0, age))
        enabled.add_metric([name], 1 if endpoint.get("enabled") else 0)
    yield from (pending, oldest, enabled)


def _database_metrics(services: Services) -> Iterator[Metric]:
    """The shared database's figures; only ``citywatch_database_up 0`` when it cannot be read."""
    silent_after = timedelta(seconds=services.settings.DEVICE_OFFLINE_AFTER_S)
    try:
        with services.read_session_factory() as session:
            session.execute(text("SELECT 1"))
            # Delivered rows grow for ever: citywatch_dispatch_delivered counts those.
            outbox = dispatch_service.counts_by_status(
                session=session, statuses=[OutboxStatus.PENDING, OutboxStatus.FAILED]
            )
            open_events = session.execute(
                select(Event.state, Event.type, func.count())
                .where(Event.state.not_in([str(state) for state in FINISHED_STATES]))
                .group_by(Event.state, Event.type)
            ).all()
            opened = [(str(state), str(kind), int(count)) for state, kind, count in open_events]
            presence = devices_service.presence_counts(
                session=session, silent_after=silent_after, now=utcnow()
            )
    except Exception as exc:  # the scrape still answers: database_up 0 is the finding
        log.warning("metrics: database not readable: %s", redact_text(repr(exc))[:300])
        yield _gauge("citywatch_database_up", "1 while this gateway can read the database.", False)
        return
    yield _gauge("citywatch_database_up", "1 while this gateway can read the database.", True)
    by_status = GaugeMetricFamily(
        "citywatch_dispatch_outbox_messages",
        "Outbox rows not delivered, by status: pending (waiting or retrying) and failed (given up).",
        labels=["status"],
    )
    for status in (OutboxStatus.PENDING, OutboxStatus.FAILED):
        by_status.add_metric([str(status)], outbox.get(status, 0))
    yield by_status
    events = GaugeMetricFamily(
        "citywatch_events_open",
        "Events not closed or cancelled, by state and type.",
        labels=["state", "type"],
    )
    for event_state, kind, count in opened:
        events.add_metric([event_state, kind], count)
    yield events
    devices = GaugeMetricFamily(
        "citywatch_devices",
        "Registered devices by presence (online, silent, offline, never_seen).",
        labels=["presence"],
    )
    for seen, count in presence.items():
        devices.add_metric([seen], count)
    yield devices


def _gauge(name: str, documentation: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value))


def _labelled_counter(
    name: str, documentation: str, label: str, values: dict[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted((str(key), value) for key, value in values.items()):
        family.add_metric([key], float(value))
    return family
