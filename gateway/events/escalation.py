"""The escalation loop: overdue events are supervised, then urged on the routing table's schedule."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import singleton_lock
from gateway.events import flows
from gateway.events.lifecycle.models import SLA_RUNNING_STATES, SYSTEM_ACTOR, TransitionRequest
from gateway.events.lifecycle.sla import due_escalations
from gateway.events.models import Event, sla_view
from gateway.events.service import policy_of

log = logging.getLogger("gateway.escalation")


class EscalationLoop:
    """Runs ``run_once`` every ``interval_s`` on its own thread; tests call ``run_once`` directly."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        interval_s: float = 30.0,
        on_outbox_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = session_factory
        self._interval_s = interval_s
        self._on_outbox_changed = on_outbox_changed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.escalations_sent = 0
        self.last_error: str | None = None

    def run_once(self) -> int:
        """Record and push every escalation due now (by the policy's clock); returns how many."""
        with self._sessions() as session, session.begin():
            # Every gateway runs this loop. One pass at a time, cluster-wide: a pass is one cheap scan
            # of the overdue events, so running them side by side would gain nothing, and a lock held
            # by the transaction (rather than an elected leader with a lease) is gone the moment its
            # gateway dies. Taken before the scan, so a pass sees the last one's escalations committed
            # (READ COMMITTED) and sends each deadline's escalation once; busy = skip this round.
            if not singleton_lock(session, "escalation"):
                return 0
            policy = policy_of(session)
            now = policy.clock()
            overdue = (
                Event.state.in_([state.value for state in SLA_RUNNING_STATES]),
                Event.deadline.is_not(None),
                Event.deadline <= now,
            )
            # Scanned without locks (most overdue events have had their escalations), then only those
            # due are locked and judged again as they are now: ingest or the API may change one meanwhile
            # (LOCK), and a pass must not hold every overdue event while it pushes.
            scanned = session.scalars(select(Event).where(*overdue)).all()
            due_ids = [
                int(escalation.event_id)
                for escalation in due_escalations(
                    (sla_view(e) for e in scanned), now=now, policy=policy.escalation
                )
            ]
            if not due_ids:
                return 0
            locked = {
                str(event.id): event
                for event in session.scalars(
                    select(Event)
                    .where(Event.id.in_(due_ids), *overdue)
                    .order_by(Event.id)
                    .with_for_update(key_share=True)
                    .execution_options(populate_existing=True)
                )
            }
            due = due_escalations((sla_view(e) for e in locked.values()), now=now, policy=policy.escalation)
            for escalation in due:
                event = locked[escalation.event_id]
                flows.transition(
                    session=session,
                    event=event,
                    request=TransitionRequest(
                        action=escalation.action,
                        actor=SYSTEM_ACTOR,
                        at=now,
                        note=escalation.audit(at=now).note,
                    ),
                )
                event.escalations_sent = escalation.level
                event.last_escalated_at = now
                flows.publish(
                    session=session,
                    event=event,
                    message_type=f"event.{escalation.action.value}",
                    policy=policy,
                    at=now,
                    note=escalation.audit(at=now).note,
                )
                log.warning(
                    "event %s overdue: %s (escalation %d)", event.id, escalation.action, escalation.level
                )
        if due:
            self.escalations_sent += len(due)
            self._on_outbox_changed()
        return len(due)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="escalation", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # a database hiccup: try again next round
                log.exception("escalation round failed")
                self.last_error = repr(exc)
