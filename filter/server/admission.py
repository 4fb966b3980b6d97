"""Admission: how much work one worker process takes on at once, and the bounds of each admitted Check.

A worker keeps a memory budget (`limits.max_inflight_bytes`): a Check reserves BODY_COPIES times its body's
size before any decoding, and NODE_BYTES per JSON node once the node count is known (filter.formats.limits). A Check that does
not fit is refused at once with 503 `overloaded` and `retry-after` — fail closed, and fast, rather than queued
behind bodies that already hold the memory. A lone Check is always admitted, so one body at the size limit
gets through even when the budget is set below it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from filter.errors import DeadlineExceeded, Overloaded
from filter.formats.limits import BODY_COPIES, DecodeLimits, WorkBudget, work_budget
from filter.headers import RETRY_AFTER
from filter.model import Decision
from filter.reasons import Reason

RETRY_AFTER_SECONDS = 1  # a Check lasts well under a second or two: the budget frees up that fast


class ByteBudget:
    """A counting semaphore over bytes that never waits: `try_take` says yes or no at once. The capacity is
    passed on each take, so a reloaded config applies to the next Check."""

    def __init__(self) -> None:
        self._in_use = 0
        self._holders = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_take(self, n: int, capacity: int, *, new_holder: bool) -> bool:
        with self._lock:
            alone = new_holder and self._holders == 0
            if not alone and self._in_use + n > capacity:
                return False
            self._in_use += n
            self._holders += new_holder
            return True

    def give_back(self, n: int, *, holder_done: bool) -> None:
        with self._lock:
            self._in_use -= n
            self._holders -= holder_done


class _Ticket:
    """One admitted Check's share of the budget; grows as the Check learns what its body costs."""

    __slots__ = ("budget", "capacity", "held")

    def __init__(self, budget: ByteBudget, capacity: int, held: int) -> None:
        self.budget = budget
        self.capacity = capacity
        self.held = held

    def grow(self, n: int) -> None:
        if not self.budget.try_take(n, self.capacity, new_holder=False):
            raise overloaded()
        self.held += n


def overloaded() -> Overloaded:
    return Overloaded("the content filter is busy with other large requests; retry shortly")


def with_retry_after(decision: Decision) -> Decision:
    """An `overloaded` answer tells the client when to come back."""
    if decision.reason != Reason.OVERLOADED:
        return decision
    return replace(decision, headers={**decision.headers, RETRY_AFTER: str(RETRY_AFTER_SECONDS)})


class Admission:
    """One per worker process, shared by its Check threads."""

    def __init__(self) -> None:
        self.budget = ByteBudget()

    @contextmanager
    def admit(self, body_bytes: int, limits: DecodeLimits, seconds_left: float | None) -> Iterator[WorkBudget]:
        """Reserve the memory a body of `body_bytes` needs and open the Check's work budget (CPU time, the
        caller's deadline, JSON nodes).

        Raises Overloaded or DeadlineExceeded (RequestErrors, answered as 503) when the Check cannot start.
        `seconds_left` is the gRPC deadline as the server sees it (`context.time_remaining()`).
        """
        if seconds_left is not None and seconds_left <= 0:
            raise DeadlineExceeded("the gateway's time for this check ran out before it started; retry later")
        deadline = None if seconds_left is None else time.monotonic() + seconds_left
        capacity, charge = limits.max_inflight_bytes, body_bytes * BODY_COPIES
        if not self.budget.try_take(charge, capacity, new_holder=True):
            raise overloaded()
        ticket = _Ticket(self.budget, capacity, charge)
        try:
            with work_budget(limits, deadline, on_charge=ticket.grow, body_bytes=body_bytes) as work:
                yield work
        finally:
            self.budget.give_back(ticket.held, holder_done=True)
