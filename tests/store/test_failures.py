"""Restarts and outages: state survives a worker restart; an unreachable, frozen or locked store is a StoreError
(never a hang), and the store works again once it is back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from filter.store import Budget, SqliteStore, Store, StoreError, Window, open_store
from filter.store.redis_store import RedisStore
from tests.store.stores import Clock, RedisServer, StoreFactory, local
from tests.support.ports import free_port

TZ = "Europe/Berlin"
DAY = Budget("agent:a1", Window.DAY, 1000)
HANG = 10.0  # seconds: far above every timeout below; only a hang takes this long
NOON = local(TZ, 2026, 5, 12, 12).timestamp()  # a fixed clock: a real one can cross midnight mid-test


def test_a_restarted_worker_sees_the_same_budgets_and_counts(make: StoreFactory) -> None:
    clock = Clock(local(TZ, 2026, 5, 12, 10).timestamp())
    first = make(tz=TZ, clock=clock)
    assert first.reserve("open", 300, [DAY]).granted
    assert first.reserve("done", 200, [DAY]).granted and first.reconcile("done", 150)
    assert first.hit("team_id", "t1", 5, 10).allowed
    first.close()
    again = make(tz=TZ, clock=clock)  # the process came back: a new store object on the same file or server
    (u,) = again.usage([DAY])
    assert (u.used, u.reserved) == (150, 300)
    assert again.reconcile("open", 250), "a reservation made before the restart can be reconciled after it"
    assert [(x.used, x.reserved) for x in again.usage([DAY])] == [(400, 0)]
    assert again.hit("team_id", "t1", 5, 10).count == 10
    assert not again.hit("team_id", "t1", 1, 10).allowed


def test_sqlite_file_survives_and_is_shared_by_path(tmp_path: Path) -> None:
    path = tmp_path / "budgets.db"
    clock = Clock(local(TZ, 2026, 5, 12, 10).timestamp())
    a = open_store(f"sqlite://{path}", tz=TZ, clock=clock)
    b = open_store(f"sqlite://{path}", tz=TZ, clock=clock)
    assert a.reserve("x", 600, [DAY]).granted
    assert not b.reserve("y", 600, [DAY]).granted, "two openers of one file share one budget"
    a.close()
    b.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_lock_held_too_long_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "budgets.db"
    store = SqliteStore(path, tz=TZ, busy_timeout=0.2, clock=Clock(NOON))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    started = time.monotonic()
    for call in (lambda: store.reserve("r", 1, [DAY]), lambda: store.hit("k", "v", 1, 5)):
        with pytest.raises(StoreError, match="locked"):
            call()
    assert time.monotonic() - started < HANG
    blocker.execute("ROLLBACK")
    assert store.reserve("r", 1, [DAY]).granted
    blocker.close()
    store.close()


def test_sqlite_file_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="sqlite store"):
        SqliteStore(tmp_path / "missing-dir" / "budgets.db")


def every_call(store: Store) -> list[Callable[[], object]]:
    return [lambda: store.reserve("new", 10, [DAY]), lambda: store.reconcile("a", 5), lambda: store.release("a"),
            lambda: store.usage([DAY]), lambda: store.hit("team_id", "t1", 1, 100), store.expire_reservations]


def test_redis_killed_mid_use_is_a_store_error_then_recovers_on_restart(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url, tz=TZ, timeout=0.3, clock=Clock(NOON))
    assert store.reserve("a", 100, [DAY]).granted
    own_redis.kill()
    for call in every_call(store):
        started = time.monotonic()
        with pytest.raises(StoreError, match="redis store"):
            call()
        assert time.monotonic() - started < HANG
    own_redis.start()  # same port; without persistence it starts empty, like a replaced cache node
    assert store.reserve("b", 100, [DAY]).granted
    assert [(u.used, u.reserved) for u in store.usage([DAY])] == [(0, 100)]
    assert store.hit("team_id", "t1", 1, 100).count == 1
    store.close()


def test_frozen_redis_times_out_as_a_store_error_and_state_is_intact_after(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url, tz=TZ, timeout=0.3, clock=Clock(NOON))
    assert store.reserve("a", 100, [DAY]).granted
    own_redis.pause()  # the kernel still accepts connections, the server answers nothing: stuck or overloaded
    try:
        for call in (lambda: store.reserve("new", 10, [DAY]), lambda: store.usage([DAY]), store.expire_reservations,
                     lambda: store.hit("team_id", "t9", 1, 100)):
            started = time.monotonic()
            with pytest.raises(StoreError, match="Timeout"):
                call()
            assert time.monotonic() - started < HANG
    finally:
        own_redis.resume()
    store.client.ping()
    # A timed-out reserve() may still run when the server wakes up: the caller releases that id (releasing an id
    # that is not open is a no-op), and nothing else is left behind.
    store.release("new")
    assert [(u.used, u.reserved) for u in store.usage([DAY])] == [(0, 100)]
    assert store.reconcile("a", 80)
    assert [(u.used, u.reserved) for u in store.usage([DAY])] == [(80, 0)]
    store.close()


def test_redis_nobody_listens_on_is_a_store_error() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0", tz=TZ, timeout=0.3)
    for call in every_call(store):
        with pytest.raises(StoreError, match="ConnectionError"):
            call()


def test_store_urls() -> None:
    with pytest.raises(ValueError, match="sqlite:// or redis://"):
        open_store("postgres://db/budgets")
    with pytest.raises(ValueError, match="file path"):
        open_store("sqlite://")
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)
