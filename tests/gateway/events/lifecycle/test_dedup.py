"""De-duplication: one open event per (device, type); flapping within the window does not open another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from citywatch.protocol.messages import Severity
from gateway.events.lifecycle.dedup import DedupAction, KnownEvent, RaisedCondition, decide
from gateway.events.lifecycle.models import EventState

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def _condition(minutes: float = 0, severity: Severity = Severity.WARNING, **fields: str) -> RaisedCondition:
    return RaisedCondition(
        device_id=fields.get("device_id", "culvert-7"),
        event_type=fields.get("event_type", "water_level"),
        severity=severity,
        seen_at=T0 + timedelta(minutes=minutes),
    )


def _known(
    event_id: str,
    state: EventState,
    *,
    last_seen_minutes: float = 0,
    severity: Severity = Severity.WARNING,
    count: int = 1,
    **fields: str,
) -> KnownEvent:
    return KnownEvent(
        event_id=event_id,
        device_id=fields.get("device_id", "culvert-7"),
        event_type=fields.get("event_type", "water_level"),
        state=state,
        severity=severity,
        count=count,
        last_seen=T0 + timedelta(minutes=last_seen_minutes),
    )


def test_first_condition_opens_a_new_event() -> None:
    decision = decide(_condition(), [], suppression_window=WINDOW)
    assert decision.action is DedupAction.NEW and decision.event_id is None
    assert decision.count == 1 and decision.severity is Severity.WARNING


def test_repeat_merges_into_the_open_event_and_bumps_count_and_last_seen() -> None:
    known = [_known("ev1", EventState.IN_PROGRESS, count=4)]
    decision = decide(_condition(minutes=90), known, suppression_window=WINDOW)
    assert decision.action is DedupAction.MERGE and decision.event_id == "ev1"
    assert decision.count == 5 and decision.last_seen == T0 + timedelta(minutes=90)
    assert decision.severity is Severity.WARNING and not decision.severity_raised


def test_higher_severity_is_taken_lower_is_not() -> None:
    known = [_known("ev1", EventState.DISPATCHED, severity=Severity.WARNING)]
    higher = decide(_condition(severity=Severity.CRITICAL), known, suppression_window=WINDOW)
    lower = decide(_condition(severity=Severity.NOTICE), known, suppression_window=WINDOW)
    assert higher.severity is Severity.CRITICAL and higher.severity_raised
    assert lower.severity is Severity.WARNING and not lower.severity_raised


def test_late_replay_does_not_move_last_seen_backwards() -> None:
    known = [_known("ev1", EventState.ACCEPTED, last_seen_minutes=30)]
    decision = decide(_condition(minutes=10), known, suppression_window=WINDOW)
    assert decision.last_seen == T0 + timedelta(minutes=30)


def test_other_devices_and_types_do_not_merge() -> None:
    known = [
        _known("other-device", EventState.DISPATCHED, device_id="culvert-8"),
        _known("other-type", EventState.DISPATCHED, event_type="water_rising_fast"),
    ]
    assert decide(_condition(), known, suppression_window=WINDOW).action is DedupAction.NEW


def test_condition_cleared_but_work_open_merges() -> None:
    """The condition ended (recorded), the work item is still in progress: the return merges into it."""
    known = [_known("ev1", EventState.IN_PROGRESS, last_seen_minutes=0)]
    decision = decide(_condition(minutes=600), known, suppression_window=WINDOW)
    assert decision.action is DedupAction.MERGE and decision.event_id == "ev1"


def test_flapping_within_the_window_reraises_the_closed_event() -> None:
    known = [_known("ev1", EventState.CLOSED, last_seen_minutes=0, count=2)]
    decision = decide(_condition(minutes=14), known, suppression_window=WINDOW)
    assert decision.action is DedupAction.RERAISE and decision.event_id == "ev1" and decision.count == 3


def test_condition_back_after_resolution_reraises() -> None:
    known = [_known("ev1", EventState.RESOLVED, last_seen_minutes=0)]
    decision = decide(_condition(minutes=300), known, suppression_window=WINDOW)
    assert decision.action is DedupAction.RERAISE and decision.event_id == "ev1"


def test_repeat_of_a_false_alarm_within_the_window_is_suppressed() -> None:
    known = [_known("ev1", EventState.CANCELLED, last_seen_minutes=0)]
    decision = decide(_condition(minutes=5), known, suppression_window=WINDOW)
    assert decision.action is DedupAction.SUPPRESS and decision.event_id == "ev1"


def test_after_the_window_a_new_event_opens() -> None:
    known = [_known("ev1", EventState.CLOSED), _known("ev0", EventState.CANCELLED)]
    decision = decide(_condition(minutes=16), known, suppression_window=WINDOW)
    assert decision.action is DedupAction.NEW


def test_the_open_event_wins_over_recently_finished_ones() -> None:
    known = [
        _known("finished", EventState.CLOSED, last_seen_minutes=9),
        _known("open", EventState.NEW, last_seen_minutes=2),
    ]
    assert decide(_condition(minutes=10), known, suppression_window=WINDOW).event_id == "open"


def test_most_recent_finished_event_is_the_one_reraised() -> None:
    known = [
        _known("older", EventState.CLOSED, last_seen_minutes=1),
        _known("newer", EventState.CANCELLED, last_seen_minutes=8),
    ]
    decision = decide(_condition(minutes=10), known, suppression_window=WINDOW)
    assert decision.event_id == "newer" and decision.action is DedupAction.SUPPRESS


def test_incidents_never_fold_into_an_open_event_of_their_type() -> None:
    known = [_known("evt-1", EventState.NEW, event_type="illegal_parking")]
    for event_type in ("illegal_parking", "object_thrown"):
        decision = decide(_condition(minutes=1, event_type=event_type), known, suppression_window=WINDOW)
        assert decision.action is DedupAction.NEW
