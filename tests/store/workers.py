"""Worker-process bodies for the concurrency tests (spawned: each opens its own store, as a filter worker does)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from filter.store import Budget, Window
from tests.store.stores import make_store

FIXED_NOW = 1_780_000_000.0  # one instant for every process: no window rolls over mid-test


def reserve_many(location: str, worker: int, attempts: int, amount: int, limit: int, go: Barrier,
                 out: Queue[list[int] | str]) -> None:
    """Try `attempts` reservations of `amount` against one small daily budget (and a roomy monthly one)."""
    try:
        store = make_store(location, tz="Europe/Berlin", clock=lambda: FIXED_NOW)
        budgets = [Budget("team:small", Window.DAY, limit), Budget("team:small", Window.MONTH, 10 * limit)]
        go.wait(60)  # every worker has its store open: they all start at once
        granted = [amount for i in range(attempts) if store.reserve(f"w{worker}-{i}", amount, budgets).granted]
        store.close()
        out.put(granted)
    except Exception as e:  # reported, so the test fails with the reason instead of waiting for a dead worker
        out.put(f"worker {worker}: {type(e).__name__}: {e}")


def hit_many(location: str, hits: int, limit: int, go: Barrier, out: Queue[list[int] | str]) -> None:
    """Count `hits` requests for one descriptor; report the counts of the admitted ones."""
    try:
        store = make_store(location, clock=lambda: FIXED_NOW + 10)
        go.wait(60)  # every worker has its store open: they all start at once
        admitted = []
        for _ in range(hits):
            r = store.hit("team_id", "t1", 1, limit)
            if r.allowed:
                admitted.append(r.count)
        store.close()
        out.put(admitted)
    except Exception as e:
        out.put(f"{type(e).__name__}: {e}")
