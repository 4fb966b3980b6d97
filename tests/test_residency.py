"""Data residency and credential injection without gRPC or Envoy: the policy fields and their lint messages (file,
line, scope), the region decision for every provider and Bedrock model id shape, and the CheckResponse mutations
(routing headers, path, team key, removed client keys) and deny body a decision becomes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from filter.audit import audit_record
from filter.cli import main
from filter.credentials import Secret, read_keys
from filter.errors import ConfigError
from filter.model import Decision, Envelope, Identity
from filter.pipeline import evaluate
from filter.residency import Placement, Refusal, Residency, place
from filter.runtime import Runtime
from filter.scopes import PolicyFileError, check_text, load_policy, resolve
from filter.server.response import to_check_response
from filter.settings import load_settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding

POLICY = textwrap.dedent("""\
    region_sets:
      eu: [eu-central-1, eu-west-1, europe-west4, eu]
      us: [us-east-1, us]
    upstreams:
      bedrock: {eu-central-1: bedrock-eu, us-east-1: bedrock}
      openai: {eu: openai-eu, us: openai}
      anthropic: {us: anthropic}
    default:
      regions: [eu]
    teams:
      rewrite: {cross_region_profiles: rewrite}
      frankfurt: {regions: [eu-central-1], cross_region_profiles: rewrite}
      us: {regions: [us]}
    """)
RESIDENCY = Residency({"eu": frozenset({"eu-central-1", "eu-west-1", "eu"}), "us": frozenset({"us-east-1", "us"})},
                      {"bedrock": (("eu-central-1", "bedrock-eu"), ("us-east-1", "bedrock")),
                       "openai": (("eu", "openai-eu"), ("us", "openai")), "anthropic": (("us", "anthropic"),)})
CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Tidy the imports."}]}).encode()
CONVERSE = json.dumps({"messages": [{"role": "user", "content": [{"text": "Explain the change."}]}]}).encode()
COUNTER = TokenCounter(load_encoding())


def bedrock(model: str, cross_region: str | None = None, regions: tuple[str, ...] = ("eu",),
            prefix: str = "/bedrock") -> Placement | Refusal:
    return place(RESIDENCY, regions, "team t", cross_region, "bedrock", model, f"{prefix}/model/{model}/converse")


# --- the policy file ---------------------------------------------------------------------------------------


def test_regions_are_inherited_and_the_most_specific_scope_wins() -> None:
    policy, problems = check_text(POLICY, "policy.yaml")
    assert policy is not None, problems
    assert resolve(policy, Identity()).regions == ("eu",)
    rewrite = resolve(policy, Identity(team="rewrite"))
    assert (rewrite.regions, rewrite.cross_region_profiles, rewrite.origin["regions"]) == (("eu",), "rewrite", "default")
    assert resolve(policy, Identity(team="us")).regions == ("us",)
    assert policy.residency.upstreams["bedrock"] == (("eu-central-1", "bedrock-eu"), ("us-east-1", "bedrock"))


@pytest.mark.parametrize(("text", "expected"), [
    ("upstreams: {openai: {eu: openai-eu}}\nteams:\n  payments:\n    regions: [eu, mars]\n",
     "policy.yaml:4: teams.payments.regions: unknown region or region set 'mars'"),
    ("upstreams:\n  bedrock:\n    eu-central-1: openai-eu\n",
     "policy.yaml:3: upstreams.bedrock.eu-central-1: cluster 'openai-eu' is not a bedrock cluster"),
    ("region_sets: {eu: [eu-west-1]}\nagents:\n  ci-bot: {regions: [eu]}\n",
     "policy.yaml:3: agents.ci-bot.regions: the file declares no upstreams"),
    ("teams:\n  payments:\n    credentials:\n      bedrock: /run/secrets/aws\n",
     "policy.yaml:4: teams.payments.credentials.bedrock: Bedrock requests are signed by the gateway"),
    ("default:\n  cross_region_profiles: move\n",
     "policy.yaml:2: default.cross_region_profiles: 'move' is not one of ['deny', 'rewrite']"),
    ("upstreams: {openai: {EU: openai-eu}}\n", "policy.yaml:1: upstreams.openai: 'EU' does not match"),
    ("upstreams: {openai: {eu: 'openai eu'}}\n", "policy.yaml:1: upstreams.openai.eu: 'openai eu' does not match"),
])
def test_lint_names_the_file_line_and_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                             expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert main(["policy", "lint", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path}/{expected}"), out


# --- the region decision ------------------------------------------------------------------------------------


def test_the_first_upstream_in_an_allowed_region_is_picked() -> None:
    assert place(RESIDENCY, ("eu",), "team t", None, "openai", "gpt-4o", "/v1/chat/completions") == \
        Placement("eu", "openai-eu")
    assert place(RESIDENCY, ("us",), "team t", None, "openai", "gpt-4o", "/v1/chat/completions") == \
        Placement("us", "openai")
    assert place(RESIDENCY, ("eu-west-1", "us-east-1"), "team t", None, "bedrock", "anthropic.claude-v2", "/model/x") \
        == Placement("us-east-1", "bedrock")  # a region named on its own, not only through a set


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "mistral"])
def test_a_provider_without_an_endpoint_in_the_regions_is_refused(provider: str) -> None:
    refusal = place(RESIDENCY, ("eu",), "team payments", None, provider, "m", "/v1/x")
    assert isinstance(refusal, Refusal)
    assert f"Provider '{provider}' has no gateway endpoint" in refusal.message
    assert "team payments (eu)" in refusal.message


def test_bedrock_model_ids_that_stay_in_the_region_pass() -> None:
    assert bedrock("anthropic.claude-3-haiku-20240307-v1:0") == Placement("eu-central-1", "bedrock-eu")
    assert bedrock("eu.anthropic.claude-sonnet-4-v1:0") == Placement("eu-central-1", "bedrock-eu")
    arn = "arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-v2"
    assert bedrock(arn) == Placement("eu-central-1", "bedrock-eu")


@pytest.mark.parametrize("model", ["us.anthropic.claude-sonnet-4-v1:0", "global.anthropic.claude-sonnet-4-v1:0",
                                   "apac.amazon.nova-pro-v1:0"])
def test_a_cross_region_profile_leaving_the_region_is_refused_or_moved(model: str) -> None:
    refused = bedrock(model)
    assert isinstance(refused, Refusal) and "cross-region inference profile" in refused.message
    assert "the eu. profile" in refused.message
    moved = bedrock(model, "rewrite")
    rest = model.split(".", 1)[1]
    assert moved == Placement("eu-central-1", "bedrock-eu", f"/bedrock/model/eu.{rest}/converse")
    assert bedrock(model, "rewrite", prefix="") == Placement("eu-central-1", "bedrock-eu", f"/model/eu.{rest}/converse")


def test_a_geography_profile_needs_the_geography_allowed_by_name() -> None:
    # eu-central-1 alone: the eu. profile may serve from eu-west-3, so neither it nor a rewrite to it is allowed
    for cross_region in (None, "rewrite"):
        assert isinstance(bedrock("eu.anthropic.claude-v2", cross_region, regions=("eu-central-1",)), Refusal)
        assert isinstance(bedrock("us.anthropic.claude-v2", cross_region, regions=("eu-central-1",)), Refusal)
    assert bedrock("anthropic.claude-v2", regions=("eu-central-1",)) == Placement("eu-central-1", "bedrock-eu")


def test_arns_are_never_rewritten_and_an_application_profile_is_refused() -> None:
    assert isinstance(bedrock("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2", "rewrite"), Refusal)
    assert isinstance(bedrock("arn:aws:bedrock:eu-central-1:123456789012:inference-profile/us.anthropic.claude-v2",
                              "rewrite"), Refusal)
    app = bedrock("arn:aws:bedrock:eu-central-1:123456789012:application-inference-profile/abc123")
    assert isinstance(app, Refusal) and "application inference profile" in app.message


def test_a_profile_spelled_otherwise_in_the_path_is_refused_not_moved() -> None:
    # %75 is `u`: the model reads `us.` but the path does not start with it, so it cannot be moved safely
    refused = place(RESIDENCY, ("eu",), "team t", "rewrite", "bedrock", "us.anthropic.claude-v2",
                    "/model/%75s.anthropic.claude-v2/converse")
    assert isinstance(refused, Refusal)


# --- the decision and the CheckResponse ----------------------------------------------------------------------


def make_runtime(tmp_path: Path) -> Runtime:
    key = tmp_path / "openai-team-a"
    key.write_text("sk-team-a-key-0123456789\n")
    (tmp_path / "policy.yaml").write_text(POLICY + f"  team-a:\n    regions: [eu]\n    credentials: {{openai: {key}}}\n")
    (tmp_path / "filter.yaml").write_text("policy_file: policy.yaml\n")
    config = str(tmp_path / "filter.yaml")
    return Runtime(config, load_settings(config, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}), warn_random_key=False)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return make_runtime(tmp_path_factory.mktemp("residency"))


@pytest.fixture()
def reloading(tmp_path: Path) -> Runtime:
    """A runtime of its own, for the tests that change its files."""
    return make_runtime(tmp_path)


def check(runtime: Runtime, path: str, body: bytes, team: str | None = None,
          headers: dict[str, str] | None = None) -> Decision:
    envelope = Envelope("POST", path, {"content-type": "application/json", **(headers or {})}, body)
    return evaluate(envelope, runtime.current, COUNTER, Identity(team=team)).decision


def mutations(decision: Decision) -> tuple[dict[str, str], list[str], list[str]]:
    ok = to_check_response(decision).ok_response
    return ({h.header.key: h.header.value for h in ok.headers}, list(ok.headers_to_remove),
            list(ok.query_parameters_to_remove))


def test_an_allow_names_the_in_region_upstream_and_moves_the_profile(runtime: Runtime) -> None:
    decision = check(runtime, "/bedrock/model/us.anthropic.claude-v2/converse", CONVERSE, team="rewrite")
    assert decision.allowed and decision.edits.region == "eu-central-1"
    headers, removed, _ = mutations(decision)
    assert headers["x-llm-upstream-cluster"] == "bedrock-eu" and headers["x-llm-upstream-region"] == "eu-central-1"
    assert headers[":path"] == "/bedrock/model/eu.anthropic.claude-v2/converse"
    assert "x-llm-upstream-cluster" not in removed
    assert audit_record(decision, None, 1.0, "metadata_only")["region"] == "eu-central-1"


def test_a_refusal_is_a_403_region_not_allowed_in_the_providers_shape(runtime: Runtime) -> None:
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    decision = check(runtime, "/anthropic/v1/messages", body)
    assert (decision.http_status, decision.reason) == (403, "region_not_allowed")
    denied = to_check_response(decision).denied_response
    error = json.loads(denied.body)["error"]
    assert error["type"] == "permission_error" and "no gateway endpoint" in error["message"]
    assert error["llm_filter"]["reason"] == "region_not_allowed"
    assert {h.header.key: h.header.value for h in denied.headers}["x-llm-filter-reason"] == "region_not_allowed"
    bedrock_deny = check(runtime, "/bedrock/model/global.anthropic.claude-v2/converse", CONVERSE)
    denied = to_check_response(bedrock_deny).denied_response
    assert {h.header.key: h.header.value for h in denied.headers}["x-amzn-errortype"] == "AccessDeniedException"


def test_a_content_deny_is_not_routed(runtime: Runtime) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "AKIAZ5XQ3HR2LMNPQ7TW"}]}).encode()
    decision = check(runtime, "/openai/v1/chat/completions", body)
    assert decision.reason == "secret_detected" and decision.edits.region is None


def test_the_team_key_replaces_every_client_key(runtime: Runtime) -> None:
    decision = check(runtime, "/openai/v1/chat/completions?key=client", CHAT, team="team-a",
                     headers={"authorization": "Bearer client"})
    headers, removed, query = mutations(decision)
    assert headers["authorization"] == "Bearer sk-team-a-key-0123456789"
    assert headers["x-llm-upstream-cluster"] == "openai-eu"
    assert set(removed) >= {"x-api-key", "api-key", "x-goog-api-key"} and "authorization" not in removed
    assert query == ["key"]
    assert "sk-team-a" not in repr(decision) and "sk-team-a" not in json.dumps(audit_record(decision, None, 1.0, "full"))
    assert audit_record(decision, None, 1.0, "metadata_only")["credential"] == "gateway"
    # another team: no key set, the client's passes
    other = check(runtime, "/openai/v1/chat/completions", CHAT, team="us")
    assert "authorization" not in mutations(other)[0]


def test_the_upstream_region_is_counted(runtime: Runtime) -> None:
    registry = CollectorRegistry()
    telemetry = Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=registry)])
    telemetry.observe(check(runtime, "/openai/v1/chat/completions", CHAT), 1.0)
    text = generate_latest(registry).decode()
    assert 'llm_filter_upstream_region_total{provider="openai",region="eu"} 1.0' in text


# --- key files ---------------------------------------------------------------------------------------------


def test_key_files_are_read_at_load_and_problems_name_file_and_scope_never_content(tmp_path: Path) -> None:
    key = tmp_path / "k"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"teams:\n  a:\n    credentials: {{anthropic: {key}}}\n")
    with pytest.raises(ConfigError, match=r"teams\.a\.credentials\.anthropic: key file .*/k: cannot read"):
        load_policy(str(policy))
    for content in ("", "line-one-secret\nline-two-secret\n", "has spaces secret"):
        key.write_text(content)
        with pytest.raises(ConfigError) as raised:
            load_policy(str(policy))
        assert "teams.a.credentials.anthropic" in str(raised.value) and "secret" not in str(raised.value)
    key.write_text("sk-ant-k\n")
    loaded = load_policy(str(policy))
    assert loaded.keys[str(key)] == Secret("sk-ant-k") and "sk-ant-k" not in repr(loaded)
    assert "sk-ant" not in str(read_keys("p", {str(key): ["default"]})[str(key)])


def test_a_rotated_key_file_is_seen_as_a_change_and_read_again(reloading: Runtime, tmp_path: Path) -> None:
    assert not reloading.changed()
    (tmp_path / "openai-team-a").write_text("sk-rotated-key-987654321\n")
    assert reloading.changed()  # the watcher reloads on it
    assert reloading.reload()
    decision = check(reloading, "/openai/v1/chat/completions", CHAT, team="team-a")
    assert mutations(decision)[0]["authorization"] == "Bearer sk-rotated-key-987654321"


def test_a_missing_key_file_keeps_the_last_good_policy(reloading: Runtime, tmp_path: Path) -> None:
    (tmp_path / "openai-team-a").unlink()
    assert not reloading.reload()
    decision = check(reloading, "/openai/v1/chat/completions", CHAT, team="team-a")
    assert mutations(decision)[0]["authorization"] == "Bearer sk-team-a-key-0123456789"


def test_load_refuses_a_policy_whose_problems_are_residency_ones(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("default: {regions: [eu]}\n")
    with pytest.raises(PolicyFileError, match="unknown region or region set 'eu'"):
        load_policy(str(policy))


def test_the_local_stack_gateway_example_loads_and_sends_payments_to_the_eu_with_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`FILTER_CONFIG=envoy/local-gateway.yaml make run` (README) loads as the server loads it, from a directory
    holding the team key file it names, and does what the README shows."""
    envoy = Path(__file__).resolve().parents[1] / "envoy"
    assert main(["policy", "lint", str(envoy / "local-gateway-policy.yaml"), "--config",
                 str(envoy / "local-gateway.yaml")]) == 0, capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "payments-openai.key").write_text("team-payments-openai-key\n")
    runtime = Runtime(str(envoy / "local-gateway.yaml"), warn_random_key=False)
    decision = check(runtime, "/openai/v1/chat/completions", CHAT, team="payments",
                     headers={"authorization": "Bearer sk-the-developers-own-key"})
    set_headers, removed, _ = mutations(decision)
    assert decision.allowed and set_headers["x-llm-upstream-cluster"] == "openai-eu"
    assert set_headers["authorization"] == "Bearer team-payments-openai-key"
    assert check(runtime, "/anthropic/v1/messages", CHAT, team="payments").reason == "region_not_allowed"
    email = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Mail maria.schmidt@gmail.com"}]})
    assert check(runtime, "/openai/v1/chat/completions", email.encode()).reason == "redacted"
