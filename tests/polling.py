"""The one way the tests wait: poll a condition until it holds, with a deadline and a
message that says what never happened (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    done: Callable[[], object],
    timeout: float = 10,
    message: str | Callable[[], str] = "condition never held",
    interval: float = 0.02,
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)
