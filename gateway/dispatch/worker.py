"""Deliver the outbox as Standard Webhooks: signed, retried with backoff and jitter, in order.

Each endpoint gets its notifications one at a time, oldest first. While an endpoint does not answer
(connection error, timeout, 5xx, 408, 429), only its oldest notification is retried, at most
``probe_max_delay_s`` apart (longer only when the endpoint asks so with Retry-After); its first answer
makes the whole backlog due, sent at once in order instead of each notification waiting out its own
backoff. After a start, every endpoint is treated so until it answers. A 4xx concerns one notification:
it waits on its own backoff and holds back only the later notifications of its event.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from gateway.db import utcnow
from gateway.dispatch.models import OutboxMessage, OutboxStatus, WebhookEndpoint
from gateway.dispatch.wakeup import OutboxListener, notify_outbox_changed, shares_outbox
from gateway.events.models import Event, EventAudit
from gateway.redaction import redact_text, redact_url
from gateway.retry_after import parse_retry_after

log = logging.getLogger("gateway.dispatch")
# One line per delivery is ours (below); httpx would add another per request.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    timeout_s: float = 10.0
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 3600.0
    give_up_after_s: float = 7 * 86_400.0
    concurrency: int = 4  # endpoints served at once (each endpoint's own notifications go one by one)
    idle_poll_s: float = 1.0
    scan_limit: int = 500
    run_limit: int = 32  # notifications sent to one endpoint before the results are recorded
    # While an endpoint does not answer, its oldest notification is retried at least this often (unless
    # it asked for longer with Retry-After): one request, and its backlog goes out soon after it is back.
    probe_max_delay_s: float = 5.0
    # Several gateways share one outbox: a gateway claims the notifications it is about to send for this
    # long. It starts no POST later than ``lease_s - timeout_s`` after the claim, so none is still being
    # sent when the claim runs out; a dead gateway's claims run out, and another gateway sends them.
    lease_s: float = 30.0

    def __post_init__(self) -> None:
        if self.lease_s <= self.timeout_s:
            raise ValueError(f"lease_s ({self.lease_s}) must be longer than timeout_s ({self.timeout_s})")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery needs, copied out of the session so HTTP runs without holding a transaction."""

    row_id: int
    endpoint_id: int
    event_id: int
    webhook_id: str
    message_type: str
    payload: str
    content_type: str
    url: str
    secret: str
    attempts: int

    @property
    def shown_url(self) -> str:
        """The endpoint for logs and audit notes: without credentials."""
        return redact_url(self.url)


@dataclass(frozen=True, slots=True)
class Sent:
    """One run's outcome, kept until recorded: ``claimed`` (sent or not), and the endpoints among them
    that answered first after silence (their backlog is made due when this is recorded)."""

    results: list[AttemptResult]
    claimed: list[Attempt]
    caught_up: frozenset[tuple[int, str]]

    def blocks_endpoint(self) -> bool:
        """Nothing more of its endpoint goes before this is recorded: a failure (its backoff), a row
        not sent, or a backlog to be made due (it goes in outbox order)."""
        return (
            bool(self.caught_up)
            or len(self.results) < len(self.claimed)
            or not all(result.delivered for result in self.results)
        )


@dataclass(frozen=True, slots=True)
class AttemptResult:
    attempt: Attempt
    status_code: int | None
    error: str | None
    retry_after_s: float | None
    elapsed_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def endpoint_answered(self) -> bool:
        """The endpoint is up and takes requests (a 4xx other than 408/429 is about this notification)."""
        return self.status_code is not None and self.status_code < 500 and self.status_code not in (408, 429)


