"""Polling for a condition in tests that run real brokers, servers and agents."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from citywatch import polling

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float = 30.0, what: str = "condition") -> T:
    """Poll until ``predicate()`` is truthy and return it; fail naming ``what`` after a generous timeout."""
    value = polling.wait_until(predicate, timeout_s=timeout_s)
    if not value:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last value {value!r})")
    return value
