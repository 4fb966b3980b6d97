"""Values the stores take and answer with, and the calendar windows budgets count in.

A budget counts tokens in calendar windows of the configured IANA time zone: a day starts at local midnight and a
month at 00:00 on the local 1st, so a DST day lasts 23 or 25 hours. Where local midnight does not exist (a zone
that springs forward at 00:00) the day starts at the first instant of that date.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from filter.errors import FilterError


class StoreError(FilterError):
    """The store cannot answer now (unreachable, too slow, locked, broken): the caller decides fail closed or open."""


class Window(StrEnum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True)
class Budget:
    """At most `limit` tokens per `window` for one scope key (`team:t1`, `project:p1`, `agent:a1`, ...)."""

    key: str
    window: Window
    limit: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", Window(self.window))  # "day"/"month" from a config file work too
        if not self.key:
            raise ValueError("budget key must not be empty")
        if self.limit < 0:
            raise ValueError(f"budget {self.key}: limit must be >= 0, not {self.limit}")

    @property
    def name(self) -> str:
        return f"{self.key}/{self.window}"


@dataclass(frozen=True)
class Span:
    """One calendar window: `id` names it in its zone (`2026-03-29`, `2026-03`); start/end are epoch seconds."""

    window: Window
    id: str
    start: float
    end: float
    tz: ZoneInfo

    def reset_seconds(self, now: float) -> int:
        """Whole seconds until the window ends, at least 1 (a Retry-After value)."""
        return max(1, math.ceil(self.end - now))

    @property
    def resets_at(self) -> datetime:
        return datetime.fromtimestamp(self.end, self.tz)


def _local_start(day: date, tz: ZoneInfo) -> float:
    # fold=0: an ambiguous midnight is its first occurrence; a missing one maps to the instant the date begins.
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def span(window: Window, now: float, tz: ZoneInfo) -> Span:
    """The window of kind `window` that contains the instant `now` (epoch seconds) in zone `tz`."""
    today = datetime.fromtimestamp(now, tz).date()
    if window is Window.DAY:
        first, following, ident = today, today + timedelta(days=1), today.isoformat()
    else:
        first = today.replace(day=1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        ident = f"{first.year:04d}-{first.month:02d}"
    start, end = _local_start(first, tz), _local_start(following, tz)
    if now < start:  # a missing midnight on this date: the day began at the transition, which `now` is past
        start = now
    return Span(window, ident, start, end, tz)


@dataclass(frozen=True)
class Denial:
    """Why a reservation was refused: the first budget it would take over its limit."""

    budget: Budget
    requested: int
    used: int
    reserved: int
    reset_seconds: int  # until this budget's window resets: the Retry-After
    resets_at: datetime  # in the configured zone

    @property
    def limit(self) -> int:
        return self.budget.limit

    @property
    def remaining(self) -> int:
        return max(0, self.budget.limit - self.used - self.reserved)


@dataclass(frozen=True)
class Reservation:
    """The answer to reserve(): granted (denial is None) or refused with nothing reserved anywhere."""

    id: str
    amount: int
    denial: Denial | None = None

    @property
    def granted(self) -> bool:
        return self.denial is None


@dataclass(frozen=True)
class Usage:
    """One budget's current window: tokens charged (`used`) and held by open reservations (`reserved`)."""

    budget: Budget
    window_id: str
    used: int
    reserved: int
    reset_seconds: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.budget.limit - self.used - self.reserved)


@dataclass(frozen=True)
class RateHit:
    """The answer to hit(): the window's count including this hit, and seconds until the window resets.

    A hit over the limit is refused and not counted (`count` then says what it would have made), so a refused
    request does not use up the allowance of the ones after it.
    """

    count: int
    reset_seconds: int
    limit: int

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit


MAX_AMOUNT = 10**12  # exact in every store (Redis scripts compute in doubles)


def check_amount(what: str, amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"{what} must be an int in 0..{MAX_AMOUNT}, not {amount!r}")


def check_rate(amount: int, window_seconds: int) -> None:
    check_amount("amount", amount)
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, int) or window_seconds < 1:
        raise ValueError(f"window_seconds must be an int >= 1, not {window_seconds!r}")


def check_id(reservation_id: str) -> None:
    if not reservation_id or len(reservation_id) > 256:
        raise ValueError("reservation id must be 1..256 characters")


def strictest(budgets: list[Budget] | tuple[Budget, ...]) -> list[Budget]:
    """One budget per (key, window), the smallest limit wins; order of first appearance kept."""
    chosen: dict[tuple[str, Window], Budget] = {}
    for b in budgets:
        have = chosen.get((b.key, b.window))
        if have is None or b.limit < have.limit:
            chosen[(b.key, b.window)] = b
    return list(chosen.values())
