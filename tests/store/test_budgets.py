"""Token budgets, the same behaviour from the SQLite and the Redis store: reserve, reconcile, release, expiry."""

from __future__ import annotations

import pytest

from filter.store import Budget, Window
from tests.store.stores import Clock, StoreFactory, local

TZ = "Europe/Berlin"
DAY = Budget("team:t1", Window.DAY, 1000)
MONTH = Budget("team:t1", Window.MONTH, 5000)
PROJECT = Budget("project:p1", Window.DAY, 300)


def clock_at(*parts: int) -> Clock:
    return Clock(local(TZ, *parts).timestamp())


def used_reserved(store: object, budget: Budget) -> tuple[int, int]:
    (u,) = store.usage([budget])  # type: ignore[attr-defined]
    return u.used, u.reserved


def test_reserve_counts_against_every_budget_and_usage_shows_it(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    r = store.reserve("d1", 200, [DAY, MONTH, PROJECT])
    assert r.granted and r.amount == 200 and r.denial is None
    usage = {u.budget: u for u in store.usage([DAY, MONTH, PROJECT])}
    assert [(usage[b].used, usage[b].reserved, usage[b].remaining) for b in (DAY, MONTH, PROJECT)] == [
        (0, 200, 800), (0, 200, 4800), (0, 200, 100)]
    assert usage[DAY].window_id == "2026-05-12" and usage[MONTH].window_id == "2026-05"


def test_over_any_budget_reserves_nothing_and_names_that_budget(make: StoreFactory) -> None:
    clock = clock_at(2026, 5, 12, 22, 0)
    store = make(tz=TZ, clock=clock)
    assert store.reserve("d1", 250, [DAY, PROJECT]).granted
    r = store.reserve("d2", 100, [DAY, MONTH, PROJECT])  # fits the day and month, not the project's 300
    assert not r.granted and r.denial is not None
    d = r.denial
    assert d.budget == PROJECT and d.limit == 300 and d.remaining == 50 and d.requested == 100
    assert d.reset_seconds == 2 * 3600  # local midnight is two hours away: the Retry-After
    assert d.resets_at == local(TZ, 2026, 5, 13)
    assert used_reserved(store, DAY) == (0, 250), "all or nothing: the day budget got nothing from d2"
    assert used_reserved(store, MONTH) == (0, 0)
    assert store.reserve("d3", 50, [DAY, MONTH, PROJECT]).granted, "what is left still fits"


def test_reconcile_down_and_up_and_release(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    assert store.reserve("down", 400, [DAY]).granted
    assert store.reserve("up", 100, [DAY]).granted
    assert store.reserve("failed", 300, [DAY]).granted
    assert used_reserved(store, DAY) == (0, 800)
    assert store.reconcile("down", 120)
    assert used_reserved(store, DAY) == (120, 400)
    assert store.release("failed")
    assert used_reserved(store, DAY) == (120, 100)
    assert store.reconcile("up", 1100), "the real amount may be larger than reserved, even over the limit"
    assert used_reserved(store, DAY) == (1220, 0)
    r = store.reserve("next", 1, [DAY])
    assert not r.granted and r.denial is not None and r.denial.remaining == 0 and r.denial.used == 1220


def test_settling_twice_or_an_unknown_id_changes_nothing(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    assert store.reserve("d1", 100, [DAY]).granted
    assert store.reconcile("d1", 80)
    assert not store.reconcile("d1", 80)
    assert not store.release("d1")
    assert not store.reconcile("never-reserved", 10)
    assert not store.release("never-reserved")
    assert used_reserved(store, DAY) == (80, 0)


def test_reserving_an_open_id_again_reserves_nothing_more(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    assert store.reserve("d1", 100, [DAY]).granted
    again = store.reserve("d1", 100, [DAY])  # a caller's retry after a timeout
    assert again.granted and again.amount == 100
    assert used_reserved(store, DAY) == (0, 100)


def test_expiry_rule_charges_an_unsettled_reservation_in_full(make: StoreFactory) -> None:
    clock = clock_at(2026, 5, 12, 10, 0)
    store = make(tz=TZ, clock=clock, reservation_timeout=600)
    assert store.reserve("lost", 300, [DAY, MONTH]).granted
    assert store.reserve("kept", 100, [DAY]).granted
    clock.advance(599)
    assert store.expire_reservations() == 0
    assert store.reconcile("kept", 50)
    clock.advance(1)
    assert store.expire_reservations() == 1
    assert used_reserved(store, DAY) == (350, 0)
    assert used_reserved(store, MONTH) == (300, 0)
    assert not store.reconcile("lost", 10), "expired: a late reconcile changes nothing"
    assert used_reserved(store, DAY) == (350, 0)


def test_expire_reservations_takes_an_explicit_now(make: StoreFactory) -> None:
    clock = clock_at(2026, 5, 12, 10, 0)
    store = make(tz=TZ, clock=clock, reservation_timeout=600)
    assert store.reserve("a", 10, [DAY]).granted
    assert store.expire_reservations(clock.now + 599) == 0
    assert store.expire_reservations(clock.now + 600) == 1
    assert used_reserved(store, DAY) == (10, 0)


def test_reserve_settles_overdue_reservations_first(make: StoreFactory) -> None:
    """A caller that crashed cannot hold a budget forever: the next reserve applies the expiry rule."""
    clock = clock_at(2026, 5, 12, 10, 0)
    store = make(tz=TZ, clock=clock, reservation_timeout=600)
    assert store.reserve("crashed", 900, [DAY]).granted
    assert not store.reserve("b", 200, [DAY]).granted
    clock.advance(601)
    assert store.reserve("c", 100, [DAY]).granted, "the expired 900 is charged, 100 still fits"
    assert used_reserved(store, DAY) == (900, 100)


def test_a_reservation_counts_in_the_window_it_was_made_in(make: StoreFactory) -> None:
    clock = clock_at(2026, 5, 12, 23, 59)
    store = make(tz=TZ, clock=clock)
    assert store.reserve("late", 500, [DAY]).granted
    clock.set(local(TZ, 2026, 5, 13, 0, 1))
    assert store.reconcile("late", 700)
    assert used_reserved(store, DAY) == (0, 0), "the new day starts empty"
    clock.set(local(TZ, 2026, 5, 12, 23, 59, 30))
    assert used_reserved(store, DAY) == (700, 0), "the old day was charged"


def test_zero_limit_refuses_and_zero_amount_fits(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    closed = Budget("agent:a1", Window.DAY, 0)
    assert not store.reserve("d1", 1, [closed]).granted
    assert store.reserve("d2", 0, [closed]).granted
    assert store.release("d2")
    assert store.reserve("d5", 0, [closed, DAY]).granted and store.reconcile("d5", 0)
    assert store.reserve("d3", 1000, [DAY]).granted, "exactly the limit fits"
    assert not store.reserve("d4", 1, [DAY]).granted


def test_the_same_budget_twice_counts_once_with_the_smaller_limit(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    strict = Budget(DAY.key, Window.DAY, 100)
    r = store.reserve("d1", 150, [DAY, strict])
    assert not r.granted and r.denial is not None and r.denial.limit == 100
    assert store.reserve("d2", 100, [DAY, strict]).granted
    assert used_reserved(store, DAY) == (0, 100)


def test_amounts_must_be_whole_token_counts(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    for bad in (-1, 1.5, True, 10**13):
        with pytest.raises(ValueError):
            store.reserve("d1", bad, [DAY])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.reconcile("d1", -5)
    with pytest.raises(ValueError):
        store.hit("team_id", "t1", 1, 10, window_seconds=0)
    with pytest.raises(ValueError):
        Budget("team:t1", "week", 10)  # type: ignore[arg-type]
    assert Budget("team:t1", "day", 1000) == DAY  # type: ignore[arg-type]
    assert used_reserved(store, DAY) == (0, 0)


def test_keys_with_separators_do_not_collide(make: StoreFactory) -> None:
    store = make(tz=TZ, clock=clock_at(2026, 5, 12, 10, 0))
    a, b = Budget("team:a:day", Window.DAY, 10), Budget("team:a", Window.DAY, 10)
    assert store.reserve("d1", 10, [a]).granted
    assert store.reserve("d2", 10, [b]).granted
    assert used_reserved(store, a) == (0, 10) and used_reserved(store, b) == (0, 10)
