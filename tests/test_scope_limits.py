"""Per-scope request rates and USD budgets on the request path (filter.budgets) against a real SQLite store with
an injected clock: which scope's key a rate counts under, 429 `rate_limited` with retry-after and no count for a
refused request, USD reservations refused over a budget, unpriced models refused, and the usage observer settling
the USD reservation at the real cost."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from filter import budgets
from filter.budgets import reserve
from filter.model import Decision, Envelope, Identity
from filter.pipeline import Evaluation, evaluate
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from filter.runtime import Snapshot
from filter.scopes import Price, check_text, load_policy, resolve
from filter.server.extproc import read_info
from filter.server.response import error_body, to_check_response
from filter.server.usage_sink import UsageSink
from filter.settings import Settings
from filter.store import Budget, SqliteStore, Window
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from filter.usage import Usage

TZ = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 10, 12, 0, 30, tzinfo=TZ).timestamp()  # 30 s into a minute
COUNTER = TokenCounter(load_encoding())
RULESET = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k"))

RATES = """\
timezone: Europe/Berlin
default: {requests_per_minute: 100}
teams:
  t1: {requests_per_minute: 3}
agents:
  "bot-*": {requests_per_minute: 2}
"""
SPEND = """\
timezone: Europe/Berlin
default:
  prices:
    "claude-*": {input_per_mtok: 3.0, output_per_mtok: 15.0}
teams:
  t1:
    budgets: {daily_usd: 0.05, daily_tokens: 1000000}
  t2:
    prices: {"claude-haiku-*": {input_per_mtok: 1, output_per_mtok: 5}}
    budgets: {monthly_usd: 500}
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock(START)


@pytest.fixture()
def store(tmp_path: Path, clock: Clock) -> SqliteStore:
    return SqliteStore(tmp_path / "limits.db", tz=TZ, clock=clock)


def snapshot_of(tmp_path: Path, text: str) -> Snapshot:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return Snapshot(Settings(), RULESET, load_policy(str(path)))


def request(snapshot: Snapshot, agent: str, team: str = "t1", model: str = "claude-sonnet-4-5",
            path: str = "/v1/messages") -> Evaluation:
    doc = {"model": model, "max_tokens": 300, "messages": [{"role": "user", "content": "hello"}]}
    envelope = Envelope("POST", path, {"content-type": "application/json"}, json.dumps(doc).encode())
    return evaluate(envelope, snapshot, COUNTER, Identity(team=team, agent=agent, source="jwt"))


def charge(outcome: Evaluation, snapshot: Snapshot, store: SqliteStore | None) -> Decision:
    return reserve(outcome.decision, outcome.parsed, outcome.scope, snapshot.policy, store)


def used(store: SqliteStore, key: str, window: Window = Window.DAY) -> tuple[int, int]:
    usage = store.usage([Budget(key, window, 1)])[0]
    return usage.used, usage.reserved


# -- the policy file ---------------------------------------------------------------------------------------


def test_the_rate_counts_under_the_most_specific_scope_that_sets_it(tmp_path: Path) -> None:
    policy = snapshot_of(tmp_path, RATES).policy
    assert policy is not None
    team = resolve(policy, Identity(team="t1", agent="alice"))
    assert (team.requests_per_minute, team.rate_key) == (3, "team:t1")
    bot = resolve(policy, Identity(team="t1", agent="bot-7"))
    assert (bot.requests_per_minute, bot.rate_key) == (2, "agent:bot-7")  # the glob gives each agent its own
    other = resolve(policy, Identity(team="t9"))
    assert (other.requests_per_minute, other.rate_key) == (100, "all")


def test_prices_merge_most_specific_first_and_usd_budgets_are_micro_dollars(tmp_path: Path) -> None:
    policy = snapshot_of(tmp_path, SPEND).policy
    assert policy is not None
    t1 = resolve(policy, Identity(team="t1"))
    assert t1.usd_budgets == (Budget("team:t1:usd", Window.DAY, 50_000),)
    assert t1.budgets == (Budget("team:t1", Window.DAY, 1_000_000),)
    t2 = resolve(policy, Identity(team="t2"))
    assert t2.price("claude-haiku-4-5") == Price(1.0, 5.0)  # the team's own entry wins over the default's glob
    assert t2.price("claude-sonnet-4-5") == Price(3.0, 15.0)
    assert t2.price("gpt-4o") is None and t2.price(None) is None
    assert t2.usd_budgets == (Budget("team:t2:usd", Window.MONTH, 500_000_000),)


