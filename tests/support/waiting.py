"""Waiting for a condition (poll it) rather than sleeping a fixed time that is too short on a busy machine."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(what: str, condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.1,
               error: type[Exception] = AssertionError) -> None:
    """Call `condition` every `interval` seconds until it is true; raise `error` naming `what` after `timeout`
    seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise error(f"{what}: not within {timeout}s")
        time.sleep(interval)


def avoid_day_edge(margin: float = 240.0) -> None:
    """Day budgets count in UTC calendar days: a test that reserves and then reads a day's figures must not
    straddle midnight (if fewer than `margin` seconds are left of this UTC day, sleep into the next)."""
    into = time.time() % 86400
    if into > 86400 - margin:
        time.sleep(86400 - into + 1.0)


def avoid_minute_edge(margin: float = 6.0) -> None:
    """Rate limits count in fixed one-minute windows: start a short burst well inside one (if fewer than
    `margin` seconds are left of this window, sleep into the next: the wait is the point, there is nothing
    to poll)."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.5)
