"""Metrics as an operator scrapes them: Prometheus text of a Telemetry fed real decisions from the pipeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from filter.model import Envelope, Identity
from filter.pipeline import evaluate
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.telemetry import LATENCY_BUCKETS_MS, Telemetry
from filter.tokens import TokenCounter, load_encoding
from filter.usage import Usage

SECRET_BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "key AKIAZ5XQ3HR2LMNPQ7TW"}]})


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}))


def scrape(telemetry: Telemetry, registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def new_telemetry(runtime: Runtime | None = None) -> tuple[Telemetry, CollectorRegistry]:
    registry = CollectorRegistry()
    telemetry = Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=registry)])
    if runtime is not None:
        telemetry.track(runtime)
    return telemetry, registry


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def test_every_counter_is_present_at_zero_from_start(runtime: Runtime) -> None:
    telemetry, registry = new_telemetry(runtime)
    text = scrape(telemetry, registry)
    assert 'llm_filter_pack_reloads_total{result="ok"} 0.0' in text
    assert 'llm_filter_pack_reloads_total{result="error"} 0.0' in text
    assert 'llm_filter_decisions_total{provider="openai",reason="secret_detected",verdict="deny"} 0.0' in text
    assert 'llm_filter_decisions_total{provider="gemini",reason="allowed",verdict="allow"} 0.0' in text
    assert 'llm_filter_rate_limited_total{key="workspace_id"} 0.0' in text
    assert 'llm_filter_prompt_tokens_total{provider="anthropic"} 0.0' in text
    assert 'llm_filter_usage_tokens_total{kind="output",provider="bedrock",source="estimated"} 0.0' in text
    assert 'llm_filter_usage_streams_total{result="error"} 0.0' in text
    assert 'llm_filter_store_errors_total{operation="hit"} 0.0' in text
    rule = runtime.current.ruleset.rules[0]
    assert f'llm_filter_findings_total{{category="{rule.category.value}",mode="{rule.mode.value}",rule="{rule.id}"}} 0.0' in text


def test_rule_set_gauges_name_the_live_set(runtime: Runtime) -> None:
    telemetry, registry = new_telemetry(runtime)
    text = scrape(telemetry, registry)
    assert f"llm_filter_rules_loaded {float(len(runtime.current.ruleset.rules))}" in text
    assert f'llm_filter_pack_info{{digest="{runtime.current.ruleset.digest}"}} 1.0' in text
    (stamp,) = series(text, "llm_filter_pack_last_reload_timestamp_seconds")
    assert float(stamp.split()[-1]) == pytest.approx(runtime.last_reload)


def test_latency_buckets_span_a_tenth_of_a_millisecond_to_five_seconds(runtime: Runtime) -> None:
    telemetry, registry = new_telemetry(runtime)
    for latency in (0.05, 0.3, 3.0, 40.0, 4000.0):
        telemetry.check_latency.record(latency, {"verdict": "allow"})
    text = scrape(telemetry, registry)
    bounds = [m for m in re.findall(r'llm_filter_check_duration_milliseconds_bucket\{le="([^"]+)"', text)]
    assert bounds == [*(str(float(b)) for b in LATENCY_BUCKETS_MS), "+Inf"]
    assert 'llm_filter_check_duration_milliseconds_bucket{le="0.1",verdict="allow"} 1.0' in text
    assert 'llm_filter_check_duration_milliseconds_bucket{le="0.5",verdict="allow"} 2.0' in text
    assert 'llm_filter_check_duration_milliseconds_bucket{le="5000.0",verdict="allow"} 5.0' in text


def test_no_label_carries_client_text_and_no_scope_noise(runtime: Runtime) -> None:
    """A secret in the model field, identity headers or provider header never becomes a label value."""
    telemetry, registry = new_telemetry(runtime)
    counter = TokenCounter(load_encoding())
    leaky = "sk-live-4f9c2a7e1b8d3f6a0c5e9b2d7a4f1c8e"
    body = json.dumps({"model": leaky, "messages": [{"role": "user", "content": "rename this variable"}]}).encode()
    envelope = Envelope("POST", "/v1/chat/completions", {"x-llm-provider": leaky, "x-workspace-id": leaky}, body)
    decision = evaluate(envelope, runtime.current, counter, identity=Identity(workspace=leaky, team=leaky)).decision
    assert decision.allowed
    telemetry.observe(decision, 1.2)
    telemetry.rate_limited.add(1, {"key": leaky})
    telemetry.reload(leaky)
    telemetry.usage(leaky, Usage(12, 3), 200)  # the provider as the usage observer names it
    telemetry.store_call(leaky, 0.3, ok=False)
    text = scrape(telemetry, registry)
    assert leaky not in text
    assert "otel_scope" not in text
    assert 'llm_filter_prompt_tokens_total{provider="openai"}' in text
    assert 'llm_filter_rate_limited_total{key="other"} 1.0' in text
    assert 'llm_filter_pack_reloads_total{result="error"} 1.0' in text
    labels = set(re.findall(r"([a-z_]+)=\"", "\n".join(line for line in text.splitlines() if line.startswith("llm_filter"))))
    assert 'llm_filter_usage_tokens_total{kind="input",provider="unknown",source="reported"} 12.0' in text
    assert 'llm_filter_store_errors_total{operation="other"} 1.0' in text
    assert labels == {"verdict", "reason", "provider", "rule", "category", "mode", "key", "result", "digest", "le",
                      "kind", "source", "operation", "scope", "id", "model"}


def test_a_denied_request_is_counted_with_its_rule(runtime: Runtime) -> None:
    telemetry, registry = new_telemetry(runtime)
    envelope = Envelope("POST", "/v1/chat/completions", {}, SECRET_BODY.encode())
    decision = evaluate(envelope, runtime.current, TokenCounter(load_encoding())).decision
    telemetry.observe(decision, 2.0)
    text = scrape(telemetry, registry)
    assert 'llm_filter_decisions_total{provider="openai",reason="secret_detected",verdict="deny"} 1.0' in text
    assert 'llm_filter_findings_total{category="secret",mode="enforce",rule="aws-access-key-id"} 1.0' in text


def test_the_service_is_named_in_target_info(runtime: Runtime) -> None:
    telemetry, registry = new_telemetry(runtime)
    (info,) = series(scrape(telemetry, registry), "target_info")
    assert 'service_name="llm-content-filter"' in info


def test_reload_counts_and_moves_the_gauges(tmp_path: Path) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_text("pack: p\nversion: 1\nrules:\n  - id: alpha-token\n    category: secret\n    description: a\n"
                    "    pattern: 'alpha_[a-z0-9]{12}'\n    examples: {match: ['alpha_k3j9x2m7q1w8'], no_match: ['alpha_']}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"packs: [{pack}]\n")
    telemetry, registry = new_telemetry()
    live = Runtime(str(cfg), load_settings(str(cfg), env={}), on_reload=lambda r, _d: telemetry.reload(r))
    telemetry.track(live)
    first = live.current.ruleset.digest
    pack.write_text(pack.read_text().replace("alpha_[a-z0-9]{12}", "alpha_[a-z0-9]{10,12}"))
    assert live.reload()
    pack.write_text("pack: p\nversion: 1\nrules: !!python/name:os.system\n")
    assert not live.reload()
    text = scrape(telemetry, registry)
    assert 'llm_filter_pack_reloads_total{result="ok"} 1.0' in text
    assert 'llm_filter_pack_reloads_total{result="error"} 1.0' in text
    assert series(text, "llm_filter_pack_info") == [f'llm_filter_pack_info{{digest="{live.current.ruleset.digest}"}} 1.0']
    assert live.current.ruleset.digest != first
