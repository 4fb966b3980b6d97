"""Token budgets on the request path (filter.budgets) against a real SQLite store with an injected clock:
several scopes charged at once, a 429 with retry-after until the window resets, nothing reserved on a refusal,
and a store that cannot answer (503, or an unchecked allow with `on_store_error: allow`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from filter.budgets import reserve
from filter.model import Decision, Envelope, Identity, Verdict
from filter.pipeline import Evaluation, evaluate
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from filter.runtime import Snapshot
from filter.scopes import load_policy
from filter.settings import Settings
from filter.store import Budget, SqliteStore, Window
from filter.tokens import TokenCounter, load_encoding

POLICY = """\
timezone: Europe/Berlin
default_max_output_tokens: 500
teams:
  t1: {budgets: {daily_tokens: 2000}}
agents:
  "*": {budgets: {daily_tokens: 1000}}
"""
TZ = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 10, 23, 0, tzinfo=TZ).timestamp()  # one hour before a local midnight
COUNTER = TokenCounter(load_encoding())
RULESET = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k"))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def snapshot(tmp_path: Path) -> Snapshot:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return Snapshot(Settings(), RULESET, load_policy(str(path)))


@pytest.fixture()
def clock() -> Clock:
    return Clock(START)


@pytest.fixture()
def store(tmp_path: Path, clock: Clock) -> SqliteStore:
    return SqliteStore(tmp_path / "budgets.db", tz=TZ, clock=clock)


def request(snapshot: Snapshot, agent: str, max_tokens: int | None = 300, team: str = "t1") -> Evaluation:
    doc: dict[str, object] = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}]}
    if max_tokens is not None:
        doc["max_tokens"] = max_tokens
    envelope = Envelope("POST", "/v1/messages", {"content-type": "application/json"}, json.dumps(doc).encode())
    return evaluate(envelope, snapshot, COUNTER, Identity(team=team, agent=agent, source="jwt"))


def charge(outcome: Evaluation, snapshot: Snapshot, store: SqliteStore | None) -> Decision:
    return reserve(outcome.decision, outcome.parsed, outcome.scope, snapshot.policy, store)


def used(store: SqliteStore, key: str) -> int:
    usage = store.usage([Budget(key, Window.DAY, 1)])[0]
    return usage.used + usage.reserved


def test_each_scope_is_charged_and_an_exhausted_budget_answers_429_until_its_window_resets(
        snapshot: Snapshot, store: SqliteStore, clock: Clock) -> None:
    first = request(snapshot, "a1")
    cost = (first.decision.prompt_tokens or 0) + 300
    assert charge(first, snapshot, store).allowed
    assert used(store, "agent:a1") == cost and used(store, "team:t1") == cost
    granted = 1
    while True:
        decision = charge(request(snapshot, "a1"), snapshot, store)
        if not decision.allowed:
            break
        granted += 1
    assert granted == 1000 // cost
    assert (decision.http_status, decision.reason) == (429, "budget_exceeded")
    assert decision.headers["retry-after"] == "3600"  # seconds to the local midnight
    assert decision.headers["x-llm-filter-budget"] == "agent:a1/day"
    assert decision.headers["x-llm-filter-budget-limit"] == "1000"
    assert decision.headers["x-llm-filter-budget-remaining"] == str(1000 - granted * cost)
    assert "the gateway policy for agent a1 allows 1000 tokens per day" in decision.message
    # nothing was reserved anywhere for the refused request
    assert used(store, "agent:a1") == granted * cost and used(store, "team:t1") == granted * cost

    clock.now += 3600  # the next local day
    assert charge(request(snapshot, "a1"), snapshot, store).allowed
    assert used(store, "agent:a1") == cost


def test_the_team_budget_refuses_an_agent_with_room_left(snapshot: Snapshot, store: SqliteStore) -> None:
    for agent in ("a1", "a2", "a3"):
        while charge(request(snapshot, agent, max_tokens=200), snapshot, store).allowed:
            pass
    decision = charge(request(snapshot, "a4", max_tokens=200), snapshot, store)
    assert decision.headers["x-llm-filter-budget"] == "team:t1/day"
    assert used(store, "agent:a4") == 0
    # another team's agent is not held back by t1
    assert charge(request(snapshot, "b1", max_tokens=200, team="t2"), snapshot, store).allowed


def test_without_max_tokens_the_policy_cap_is_reserved(snapshot: Snapshot, store: SqliteStore) -> None:
    outcome = request(snapshot, "a1", max_tokens=None)
    assert charge(outcome, snapshot, store).allowed
    assert used(store, "agent:a1") == (outcome.decision.prompt_tokens or 0) + 500


def test_denied_requests_and_scopes_without_budgets_reserve_nothing(snapshot: Snapshot, store: SqliteStore,
                                                                     tmp_path: Path) -> None:
    outcome = request(snapshot, "a1")
    blocked = Evaluation(Decision(Verdict.DENY, 400, "secret_detected", "m", "d-x"), outcome.parsed,
                         scope=outcome.scope)
    assert charge(blocked, snapshot, store) is blocked.decision
    assert used(store, "agent:a1") == 0
    assert charge(outcome, snapshot, None).allowed  # no store configured: not enforced


def locked(tmp_path: Path, clock: Clock) -> tuple[SqliteStore, sqlite3.Connection]:
    path = tmp_path / "locked.db"
    store = SqliteStore(path, tz=TZ, clock=clock, busy_timeout=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock past the busy timeout
    return store, blocker


def test_a_store_that_cannot_answer_is_a_503_by_default(snapshot: Snapshot, tmp_path: Path, clock: Clock) -> None:
    store, blocker = locked(tmp_path, clock)
    try:
        decision = charge(request(snapshot, "a1"), snapshot, store)
    finally:
        blocker.rollback()
    assert (decision.allowed, decision.http_status, decision.reason) == (False, 503, "store_unavailable")
    assert decision.headers["retry-after"] == "5"
    assert used(store, "agent:a1") == 0


def test_on_store_error_allow_lets_the_request_through_marked(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY + "on_store_error: allow\n")
    snapshot = Snapshot(Settings(), RULESET, load_policy(str(path)))
    store, blocker = locked(tmp_path, clock)
    try:
        decision = charge(request(snapshot, "a1"), snapshot, store)
    finally:
        blocker.rollback()
    assert (decision.allowed, decision.http_status, decision.reason) == (True, 200, "store_unavailable")
