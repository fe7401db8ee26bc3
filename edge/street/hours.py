"""When a zone's rules are in force: hour ranges on days of the week, on the device's local clock.

A range is ``"HH:MM-HH:MM"``, end exclusive; ``24:00`` ends at midnight; a range whose end is earlier than
its start runs past midnight (``"22:00-06:00"``), and its after-midnight part belongs to the day it started
on (a Friday night ban covers Saturday 00:00-06:00, not Friday's).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class HourRange:
    start_min: int  # minutes after midnight, 0..1439
    end_min: int  # 1..1440; < start_min: runs past midnight

    @property
    def wraps(self) -> bool:
        return self.end_min < self.start_min


def parse_range(text: str) -> HourRange:
    """``"07:00-09:00"`` -> HourRange; ValueError saying what is wrong otherwise."""
    match = _RANGE.match(text.strip())
    if not match:
        raise ValueError(f"hour range {text!r} must look like '07:00-09:00' (24-hour HH:MM-HH:MM)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    for hour, minute in ((h1, m1), (h2, m2)):
        if minute > 59 or hour > 24 or (hour == 24 and minute != 0):
            raise ValueError(
                f"hour range {text!r}: {hour:02d}:{minute:02d} is not a time of day (00:00 to 24:00)"
            )
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == 1440:
        raise ValueError(f"hour range {text!r} starts at 24:00: write 00:00")
    if start == end:
        raise ValueError(
            f"hour range {text!r} is empty (start equals end); for the whole day write '00:00-24:00'"
        )
    return HourRange(start, end)


def ranges_overlap(a: HourRange, b: HourRange) -> bool:
    """Whether two ranges share a minute of the same day's schedule."""

    def spans(r: HourRange) -> list[tuple[int, int]]:
        return [(r.start_min, 1440), (0, r.end_min)] if r.wraps else [(r.start_min, r.end_min)]

    return any(s1 < e2 and s2 < e1 for s1, e1 in spans(a) for s2, e2 in spans(b))


@dataclass(frozen=True, slots=True)
class Schedule:
    ranges: tuple[HourRange, ...]
    days: frozenset[int]  # 0 = Monday

    @classmethod
    def parse(cls, hours: Sequence[str], days: Sequence[str]) -> Schedule:
        return cls(tuple(parse_range(h) for h in hours), frozenset(DAYS.index(d) for d in days))

    def active(self, local: datetime) -> bool:
        """In force at this local (device-timezone) time."""
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        yesterday = (weekday - 1) % 7
        for r in self.ranges:
            if not r.wraps:
                if weekday in self.days and r.start_min <= minute < r.end_min:
                    return True
            elif (weekday in self.days and minute >= r.start_min) or (
                yesterday in self.days and minute < r.end_min
            ):
                return True
        return False
