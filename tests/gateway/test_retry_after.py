"""One ``Retry-After`` parser for the webhook worker and the InfluxDB store: seconds or an HTTP date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from gateway.retry_after import parse_retry_after

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),  # a negative wait means now
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),  # "Mon, 01 Jun 2026 08:00:30 GMT"
        ("Mon, 01 Jun 2026 08:01:00 -0000", 60.0),  # a date without a zone is GMT
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # a date already past means now
    ],
    ids=["seconds", "padded", "zero", "fraction", "negative", "http-date", "date-no-zone", "past-date"],
)
def test_delay_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "  ", "soon", "Mon, 32 Foo 2026", "nan", "inf"])
def test_absent_or_unreadable_leaves_the_callers_backoff(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_an_http_date_counts_from_the_real_clock_by_default() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= (parse_retry_after(later) or 0) <= 90
