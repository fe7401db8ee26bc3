"""Polling for a condition in tests that run real brokers, servers and agents."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float = 30.0, what: str = "condition") -> T:
    """Poll until ``predicate()`` is truthy and return it; fail naming ``what`` after a generous timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last value {value!r})")
        time.sleep(0.05)
