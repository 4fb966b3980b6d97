"""Calendar windows in the configured zone: a day from local midnight, a month from the local 1st, DST-correct."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from filter.store import Budget, Window, span
from tests.store.stores import Clock, StoreFactory, local

BERLIN = "Europe/Berlin"
DAY = Budget("workspace:w1", Window.DAY, 100)
MONTH = Budget("workspace:w1", Window.MONTH, 150)


def fill(store: object, budget: Budget, rid: str) -> None:
    assert store.reserve(rid, budget.limit, [budget]).granted  # type: ignore[attr-defined]


def test_a_full_day_opens_again_at_local_midnight(make: StoreFactory) -> None:
    clock = Clock(local(BERLIN, 2026, 5, 12, 0, 0).timestamp())
    store = make(tz=BERLIN, clock=clock)
    fill(store, DAY, "morning")
    clock.set(local(BERLIN, 2026, 5, 12, 23, 59, 59))
    r = store.reserve("late", 1, [DAY])
    assert not r.granted and r.denial is not None and r.denial.reset_seconds == 1
    clock.set(local(BERLIN, 2026, 5, 13))
    assert store.reserve("next-day", 100, [DAY]).granted
    # midnight in Berlin is 22:00 UTC in summer: the UTC date is not what counts
    assert local(BERLIN, 2026, 5, 13).utcoffset().total_seconds() == 7200  # type: ignore[union-attr]


@pytest.mark.parametrize(("day", "hours"), [((2026, 3, 29), 23), ((2026, 10, 25), 25)])
def test_a_dst_day_in_berlin_lasts_as_long_as_the_clocks_say(make: StoreFactory, day: tuple[int, int, int],
                                                               hours: int) -> None:
    clock = Clock(local(BERLIN, *day, 0, 30).timestamp())
    store = make(tz=BERLIN, clock=clock)
    fill(store, DAY, "early")
    r = store.reserve("more", 1, [DAY])
    assert r.denial is not None and r.denial.reset_seconds == hours * 3600 - 1800
    clock.set(local(BERLIN, *day, 23, 59, 59))
    assert not store.reserve("still-today", 1, [DAY]).granted
    clock.advance(1)
    assert store.reserve("tomorrow", 100, [DAY]).granted


def test_the_month_runs_to_the_local_first_and_the_later_denial_wins(make: StoreFactory) -> None:
    clock = Clock(local(BERLIN, 2026, 1, 31, 23, 0).timestamp())
    store = make(tz=BERLIN, clock=clock)
    assert store.reserve("jan", 150, [DAY, MONTH]).granted is False  # the day allows 100 only
    assert store.reserve("jan", 100, [DAY, MONTH]).granted
    clock.set(local(BERLIN, 2026, 2, 1, 0, 0))
    assert store.reserve("feb-1", 100, [DAY, MONTH]).granted, "a new day and a new month"
    clock.set(local(BERLIN, 2026, 2, 2, 9, 0))
    r = store.reserve("feb-2", 60, [DAY, MONTH])  # the day is fresh, the month has 50 left
    assert r.denial is not None and r.denial.budget == MONTH and r.denial.remaining == 50
    assert r.denial.resets_at == local(BERLIN, 2026, 3, 1)
    assert r.denial.reset_seconds == round(local(BERLIN, 2026, 3, 1).timestamp() - clock.now)
    (month,) = store.usage([MONTH])
    # a day later feb-1 is long past its reservation timeout: the expiry rule charged it in full
    assert (month.window_id, month.used, month.reserved) == ("2026-02", 100, 0)


def test_december_rolls_into_january(make: StoreFactory) -> None:
    clock = Clock(local(BERLIN, 2026, 12, 31, 23, 59, 59).timestamp())
    store = make(tz=BERLIN, clock=clock)
    fill(store, MONTH, "dec")
    r = store.reserve("more", 1, [MONTH])
    assert r.denial is not None and r.denial.reset_seconds == 1 and r.denial.resets_at == local(BERLIN, 2027, 1, 1)
    clock.advance(1)
    assert store.reserve("jan", 150, [MONTH]).granted


def test_the_configured_zone_decides_not_utc(make: StoreFactory) -> None:
    at = local("UTC", 2026, 5, 12, 23, 30).timestamp()  # already 13 May in Berlin, still 12 May in New York
    berlin, new_york = make(tz=BERLIN, clock=Clock(at)), make(tz="America/New_York", clock=Clock(at))
    assert [u.window_id for u in berlin.usage([DAY, MONTH])] == ["2026-05-13", "2026-05"]
    assert [u.window_id for u in new_york.usage([DAY])] == ["2026-05-12"]


# The window arithmetic itself, zone by zone.

def test_month_spans_over_a_dst_change_lose_or_gain_the_hour() -> None:
    tz = ZoneInfo(BERLIN)
    march = span(Window.MONTH, local(BERLIN, 2026, 3, 15).timestamp(), tz)
    october = span(Window.MONTH, local(BERLIN, 2026, 10, 15).timestamp(), tz)
    assert (march.id, march.end - march.start) == ("2026-03", 31 * 86400 - 3600)
    assert (october.id, october.end - october.start) == ("2026-10", 31 * 86400 + 3600)
    feb = span(Window.MONTH, local(BERLIN, 2028, 2, 29, 12).timestamp(), tz)
    assert (feb.id, feb.end - feb.start) == ("2028-02", 29 * 86400)


def test_where_midnight_does_not_exist_the_day_starts_when_the_date_does() -> None:
    # Chile springs forward at 00:00 (6 Sep 2026: 00:00 -> 01:00), so that day starts at 01:00 local and has 23 h.
    tz = ZoneInfo("America/Santiago")
    s = span(Window.DAY, local("America/Santiago", 2026, 9, 6, 12).timestamp(), tz)
    assert s.id == "2026-09-06"
    assert s.end - s.start == 23 * 3600
    assert local("America/Santiago", 2026, 9, 5, 23, 59, 59).timestamp() + 1 == s.start
