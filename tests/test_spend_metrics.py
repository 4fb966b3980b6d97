"""Spend metrics as an operator scrapes them: tokens by verified identity and by model, budget refusals by scope,
budget gauges read from a real SQLite store. The decisions come from the real pipeline with a policy file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from filter import budgets
from filter.model import Decision, Envelope, Identity
from filter.pipeline import evaluate
from filter.runtime import Runtime
from filter.scopes import resolve
from filter.server.usage_sink import UsageSink
from filter.settings import load_settings
from filter.store import open_store
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from filter.usage import Usage

POLICY = """\
default:
  models: ["gpt-4o*", "claude-*"]
  budgets: {daily_tokens: 100000}
  prices: {"gpt-4o*": {input_per_mtok: 2.5, output_per_mtok: 10}}
teams:
  payments: {budgets: {daily_tokens: 5000, monthly_usd: 25}}
  tiny: {budgets: {daily_tokens: 1}}
  "ops-*": {budgets: {daily_tokens: 9000}}
"""
Setup = tuple[Runtime, Telemetry, CollectorRegistry]
LEAKY = "sk-live-4f9c2a7e1b8d3f6a0c5e9b2d7a4f1c8e"


@pytest.fixture()
def setup(tmp_path: Path) -> Setup:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "filter.yaml").write_text("policy_file: policy.yaml\n")
    config = str(tmp_path / "filter.yaml")
    runtime = Runtime(config, load_settings(config, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}), warn_random_key=False)
    registry = CollectorRegistry()
    telemetry = Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=registry)], max_identity_values=2,
                          models=["mistral-large-latest"])
    telemetry.track(runtime)
    return runtime, telemetry, registry


def check(runtime: Runtime, identity: Identity, model: str = "gpt-4o-mini") -> Decision:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "rename this variable"}]}).encode()
    envelope = Envelope("POST", "/v1/chat/completions", {"content-type": "application/json"}, body)
    return evaluate(envelope, runtime.current, TokenCounter(load_encoding()), identity=identity).decision


def value(text: str, name: str, **labels: str) -> float:
    """The sample of `name` whose labels include `labels`; 0 when there is none."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_tokens_by_verified_identity_fold_beyond_the_cap_and_never_spell_unverified_text(setup: Setup) -> None:
    runtime, telemetry, registry = setup
    for i, identity in enumerate([Identity(team="t1", agent="a1", source="jwt"), Identity(team="t2", source="jwt"),
                                  Identity(team="t3", source="jwt"),  # beyond the cap of 2: `other`
                                  Identity(team=LEAKY, source="headers"),  # a client header, not named by the policy
                                  Identity(team="payments", source="headers")]):  # named by the policy: spelled
        decision = check(runtime, identity)
        telemetry.observe(decision, 1.0)
        telemetry.usage("openai", Usage(10 + i, 1), 200, decision.decision_id, LEAKY if i == 3 else "gpt-4o-mini")
    telemetry.usage("openai", Usage(100, 1), 200, "no-such-decision", None)  # Check answered by another worker
    text = generate_latest(registry).decode()
    assert LEAKY not in text
    scope = "llm_filter_scope_tokens_total"
    common = {"provider": "openai", "kind": "input", "source": "reported"}
    assert value(text, scope, scope="team", id="t1", **common) == 10
    assert value(text, scope, scope="team", id="t2", **common) == 11
    assert value(text, scope, scope="team", id="other", **common) == 12 + 13  # t3 (over the cap) and the header
    assert value(text, scope, scope="team", id="payments", **common) == 14
    assert value(text, scope, scope="team", id="unknown", **common) == 100
    assert value(text, scope, scope="agent", id="a1", **common) == 10
    assert value(text, scope, scope="agent", id="unknown", **common) == 11 + 12 + 13 + 14 + 100
    # The model as the policy's glob it matches (never the client's text), a configured name, or `other`.
    model = "llm_filter_model_tokens_total"
    assert value(text, model, model="gpt-4o*", **common) == 10 + 11 + 12 + 14
    assert value(text, model, model="other", **common) == 13 + 100
    telemetry.usage("mistral", Usage(7, 0), 200, None, "mistral-large-latest")
    text = generate_latest(registry).decode()
    assert value(text, model, model="mistral-large-latest", provider="mistral", kind="input") == 7


def test_budget_refusals_by_scope_and_budget_gauges_from_the_store(setup: Setup, tmp_path: Path) -> None:
    runtime, telemetry, registry = setup
    text = generate_latest(registry).decode()
    assert value(text, "llm_filter_budget_refusals_total", scope="team") == 0  # present at zero from the start
    assert "llm_filter_budget_tokens{" not in text  # no store: no gauges
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    telemetry.track_store(store)
    policy = runtime.current.policy
    assert policy is not None
    for team in ("payments", "tiny", "ops-eu"):
        identity = Identity(team=team, source="jwt")
        decision = check(runtime, identity)
        scope = resolve(policy, identity)
        decision = budgets.reserve(decision, None, scope, policy, store)
        telemetry.observe(decision, 1.0)
        telemetry.saw_budgets(scope.budgets)  # as the servicer does after each Check
    sink = UsageSink(store, telemetry)
    text = generate_latest(registry).decode()
    assert value(text, "llm_filter_budget_refusals_total", scope="team") == 1
    assert value(text, "llm_filter_budget_refusals_total", scope="default") == 0
    gauges: dict[tuple[str, ...], float] = {}
    usd: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        if line.startswith(("llm_filter_budget_tokens{", "llm_filter_budget_usd{")):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            into = usd if line.startswith("llm_filter_budget_usd{") else gauges
            into[labels["scope"], labels["id"], labels["window"], labels["state"]] = float(line.rsplit(" ", 1)[1])
    # One series per configured budget of the default and the exact entries, and one per identity a glob
    # (`ops-*`) held so far.
    assert {k[:3] for k in gauges if k[3] == "limit"} == {("default", "all", "day"), ("team", "payments", "day"),
                                                         ("team", "tiny", "day"), ("team", "ops-eu", "day")}
    assert gauges[("team", "ops-eu", "day", "limit")] == 9000 and gauges[("team", "ops-eu", "day", "reserved")] > 0
    assert gauges[("team", "payments", "day", "limit")] == 5000
    assert gauges[("team", "payments", "day", "reserved")] > 0 and gauges[("team", "payments", "day", "used")] == 0
    assert gauges[("team", "tiny", "day", "reserved")] == 0  # refused: nothing reserved
    # The USD budget in dollars (counted in micro-dollars): what the reservation may cost at the model's price.
    assert usd[("team", "payments", "month", "limit")] == 25
    assert 0 < usd[("team", "payments", "month", "reserved")] < 0.1
    assert set(usd) == {("team", "payments", "month", s) for s in ("limit", "used", "reserved")}
    # Glob identities beyond the cap (2 here) get no gauge: the series stay bounded.
    for team in ("ops-us", "ops-ap", "ops-sa"):
        telemetry.saw_budgets(resolve(policy, Identity(team=team, source="jwt")).budgets)
    text = generate_latest(registry).decode()
    held = set(re.findall(r'llm_filter_budget_tokens\{[^}]*id="(ops-[a-z]+)"[^}]*state="limit"', text))
    assert held == {"ops-eu", "ops-us"}
    sink.stop()
    store.close()
