"""Data residency end to end: real Envoy (rendered from envoy/envoy.yaml) -> the real filter with a policy file ->
two fake providers on two loopback ports standing for a provider's EU and US endpoints (real providers cannot be
called from tests; every cluster of the rendered config points at 127.0.0.1).

An EU team's requests reach only the EU endpoint; a provider without an EU endpoint is refused 403
`region_not_allowed` in its own error shape and nothing reaches any provider; a Bedrock `us.` cross-region profile
is refused, or moved to the `eu.` profile when the policy says `cross_region_profiles: rewrite`; a client cannot
pick the upstream itself.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.envoy_harness import ENVOY_YAML, RENDER, EnvoyProcess, render_config, start_envoy, validate
from tests.e2e.fake_provider import FakeProvider
from tests.e2e.filter_harness import FilterProcess

pytestmark = pytest.mark.e2e
_spec = importlib.util.spec_from_file_location("envoy_render", RENDER)
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

POLICY = """\
region_sets:
  eu: [eu-central-1, eu-west-1, europe-west4, eu]
  us: [us-east-1, us]
upstreams:
  bedrock: {eu-central-1: bedrock-eu, us-east-1: bedrock}
  openai: {eu: openai-eu, us: openai}
  anthropic: {us: anthropic}
teams:
  eu-team: {regions: [eu]}
  eu-rewrite: {regions: [eu], cross_region_profiles: rewrite}
  us-team: {regions: [us]}
