"""Waiting on a condition with a deadline: the only way a test waits for another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str | Callable[[], str], interval: float = 0.1) -> T:
    """Poll `condition` until it returns something true, and return that; fail naming `what` at the deadline.

    `what` says what was awaited (and may be a callable, for details only known at the deadline,
    such as a worker's log).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g}s in vain for {what() if callable(what) else what}")
        time.sleep(interval)
