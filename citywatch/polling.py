"""Waiting for a condition by polling it: the one loop for the bench, the brokers, the demo and the tests.

Standard library only: edge devices import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float, interval_s: float = 0.05) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    After ``timeout_s`` it returns the last (falsy) value instead, so ``if not wait_until(...)`` tells a
    timeout. The predicate is called once more at the deadline: a slow poll never misses the end.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        remaining = deadline - time.monotonic()
        if value or remaining <= 0:
            return value
        time.sleep(min(interval_s, remaining))
