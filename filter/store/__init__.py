"""Token budgets and shared request rates: an embedded SQLite store (one host) or Redis (all replicas).

    store = open_store("sqlite:///var/lib/llm-filter/store.db", tz="Europe/Berlin")
    budgets = [Budget("team:t1", Window.DAY, 2_000_000), Budget("team:t1", Window.MONTH, 40_000_000)]
    r = store.reserve(decision_id, estimated_tokens, budgets)
    if not r.granted: ... 429, Retry-After r.denial.reset_seconds
    ... later: store.reconcile(decision_id, real_tokens)  or  store.release(decision_id)
    store.hit("team_id", "t1", 1, 600)  -> RateHit(count, reset_seconds, limit); .allowed

The rules every store keeps (atomic reservations, expiry rule, errors) are in filter/store/base.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from filter.store.base import DEFAULT_RESERVATION_TIMEOUT, RATE_WINDOW_SECONDS, Store
from filter.store.model import Budget, Denial, RateHit, Reservation, Span, StoreError, Usage, Window, span
from filter.store.sqlite_store import SqliteStore

__all__ = ["Budget", "Denial", "RateHit", "Reservation", "Span", "Store", "StoreError", "Usage", "Window", "open_store",
           "span", "SqliteStore", "DEFAULT_RESERVATION_TIMEOUT", "RATE_WINDOW_SECONDS"]


def open_store(url: str, *, tz: str | ZoneInfo = "UTC", clock: Callable[[], float] = time.time,
               reservation_timeout: float = DEFAULT_RESERVATION_TIMEOUT, timeout: float = 0.5) -> Store:
    """`sqlite:///abs/path.db` (or `sqlite://rel/path.db`), or `redis://host:port/db` / `rediss://...`.

    `timeout`: seconds a Redis call or a SQLite lock wait may take before StoreError.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = unquote(url[len("sqlite://"):])
        if not path:
            raise ValueError("sqlite store URL needs a file path: sqlite:///var/lib/llm-filter/store.db")
        return SqliteStore(path, tz=tz, clock=clock, reservation_timeout=reservation_timeout, busy_timeout=timeout)
    if scheme in ("redis", "rediss", "unix"):
        from filter.store.redis_store import RedisStore  # the redis client is only imported when it is used

        return RedisStore(url, tz=tz, clock=clock, reservation_timeout=reservation_timeout, timeout=timeout)
    raise ValueError(f"store URL must start with sqlite:// or redis://, not {url.split(':', 1)[0]!r}")
