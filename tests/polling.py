"""The one way the tests wait: poll until something holds, with a deadline and a message
that says what never happened (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    read: Callable[[], T],
    good: Callable[[T], object],
    timeout: float = 10,
    message: str | Callable[[], str] = "condition never held",
    interval: float = 0.02,
) -> T:
    """The first value `read()` returns that `good` accepts; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if good(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


def wait_until(
    done: Callable[[], object],
    timeout: float = 10,
    message: str | Callable[[], str] = "condition never held",
    interval: float = 0.02,
) -> None:
    poll(done, bool, timeout, message, interval)
