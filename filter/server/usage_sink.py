"""Where observed usage goes: the store's reservations are settled, metrics are counted.

The usage observer (filter/server/extproc.py) calls `UsageSink.on_usage` once per provider response, on its
event loop. A store call can block (a Redis round trip, a SQLite lock wait), so the sink only queues the
settlement; one thread per worker applies it:

- usage reported or estimated, status < 400: reconcile(decision id, input + output tokens);
- an error status (>= 400) or no response at all: release(decision id), nothing is charged;
- the same for `<decision id>:usd` at the real cost, when a USD reservation was made for it (filter.budgets):
  at the price the request's own metadata carries (`UsageInfo.usd_price`: the Check may have run in another
  worker), else at the price this worker remembers from its own Check.

Metrics attribute the tokens to the verified identity in the request's metadata the same way (else to what
this worker's Check remembered, else `unknown`).

A decision without a reservation (no budget applied) answers False from the store: nothing to do. A store
error is logged and counted (llm_filter_store_errors), never raised; the reservation then stays open and the
store's expiry rule charges it in full after `reservation_timeout_seconds`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from filter import budgets
from filter.server.extproc import UsageInfo, log_usage
from filter.store import Budget, RateHit, Reservation, Store, StoreError
from filter.store import Usage as BudgetUsage
from filter.store.model import MAX_AMOUNT
from filter.telemetry import Telemetry
from filter.usage import Usage

log = logging.getLogger("llm_content_filter")
T = TypeVar("T")
QUEUE_SIZE = 10_000  # settlements waiting for the store; beyond this they are dropped (and expire in full)


class InstrumentedStore:
    """A Store whose every call is timed (llm_filter_store_duration) and whose failures are counted
    (llm_filter_store_errors{operation}) before the StoreError goes on to the caller."""

    def __init__(self, store: Store, telemetry: Telemetry) -> None:
        self._store = store
        self._telemetry = telemetry

    def _timed(self, operation: str, call: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        ok = False
        try:
            result = call(*args)
            ok = True
            return result
        finally:
            self._telemetry.store_call(operation, (time.perf_counter() - started) * 1000, ok)

    def reserve(self, reservation_id: str, amount: int, budgets: Sequence[Budget]) -> Reservation:
        return self._timed("reserve", self._store.reserve, reservation_id, amount, budgets)

    def reconcile(self, reservation_id: str, actual: int) -> bool:
        return self._timed("reconcile", self._store.reconcile, reservation_id, actual)

    def release(self, reservation_id: str) -> bool:
        return self._timed("release", self._store.release, reservation_id)

    def expire_reservations(self, now: float | None = None) -> int:
        return self._timed("expire", self._store.expire_reservations, now)

    def usage(self, budgets: Sequence[Budget]) -> list[BudgetUsage]:
        return self._timed("usage", self._store.usage, budgets)

    def hit(self, key: str, value: str, amount: int, limit: int, window_seconds: int = 60) -> RateHit:
        return self._timed("hit", self._store.hit, key, value, amount, limit, window_seconds)

    def close(self) -> None:
        self._store.close()


class UsageSink:
    """The usage observer's callback: counts usage metrics and settles reservations on its own thread."""

    def __init__(self, store: Store | None, telemetry: Telemetry, queue_size: int = QUEUE_SIZE) -> None:
        self._store = store
        self._telemetry = telemetry
        self._queue: queue.Queue[tuple[str, str, int] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        if store is not None:
            self._thread = threading.Thread(target=self._run, name="usage-settle", daemon=True)
            self._thread.start()

    def on_usage(self, decision_id: str | None, provider: str, model: str | None, usage: Usage | None,
                 status: int, info: UsageInfo | None = None) -> None:
        log_usage(decision_id, provider, model, usage, status)
        self._telemetry.usage(provider, usage, status, decision_id, model,
                              identity=info.identity if info is not None else None,
                              asked=info.model if info is not None else None)
        if self._store is None or decision_id is None:
            return
        remembered = budgets.settled_price(decision_id)  # always asked: this worker forgets it either way
        # a USD reservation made for it, by any worker (its metadata) or by this one: settled beside the tokens
        price = info.usd_price if info is not None and info.usd_price is not None else remembered
        if usage is not None and status < 400:
            items = [("reconcile", decision_id, usage.total_tokens)]
            if price is not None:
                items.append(("reconcile", budgets.usd_id(decision_id),
                              min(price.cost(usage.input_tokens, usage.output_tokens), MAX_AMOUNT)))
        else:
            items = [("release", decision_id, 0)] + ([("release", budgets.usd_id(decision_id), 0)] if price else [])
        for item in items:
            try:
                self._queue.put_nowait(item)
            except queue.Full:  # the store is far behind: this reservation expires (charged in full) instead
                log.error("usage of decision %s not settled: %d settlements already waiting", decision_id,
                          self._queue.maxsize)
                self._telemetry.store_errors.add(1, {"operation": item[0]})

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._settle(*item)

    def _settle(self, operation: str, decision_id: str, tokens: int) -> None:
        assert self._store is not None
        try:
            if operation == "reconcile":
                self._store.reconcile(decision_id, tokens)
            else:
                self._store.release(decision_id)
        except StoreError as e:
            log.error("%s of decision %s failed: %s", operation, decision_id, e)
        except Exception:  # a bug here must not stop the thread that settles every later response
            log.exception("%s of decision %s failed", operation, decision_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Settle what is queued (up to `timeout` seconds), then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)