def test_a_price_needs_both_directions() -> None:
    policy, problems = check_text('default: {prices: {"gpt-*": {input_per_mtok: 2}}}\n', "p.yaml")
    assert policy is None
    assert problems and problems[0].startswith("p.yaml:1: default.prices.gpt-*: 'output_per_mtok' is a required")


# -- requests per minute -----------------------------------------------------------------------------------


def test_a_team_limit_counts_every_agent_of_the_team_and_a_refusal_is_not_counted(
        tmp_path: Path, store: SqliteStore, clock: Clock) -> None:
    snapshot = snapshot_of(tmp_path, RATES)
    for agent in ("alice", "bob", "carol"):
        assert charge(request(snapshot, agent), snapshot, store).allowed
    refused = charge(request(snapshot, "dave"), snapshot, store)
    assert (refused.allowed, refused.http_status, refused.reason) == (False, 429, "rate_limited")
    assert refused.headers["retry-after"] == "30"  # to the next minute
    assert "the gateway policy for team t1 allows 3 requests per minute" in refused.message
    body, _ = error_body(refused)  # the provider's own rate-limit shape, which its SDK retries after retry-after
    assert body["error"]["type"] == "rate_limit_error"
    # another team has its own count (the default's 100)
    assert charge(request(snapshot, "erin", team="t2"), snapshot, store).allowed
    clock.now += 30
    for _ in range(3):  # the refused requests took nothing from the next minute
        assert charge(request(snapshot, "dave"), snapshot, store).allowed


def test_an_agent_limit_counts_that_agent_only(tmp_path: Path, store: SqliteStore) -> None:
    snapshot = snapshot_of(tmp_path, RATES.replace("requests_per_minute: 3", "requests_per_minute: 50"))
    for _ in range(2):
        assert charge(request(snapshot, "bot-1"), snapshot, store).allowed
    assert charge(request(snapshot, "bot-1"), snapshot, store).reason == "rate_limited"
    assert charge(request(snapshot, "bot-2"), snapshot, store).allowed


def test_openai_clients_get_the_rate_limited_code(tmp_path: Path, store: SqliteStore) -> None:
    snapshot = snapshot_of(tmp_path, "default: {requests_per_minute: 0}\n")
    decision = charge(request(snapshot, "a1", model="gpt-4o", path="/v1/chat/completions"), snapshot, store)
    body, _ = error_body(decision)
    assert (decision.http_status, body["error"]["type"], body["error"]["code"]) == (
        429, "rate_limit_exceeded", "rate_limited")


def test_without_a_store_rates_and_budgets_are_not_enforced(tmp_path: Path) -> None:
    snapshot = snapshot_of(tmp_path, "default: {requests_per_minute: 0}\n")
    assert charge(request(snapshot, "a1"), snapshot, None).allowed


# -- USD budgets -------------------------------------------------------------------------------------------


def test_an_exhausted_usd_budget_answers_429_naming_it_and_holds_no_tokens(
        tmp_path: Path, store: SqliteStore) -> None:
    snapshot = snapshot_of(tmp_path, SPEND)
    first = request(snapshot, "a1")
    prompt = first.decision.prompt_tokens or 0
    cost = prompt * 3 + 300 * 15  # micro-dollars: USD per million tokens = micro-USD per token
    assert charge(first, snapshot, store).allowed
    assert used(store, "team:t1:usd") == (0, cost)
    granted = 1
    while (decision := charge(request(snapshot, "a1"), snapshot, store)).allowed:
        granted += 1
    assert granted == 50_000 // cost
    assert (decision.http_status, decision.reason) == (429, "budget_exceeded")
    assert decision.headers["x-llm-filter-budget"] == "team:t1:usd/day"
    assert decision.headers["x-llm-filter-budget-limit"] == "0.05"
    assert decision.headers["retry-after"] == str(12 * 3600 - 30)  # to the local midnight
    assert "Spend budget exhausted: the gateway policy for team t1 allows USD 0.05 per day" in decision.message
    # all or nothing: neither the cost nor the tokens of the refused request are held
    assert used(store, "team:t1:usd") == (0, granted * cost)
    assert used(store, "team:t1") == (0, granted * (prompt + 300))


