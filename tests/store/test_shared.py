"""One limit for many workers: several PROCESSES on one store never overspend, and rate counts are exact."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from filter.store import Budget, Window
from tests.store import workers
from tests.store.stores import Clock, StoreFactory, make_store

PROCESSES = 5
MINUTE = 29_666_667 * 60.0  # an instant at the start of a minute (windows align to the epoch)


def run_workers(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[list[int]]:
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, go, out)) for a in args]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [r for r in results if isinstance(r, str)]
    assert not errors, errors
    return results


def test_processes_reserving_at_once_never_overspend(store_location: str) -> None:
    limit, amount, attempts = 1000, 7, 60  # 300 attempts of 7 against 1000: 142 fit, 6 tokens stay free
    results = run_workers(workers.reserve_many, [(store_location, w, attempts, amount, limit) for w in range(PROCESSES)])
    granted = sum(sum(r) for r in results)
    assert granted == 142 * amount, f"granted {granted}: more than the limit, or lost updates"
    store = make_store(store_location, tz="Europe/Berlin", clock=lambda: workers.FIXED_NOW)
    day, month = store.usage([Budget("team:small", Window.DAY, limit), Budget("team:small", Window.MONTH, 10 * limit)])
    assert (day.reserved, month.reserved) == (granted, granted)
    store.close()


def test_rate_limit_across_processes_is_exact(store_location: str) -> None:
    limit = 173
    results = run_workers(workers.hit_many, [(store_location, 60, limit) for _ in range(PROCESSES)])
    admitted = sorted(c for r in results for c in r)
    assert admitted == list(range(1, limit + 1)), "each count from 1 to the limit handed out exactly once"


def test_hit_counts_per_window_and_descriptor(make: StoreFactory) -> None:
    clock = Clock(MINUTE + 20)  # 20 s into a minute
    store = make(clock=clock)
    assert [(h.count, h.reset_seconds, h.allowed) for h in (store.hit("team_id", "t1", 1, 3) for _ in range(4))] == [
        (1, 40, True), (2, 40, True), (3, 40, True), (4, 40, False)]
    assert store.hit("team_id", "t2", 1, 3).count == 1, "another value has its own count"
    assert store.hit("workspace_id", "t1", 1, 3).count == 1, "another key has its own count"
    clock.advance(39.5)
    h = store.hit("team_id", "t1", 1, 3)
    assert (h.count, h.reset_seconds, h.allowed) == (4, 1, False)
    clock.advance(0.5)  # the next minute
    assert clock.now == MINUTE + 60
    assert store.hit("team_id", "t1", 1, 3).count == 1


def test_a_refused_hit_does_not_use_up_the_allowance(make: StoreFactory) -> None:
    store = make(clock=Clock(1_780_000_000.0))
    assert store.hit("workspace_id", "w1", 8, 10).allowed
    big = store.hit("workspace_id", "w1", 5, 10)
    assert (big.count, big.allowed) == (13, False)
    small = store.hit("workspace_id", "w1", 2, 10)
    assert (small.count, small.allowed) == (10, True)
    assert not store.hit("workspace_id", "w1", 1, 10).allowed


def test_window_length_is_a_parameter(make: StoreFactory) -> None:
    clock = Clock(MINUTE + 3)
    store = make(clock=clock)
    assert store.hit("k", "v", 1, 5, window_seconds=10).reset_seconds == 7
    assert store.hit("k", "v", 1, 5).reset_seconds == 57
    clock.advance(7)
    assert store.hit("k", "v", 1, 5, window_seconds=10).count == 1, "a new 10 s window"
    assert store.hit("k", "v", 1, 5).count == 2, "the same minute"