"""
CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Rename the variable x to count."}]})
CONVERSE = json.dumps({"messages": [{"role": "user", "content": [{"text": "Explain the diff in one line."}]}]})
MESSAGES = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Write a docstring for parse()."}]})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EnvoyProcess, FakeProvider, FakeProvider,
                                                                       FilterProcess]]:
    """(Envoy, the EU endpoint, the US endpoint, the filter). The US fake takes every provider cluster; the EU fake
    the EU regional clusters."""
    tmp = tmp_path_factory.mktemp("residency")
    (tmp / "policy.yaml").write_text(POLICY)
    config = tmp / "filter.yaml"
    config.write_text("metrics_port: 0\npolicy_file: policy.yaml\n")
    with FakeProvider() as eu, FakeProvider() as us, FilterProcess(tmp, config=config) as flt:
        envoy = start_envoy(tmp, "--upstream", us.url, "--upstream", f"bedrock-eu={eu.url}",
                            "--upstream", f"openai-eu={eu.url}", "--filter", flt.address, "--no-usage",
                            env={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "test-only-secret"})
        try:
            yield envoy, eu, us, flt
        finally:
            envoy.stop()


@pytest.fixture()
def fakes(gateway: tuple[EnvoyProcess, FakeProvider, FakeProvider, FilterProcess]) -> tuple[FakeProvider, FakeProvider]:
    _, eu, us, _ = gateway
    eu.clear()
    us.clear()
    return eu, us


def ask(gateway: tuple[EnvoyProcess, FakeProvider, FakeProvider, FilterProcess], path: str, body: str, team: str,
        **headers: str) -> tuple[int, dict[str, str], bytes]:
    return gateway[0].request("POST", path, body.encode(), headers={"x-team-id": team, **headers})


def test_an_eu_team_reaches_only_the_eu_endpoint(gateway, fakes) -> None:  # type: ignore[no-untyped-def]
    eu, us = fakes
    status, _, body = ask(gateway, "/openai/v1/chat/completions", CHAT, "eu-team", authorization="Bearer sk-client")
    assert status == 200, body
    status, _, body = ask(gateway, "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/converse", CONVERSE,
                          "eu-team")
    assert status == 200, body
    assert us.requests == []
    openai, bedrock = eu.requests
    assert openai.path == "/v1/chat/completions" and openai.headers["host"] == "eu.api.openai.com"
    assert bedrock.path == "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    # signed by the gateway for the EU region's host
    assert bedrock.headers["host"] == "bedrock-runtime.eu-central-1.amazonaws.com"
    assert "/eu-central-1/bedrock/aws4_request" in bedrock.headers["authorization"]
    audit = [line for line in gateway[3].audit() if line["identity"]["team"] == "eu-team"][-2:]
    assert [line["region"] for line in audit] == ["eu", "eu-central-1"]


def test_a_us_team_and_a_team_without_regions_use_the_us_endpoint(gateway, fakes) -> None:  # type: ignore[no-untyped-def]
    eu, us = fakes
    for team in ("us-team", "no-policy-team"):
        status, _, body = ask(gateway, "/openai/v1/chat/completions", CHAT, team)
        assert status == 200, body
    assert eu.requests == [] and [r.headers["host"] for r in us.requests] == ["api.openai.com"] * 2


def test_a_provider_without_an_eu_endpoint_is_refused_and_nothing_leaves(gateway, fakes) -> None:  # type: ignore[no-untyped-def]
    eu, us = fakes
    status, headers, body = ask(gateway, "/anthropic/v1/messages", MESSAGES, "eu-team", **{"x-api-key": "sk-ant-x"})
    assert status == 403
    assert headers["x-llm-filter-reason"] == "region_not_allowed"
    error = json.loads(body)  # Anthropic's own error shape
    assert error["type"] == "error" and error["error"]["type"] == "permission_error"
    assert "no gateway endpoint" in error["error"]["message"] and "team eu-team" in error["error"]["message"]
    assert eu.requests == [] and us.requests == []


def test_a_us_cross_region_profile_is_refused_for_an_eu_team(gateway, fakes) -> None:  # type: ignore[no-untyped-def]
    eu, us = fakes
    for profile in ("us", "global"):
        status, headers, body = ask(gateway, f"/bedrock/model/{profile}.anthropic.claude-sonnet-4-v1:0/converse",
                                    CONVERSE, "eu-team")
        assert status == 403, body
        assert headers["x-amzn-errortype"] == "AccessDeniedException"
        assert json.loads(body)["llm_filter"]["reason"] == "region_not_allowed"
    assert eu.requests == [] and us.requests == []


def test_a_us_cross_region_profile_is_moved_to_the_eu_profile_when_the_policy_says_rewrite(gateway, fakes) -> None:  # type: ignore[no-untyped-def]
    eu, us = fakes
    status, _, body = ask(gateway, "/bedrock/model/us.anthropic.claude-sonnet-4-v1:0/converse", CONVERSE, "eu-rewrite")
    assert status == 200, body
    (sent,) = eu.requests
    assert sent.path == "/model/eu.anthropic.claude-sonnet-4-v1:0/converse"
    assert sent.headers["host"] == "bedrock-runtime.eu-central-1.amazonaws.com"
    # the signature covers the path AWS receives (signed after the rewrite)
    assert "/eu-central-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert us.requests == []


def test_a_client_cannot_pick_the_upstream(gateway, fakes) -> None:  # type: ignore[no-untyped-def]
    eu, us = fakes
    status, _, body = ask(gateway, "/openai/v1/chat/completions", CHAT, "us-team",
                          **{"x-llm-upstream-cluster": "openai-eu", "x-llm-upstream-region": "eu"})
    assert status == 200, body
    assert eu.requests == [] and [r.headers["host"] for r in us.requests] == ["api.openai.com"]
    assert us.requests[0].headers["x-llm-upstream-region"] == "us"


def test_without_a_policy_file_a_client_header_cannot_pick_the_upstream_either(tmp_path: Path) -> None:
    with FakeProvider() as eu, FakeProvider() as us, FilterProcess(tmp_path) as flt:
        envoy = start_envoy(tmp_path, "--upstream", us.url, "--upstream", f"openai-eu={eu.url}",
                            "--filter", flt.address, "--no-usage")
        try:
            status, _, body = envoy.request("POST", "/v1/chat/completions", CHAT.encode(),
                                            headers={"x-llm-upstream-cluster": "openai-eu"})
        finally:
            envoy.stop()
    assert status == 200, body
    assert eu.requests == [] and len(us.requests) == 1


# --- the Envoy config ---------------------------------------------------------------------------------------


def http_filter(cfg: dict[str, Any]) -> dict[str, Any]:
    return render.http_filter(cfg, render.EXT_AUTHZ)  # type: ignore[no-any-return]


def _routes(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return render.hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"]


def test_every_provider_has_the_regional_route_render_would_make() -> None:
    cfg = render.load(ENVOY_YAML)
    routes = {r["name"]: r for r in _routes(cfg)}
    for provider in render.provider_clusters(cfg):
        assert routes[f"{provider}-regional"] == render.regional_route(cfg, provider), provider
    # before every other forwarding route: the route picked again after the filter's answer is the regional one
    forwarding = [r["name"] for r in _routes(cfg) if "route" in r]
    assert all(name.endswith("-regional") for name in forwarding[: len(render.provider_clusters(cfg))])
    assert http_filter(cfg)["clear_route_cache"] is True
    assert {"remove_on_match": {"key_matcher": {"prefix": "x-llm-upstream-"}}} in render._early_mutations(cfg)


def test_regional_upstreams_render_validate_and_stay_on_loopback(tmp_path: Path) -> None:
    out = render_config(tmp_path / "regions.yaml", "--upstream", "http://127.0.0.1:9", "--regional-upstream",
                        "bedrock@eu-west-1", "--regional-upstream", "azure@westeurope=myco-weu.openai.azure.com",
                        "--upstream", "bedrock-eu-west-1=http://127.0.0.1:10")
    result = validate(out)
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = yaml.safe_load(out.read_text())
    added = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    signer = render.upstream_filter(added["bedrock-eu-west-1"], render.AWS_SIGNING)
    assert (signer["region"], signer["host_rewrite"]) == ("eu-west-1", "bedrock-runtime.eu-west-1.amazonaws.com")
    assert render._endpoint(added["bedrock-eu-west-1"])["address"]["socket_address"]["port_value"] == 10
    assert render._endpoint(added["azure-westeurope"])["hostname"] == "myco-weu.openai.azure.com"
    addresses = {ep["endpoint"]["address"]["socket_address"]["address"] for c in cfg["static_resources"]["clusters"]
                 for group in c["load_assignment"]["endpoints"] for ep in group["lb_endpoints"]}
    assert addresses == {"127.0.0.1"}  # nothing in a test config reaches past loopback
    names = [r["name"] for r in _routes(cfg)]
    assert names.count("bedrock-regional") == 1 and names.count("azure-regional") == 1


@pytest.mark.parametrize("spec", ["bedrock@mars", "nosuch@eu-west-1", "azure@westeurope", "bedrock@eu-central-1=x"])
def test_a_bad_regional_upstream_is_refused(tmp_path: Path, spec: str) -> None:
    cmd = [sys.executable, str(RENDER), "--regional-upstream", spec, "--regional-upstream", spec]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--regional-upstream" in result.stderr