def test_a_model_without_a_price_under_a_usd_budget_is_refused(tmp_path: Path, store: SqliteStore) -> None:
    snapshot = snapshot_of(tmp_path, SPEND)
    decision = charge(request(snapshot, "a1", model="gpt-4o", path="/v1/chat/completions"), snapshot, store)
    assert (decision.allowed, decision.http_status, decision.reason) == (False, 403, "model_not_priced")
    assert "Model 'gpt-4o' has no price" in decision.message
    assert used(store, "team:t1") == (0, 0)
    # a scope without a USD budget needs no price
    free = snapshot_of(tmp_path, "default: {budgets: {daily_tokens: 100000}}\n")
    assert charge(request(free, "a1", model="gpt-4o", path="/v1/chat/completions"), free, store).allowed


def test_the_usage_observer_settles_the_usd_reservation_at_the_real_cost(
        tmp_path: Path, store: SqliteStore) -> None:
    snapshot = snapshot_of(tmp_path, SPEND)
    ok, failed = request(snapshot, "a1"), request(snapshot, "a2")
    assert charge(ok, snapshot, store).allowed and charge(failed, snapshot, store).allowed
    tel = Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=CollectorRegistry())])
    sink = UsageSink(store, tel)
    sink.on_usage(ok.decision.decision_id, "anthropic", "claude-sonnet-4-5", Usage(1000, 200), 200)
    sink.on_usage(failed.decision.decision_id, "anthropic", "claude-sonnet-4-5", None, 529)
    sink.stop()
    assert used(store, "team:t1:usd") == (1000 * 3 + 200 * 15, 0)
    assert used(store, "team:t1") == (1200, 0)


def test_another_worker_settles_the_usd_reservation_from_the_requests_metadata(
        tmp_path: Path, store: SqliteStore) -> None:
    """With `serve --workers N` the response may be observed by a worker that did not run the Check: it has
    only what Envoy forwards from the CheckResponse's metadata."""
    snapshot = snapshot_of(tmp_path, SPEND)
    observed, unread = request(snapshot, "a1"), request(snapshot, "a2")
    decisions = [charge(observed, snapshot, store), charge(unread, snapshot, store)]
    assert all(d.allowed for d in decisions)
    prompt = decisions[0].prompt_tokens or 0
    metadata = to_check_response(decisions[0], "/v1/messages").dynamic_metadata
    assert (metadata["usd_in"], metadata["usd_out"], metadata["source"]) == (3.0, 15.0, "jwt")
    assert metadata["model"] == "claude-sonnet-4-5" and metadata["team_id"] == "t1"
    for d in decisions:  # the other worker never saw these Checks: nothing remembered there
        assert budgets.settled_price(d.decision_id) is not None
    registry = CollectorRegistry()
    sink = UsageSink(store, Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=registry)]))
    sink.on_usage(decisions[0].decision_id, "anthropic", None, Usage(1000, 200), 200, info=read_info(metadata))
    sink.on_usage(decisions[1].decision_id, "anthropic", None, Usage(1000, 200), 200)  # no metadata arrived
    sink.stop()
    # the first at its real cost; the second's USD reservation stays open (charged in full at expiry)
    assert used(store, "team:t1:usd") == (1000 * 3 + 200 * 15, prompt * 3 + 300 * 15)
    assert used(store, "team:t1") == (2400, 0)  # tokens settle by decision id alone
    text = generate_latest(registry).decode()
    # attributed to the verified identity the metadata carried, not `unknown`
    assert ('llm_filter_scope_tokens_total{id="a1",kind="input",provider="anthropic",scope="agent",'
            'source="reported"} 1000.0') in text
    assert ('llm_filter_scope_tokens_total{id="unknown",kind="input",provider="anthropic",scope="agent",'
            'source="reported"} 1000.0') in text  # the second: no metadata, not remembered here


def test_an_allow_without_a_usd_reservation_carries_no_price(tmp_path: Path, store: SqliteStore) -> None:
    snapshot = snapshot_of(tmp_path, "default: {budgets: {daily_tokens: 100000}}\n")
    decision = charge(request(snapshot, "a1"), snapshot, store)
    metadata = to_check_response(decision, "/v1/messages").dynamic_metadata
    assert decision.allowed and "usd_in" not in metadata and "usd_out" not in metadata
    assert read_info(metadata).usd_price is None
    long_model = charge(request(snapshot, "a1", model="x" * 10_000), snapshot, store)
    assert long_model.allowed and "model" not in to_check_response(long_model, "/").dynamic_metadata  # not forwarded