def signed_headers(
    *,
    secret: str,
    webhook_id: str,
    payload: str,
    at: datetime | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Standard Webhooks headers. ``secret`` may list several (space-separated): each signs, so a
    receiver still on the old secret and one already on the new both verify (rotation)."""
    at = at or datetime.now(UTC)
    signatures = " ".join(
        Webhook(one).sign(msg_id=webhook_id, timestamp=at, data=payload) for one in secret.split()
    )
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": content_type,
        "user-agent": "citywatch-gateway",
    }


def backoff_s(attempts: int, options: DeliveryOptions) -> float:
    """Exponential with 'equal jitter': half fixed, half random, so retries of many events spread out."""
    ceiling = min(options.max_delay_s, options.base_delay_s * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class DispatchWorker:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        read_session_factory: sessionmaker[Session] | None = None,
        options: DeliveryOptions | None = None,
        name: str | None = None,
    ) -> None:
        # Whose claims these are: unique per process start, so a restarted gateway waits out the
        # claims of its previous life like any other gateway's.
        self.name = f"{name or socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"[:128]
        self._sessions = session_factory
        self._read_sessions = read_session_factory or session_factory
        self._options = options or DeliveryOptions()
        self._wake = threading.Event()
        # PostgreSQL: several gateways may send from this outbox, so rows are claimed before sending,
        # and every gateway's new rows (and ended claims) wake this worker. SQLite is one process.
        self._shared = shares_outbox(session_factory)
        self._listener = (
            OutboxListener(session_factory, on_change=self._claims_ended) if self._shared else None
        )
        # Endpoints this worker last left alone for another gateway's claim: it looks again when that
        # gateway records (and so ends) its claims there, not at every gateway's every delivery.
        self._claimed_elsewhere: set[int] = set()
        self._in_round = False  # a round reads the outbox: a claim ended meanwhile may not be in it
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatch-worker", daemon=True)
        self._http = httpx.Client(timeout=self._options.timeout_s)
        self._pool = ThreadPoolExecutor(
            max_workers=self._options.concurrency, thread_name_prefix="dispatch-post"
        )
        self.delivered = 0
        self.failed_attempts = 0
        self.last_error: str | None = None
        # Endpoints (id, url) that answered last time; the others get only their oldest notification.
        self._answering: set[tuple[int, str]] = set()
        self._unrecorded: list[Sent] = []  # sent, not yet recorded (oldest first)
        # The worker thread records a round's results on this thread and goes on sending meanwhile.
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-record")
        self._recording = threading.Lock()  # one recorder at a time: each result is recorded once
        self._record_failed = False

    def start(self) -> None:
        if self._listener is not None:
            self._listener.start()
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _claims_ended(self, endpoint_ids: set[int] | None) -> None:
        """From the listener: another worker ended its claims on these endpoints (None: anything may
        have changed)."""
        if endpoint_ids is None or self._in_round or endpoint_ids & self._claimed_elsewhere:
            self._wake.set()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._recorder.shutdown(wait=True)
        if self._unrecorded:
            try:
                self._record_pending()
            except Exception:  # the database is still away: their claims run out, others send them again
                log.warning(
                    "stopping with %d unrecorded deliveries", sum(len(s.results) for s in self._unrecorded)
                )
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before the round: a wake-up during it makes the wait below return at once
            try:
                wait_s = self.deliver_due(record_async=True)
            except Exception as exc:
                log.exception("dispatch round failed; retrying")
                self.last_error = redact_text(repr(exc))
                self._answering.clear()  # what was learnt in the round may not be recorded: probe again
                wait_s = self._options.idle_poll_s
            if wait_s > 0:
                self._wake.wait(wait_s)

    def deliver_due(self, *, record_async: bool = False) -> float:
        """Send what is due, one run per endpoint; returns how long to wait before the next round.

        ``record_async``: the results are recorded on the recorder thread (which wakes the worker once
        they are), so the next round's POSTs need not wait for that write transaction; until then the
        next rounds skip what was sent, and hold back the endpoints whose outcome decides what follows."""
        self._in_round = True
        try:
            return self._deliver_due(record_async=record_async)
        finally:
            self._in_round = False

    def _deliver_due(self, *, record_async: bool) -> float:
        if self._record_failed or not record_async:
            self._record_pending()  # first: what the last round sent while the database was away
        now = utcnow()
        # The claim runs out lease_s after ``now``: the last POST starts timeout_s before that, counted
        # from the same moment (not after the scan and the claim, which may have waited on the database).
        send_until = time.monotonic() + self._options.lease_s - self._options.timeout_s
        runs, next_due = self._due_runs(now)
        if runs:
            runs = self._claim(runs, now)
        if not runs:
            return (
                self._options.idle_poll_s
                if next_due is None
                else min(self._options.idle_poll_s, max(0.0, (next_due - now).total_seconds()))
            )
        posted = list(self._pool.map(lambda run: self._post_run(run, send_until), runs))
        self._unrecorded += [
            Sent(results, run, self._learn_answers(results))
            for results, run in zip(posted, runs, strict=True)
        ]
        if record_async:
            self._recorder.submit(self._record_in_background)
        else:
            self._record_pending()
        return 0.0

    def _learn_answers(self, results: list[AttemptResult]) -> frozenset[tuple[int, str]]:
        """Track which endpoints answer (for the next round's runs); returns those answering again."""
        caught_up = set()
        for result in results:
            key = (result.attempt.endpoint_id, result.attempt.url)
            if not result.endpoint_answered:
                self._answering.discard(key)
            elif key not in self._answering:
                self._answering.add(key)
                caught_up.add(key)
        return frozenset(caught_up)

    def _record_in_background(self) -> None:
        try:
            held_back = self._record_pending()
            self._record_failed = False
        except Exception as exc:  # the database away: the worker records them before its next round
            log.warning("recording deliveries failed (%s); retrying", exc)
            self.last_error = redact_text(repr(exc))
            self._record_failed = True
            held_back = True
        if held_back:
            self._wake.set()  # endpoints held back meanwhile are free now (or: record before the next round)

    def _record_pending(self) -> bool:
        """Record what was sent; while the database is away, keep it and raise (the round is retried):
        a delivery recorded late is not sent again, one forgotten would be once its claim runs out.
        True if what was recorded had held back its endpoint."""
        held_back = False
        with self._recording:
            while self._unrecorded:
                sent = self._unrecorded[0]
                self._record(sent.results, claimed=sent.claimed, caught_up=sent.caught_up)
                self._unrecorded.pop(0)
                held_back |= sent.blocks_endpoint()
        return held_back

    def _in_flight(self) -> tuple[set[int], set[int]]:
        """Rows sent and delivered but not recorded yet (skipped: not sent twice), and endpoints whose
        unrecorded outcome holds back the rest (see ``Sent.blocks_endpoint``)."""
        delivered: set[int] = set()
        blocked: set[int] = set()
        for sent in list(self._unrecorded):
            delivered.update(result.attempt.row_id for result in sent.results if result.delivered)
            if sent.blocks_endpoint():
                blocked.update(attempt.endpoint_id for attempt in sent.claimed)
        return delivered, blocked

    def _claim(self, runs: list[list[Attempt]], now: datetime) -> list[list[Attempt]]:
        """Claim the runs' notifications for this worker; returns what it may send.

        Row locks with SKIP LOCKED (PostgreSQL; SQLite has one process): of gateways claiming at once
        each row goes to one. A run keeps only its prefix of rows claimed here: another gateway that
        took a row of the same endpoint is sending from the same oldest row, and sending what comes
        after it meanwhile would overtake it."""
        if not self._shared:  # one process, one worker: nobody to claim against
            return runs
        wanted = [attempt.row_id for run in runs for attempt in run]
        with self._sessions() as session, session.begin():
            free = set(
                session.scalars(
                    select(OutboxMessage.id)
                    .where(
                        OutboxMessage.id.in_(wanted),
                        OutboxMessage.status == OutboxStatus.PENDING,
                        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now),
                    )
                    .with_for_update(skip_locked=True)
                )
            )
            claimed = []
            for run in runs:
                prefix = list(itertools.takewhile(lambda attempt: attempt.row_id in free, run))
                if prefix:
                    claimed.append(prefix)
                if len(prefix) < len(run):  # the rest is another gateway's now
                    self._claimed_elsewhere.add(run[0].endpoint_id)
            ids = [attempt.row_id for run in claimed for attempt in run]
            if ids:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids))
                    .values(
                        claimed_by=self.name, claimed_until=now + timedelta(seconds=self._options.lease_s)
                    )
                )
        return claimed

    def _due_runs(self, now: datetime) -> tuple[list[list[Attempt]], datetime | None]:
        """Per endpoint, its due notifications in outbox order: all of them (up to ``run_limit``) when
        it answers, else only its oldest (the probe). A notification waiting on its backoff holds back
        the later ones of its event."""
        # Before the read: a result recorded after this look is in the rows read.
        in_flight, blocked = self._in_flight()
        claimed_elsewhere: set[int] = set()
        with self._read_sessions() as session:
            rows = session.execute(
                select(OutboxMessage, WebhookEndpoint)
                .join(WebhookEndpoint, OutboxMessage.endpoint_id == WebhookEndpoint.id)
                .where(OutboxMessage.status == OutboxStatus.PENDING, WebhookEndpoint.enabled.is_(True))
                .order_by(OutboxMessage.id)
                .limit(self._options.scan_limit)
            )
            runs: dict[int, list[Attempt]] = {}
            complete: set[int] = blocked  # endpoints with nothing more to send this round
            held: set[tuple[int, int]] = set()  # (endpoint, event) behind a notification not yet due
            next_due: datetime | None = None
            for row, endpoint in rows:
                key = (endpoint.id, row.event_id)
                if endpoint.id in complete or key in held or row.id in in_flight:
                    continue
                if row.claimed_until is not None and row.claimed_until > now:
                    complete.add(endpoint.id)  # another gateway sends it now: nothing overtakes it
                    claimed_elsewhere.add(endpoint.id)
                    continue
                probing = (endpoint.id, endpoint.url) not in self._answering
                if row.next_attempt_at > now:
                    next_due = row.next_attempt_at if next_due is None else min(next_due, row.next_attempt_at)
                    if probing:
                        complete.add(endpoint.id)  # nothing overtakes the probe
                    held.add(key)
                    continue
                run = runs.setdefault(endpoint.id, [])
                run.append(
                    Attempt(
                        row_id=row.id,
                        endpoint_id=endpoint.id,
                        event_id=row.event_id,
                        webhook_id=row.webhook_id,
                        message_type=row.message_type,
                        payload=row.payload,
                        content_type=row.content_type,
                        url=endpoint.url,
                        secret=endpoint.secret,
                        attempts=row.attempts,
                    )
                )
                if probing or len(run) >= self._options.run_limit:
                    complete.add(endpoint.id)
        self._claimed_elsewhere = claimed_elsewhere
        return list(runs.values()), next_due

    def _post_run(self, run: list[Attempt], send_until: float) -> list[AttemptResult]:
        """One endpoint's notifications in order; stops at the first that is not delivered, so none
        overtakes an earlier one, and before a POST that could outlast the claim (``send_until``)."""
        results = []
        for attempt in run:
            if time.monotonic() >= send_until or self._stopping.is_set():
                break
            result = self._post(attempt)
            results.append(result)
            if not result.delivered:
                break
        return results

    def _post(self, attempt: Attempt) -> AttemptResult:
        started = time.perf_counter()
        headers = signed_headers(
            secret=attempt.secret,
            webhook_id=attempt.webhook_id,
            payload=attempt.payload,
            content_type=attempt.content_type,
        )
        try:
            response = self._http.post(attempt.url, content=attempt.payload.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return AttemptResult(attempt, None, f"{type(exc).__name__}: {exc}", None, _ms_since(started))
        error = None if response.is_success else f"HTTP {response.status_code}: {response.text[:200]}"
        return AttemptResult(
            attempt,
            response.status_code,
            error,
            parse_retry_after(response.headers.get("retry-after")),
            _ms_since(started),
        )

    def _record(
        self,
        results: list[AttemptResult],
        *,
        claimed: list[Attempt],
        caught_up: frozenset[tuple[int, str]] = frozenset(),
    ) -> None:
        now = utcnow()
        with self._sessions() as session, session.begin():
            sent = {result.attempt.row_id for result in results}
            unsent = [a.row_id for a in claimed if a.row_id not in sent]
            if self._shared and unsent:
                # Claimed, not sent (the run stopped at a failure, or for time): free for anyone at once.
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(unsent), OutboxMessage.claimed_by == self.name)
                    .values(claimed_by=None, claimed_until=None)
                )
            if self._shared:  # the other gateways' workers that skipped these endpoints look again now
                notify_outbox_changed(session, endpoint_ids={a.endpoint_id for a in claimed})
            for result in results:
                attempt = result.attempt
                if (attempt.endpoint_id, attempt.url) in caught_up:
                    self._catch_up(session, attempt, now=now)
                    caught_up -= {(attempt.endpoint_id, attempt.url)}
                row = session.get(OutboxMessage, attempt.row_id, with_for_update=True)
                if row is None or row.status != OutboxStatus.PENDING:
                    continue
                ours = row.claimed_by == self.name or not self._shared
                if not ours and not result.delivered:
                    continue  # our claim ran out (the database was away): another gateway's now
                if not ours:  # delivered all the same: recorded, not sent again
                    log.warning("claim of %s ran out before its delivery was recorded", attempt.webhook_id)
                row.claimed_by = row.claimed_until = None
                row.attempts += 1
                if result.delivered:
                    row.status, row.delivered_at, row.last_error = OutboxStatus.DELIVERED, now, None
                    self.delivered += 1
                    _audit_push(session, attempt, at=now, note=f"delivered (attempt {row.attempts})")
                    log.info(
                        "delivered %s of event %d to %s (%s, attempt %d, %.0f ms)",
                        attempt.message_type,
                        attempt.event_id,
                        attempt.shown_url,
                        attempt.webhook_id,
                        row.attempts,
                        result.elapsed_ms,
                    )
                    continue
                self.failed_attempts += 1
                error = redact_text(result.error or "", secrets=attempt.secret.split())
                self.last_error = row.last_error = error[:1000]
                if result.status_code == 410:
                    endpoint = session.get(WebhookEndpoint, attempt.endpoint_id)
                    if endpoint is not None and endpoint.enabled:
                        endpoint.enabled = False
                        endpoint.disabled_reason = f"answered 410 Gone at {now.isoformat()}"
                        log.error(
                            "endpoint %s answered 410 Gone: disabled, its notifications wait",
                            attempt.shown_url,
                        )
                    continue
                if now - row.created_at > timedelta(seconds=self._options.give_up_after_s):
                    row.status = OutboxStatus.FAILED
                    _audit_push(session, attempt, at=now, note=f"gave up after {row.attempts} attempts")
                    log.error(
                        "gave up delivering %s of event %d: %s",
                        attempt.webhook_id,
                        attempt.event_id,
                        row.last_error,
                    )
                    continue
                if result.retry_after_s is not None:
                    delay = min(result.retry_after_s, self._options.max_retry_after_s)
                elif result.endpoint_answered:
                    delay = backoff_s(row.attempts, self._options)
                else:  # the endpoint's one probe: cheap to repeat, and bounds how late the drain starts
                    delay = min(backoff_s(row.attempts, self._options), self._options.probe_max_delay_s)
                row.next_attempt_at = now + timedelta(seconds=delay)
                log.warning(
                    "delivery of event %d to %s failed (%s); retry %d in %.1f s",
                    attempt.event_id,
                    attempt.shown_url,
                    row.last_error,
                    row.attempts,
                    delay,
                )

    def _catch_up(self, session: Session, attempt: Attempt, *, now: datetime) -> None:
        """The first answer after silence makes the endpoint's backlog due now."""
        caught_up: CursorResult[Any] = session.execute(  # type: ignore[assignment]  # an UPDATE's result
            update(OutboxMessage)
            .where(
                OutboxMessage.endpoint_id == attempt.endpoint_id,
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )
        if caught_up.rowcount:
            log.info(
                "endpoint %s answers again: sending its %d waiting notifications now, in order",
                attempt.shown_url,
                caught_up.rowcount,
            )


def _audit_push(session: Session, attempt: Attempt, *, at: datetime, note: str) -> None:
    """Every push is part of the event's audit trail: what went where, and how it ended."""
    state = session.scalar(select(Event.state).where(Event.id == attempt.event_id)) or ""
    session.add(
        EventAudit(
            event_id=attempt.event_id,
            at=at,
            actor="gateway",
            role="system",
            action="push",
            from_status=state,
            to_status=state,
            note=f"{attempt.message_type} to {attempt.shown_url} ({attempt.webhook_id}): {note}",
        )
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
