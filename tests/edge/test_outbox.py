"""The on-disk outbox: order, durability across reopen, the bound (telemetry dropped, events never)."""

from __future__ import annotations

from pathlib import Path

from edge.outbox import Outbox


def test_rows_come_back_in_order_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for i in range(10):
        outbox.append("telemetry", f"t{i}".encode(), droppable=True)
    outbox.delete([r.id for r in outbox.peek(limit=3)])  # acknowledged by the broker
    assert outbox.depth == 7
    outbox.close()
    reopened = Outbox(path)
    assert reopened.depth == 7
    assert [r.payload for r in reopened.peek(limit=100)] == [f"t{i}".encode() for i in range(3, 10)]
    after = reopened.peek(limit=2)[-1].id
    assert [r.payload for r in reopened.peek(after_id=after, limit=2)] == [b"t5", b"t6"]
    reopened.close()


def test_bound_drops_oldest_telemetry_never_events(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_messages=100)
    for i in range(150):
        if i % 10 == 0:
            outbox.append("event", f"e{i}".encode(), droppable=False)
        else:
            outbox.append("telemetry", f"t{i}".encode(), droppable=True)
    payloads = [r.payload for r in outbox.peek(limit=1000)]
    assert outbox.depth == len(payloads) == 100
    assert outbox.dropped == 50
    assert [p for p in payloads if p.startswith(b"e")] == [f"e{i}".encode() for i in range(0, 150, 10)]
    telemetry = [p for p in payloads if p.startswith(b"t")]
    assert telemetry[-1] == b"t149" and b"t1" not in telemetry  # the oldest went first
    assert payloads == sorted(payloads, key=lambda p: int(p[1:]))  # still in order
    outbox.close()


def test_events_alone_may_exceed_the_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_messages=100)
    for i in range(120):
        outbox.append("event", f"e{i}".encode(), droppable=False)
    assert outbox.depth == 120 and outbox.dropped == 0
    outbox.close()


def test_session_numbers_persist_and_increase(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert [outbox.next_session() for _ in range(3)] == [1, 2, 3]
    outbox.close()
    assert Outbox(tmp_path / "o.sqlite3").next_session() == 4


def test_numbered_rows_carry_their_sequence_and_leave_by_runs(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    for _ in range(6):
        outbox.append("telemetry", lambda seq: f"t{seq}".encode(), droppable=True, awaits_receipt=True)
    rows = outbox.peek(limit=10)
    assert [(r.id, r.payload, r.awaits_receipt) for r in rows] == [
        (i, f"t{i}".encode(), True) for i in range(1, 7)
    ]
    assert outbox.delete_runs([(1, 2), (4, 5)]) == 4
    assert [r.id for r in outbox.peek()] == [3, 6] and outbox.depth == 2 and outbox.oldest_id() == 3
    outbox.delete_runs([(3, 6)])
    assert outbox.depth == 0 and outbox.oldest_id() is None
    outbox.close()
    # A sequence is never given out twice, even once its row is gone and the file reopened: a receipt
    # for an old number can never delete a newer message.
    reopened = Outbox(tmp_path / "o.sqlite3")
    assert reopened.last_id == 6
    assert reopened.append("event", b"e", droppable=False) == 7
    reopened.close()
