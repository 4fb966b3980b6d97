"""RateLimitService: per-workspace / per-team requests per minute, overrides, retry-after."""

from __future__ import annotations

import json
from dataclasses import replace

from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from filter.runtime import Runtime
from filter.server.ratelimit import RateLimitServicer, RequestCounter
from filter.settings import RateLimits, load_settings
from filter.telemetry import Telemetry

OK, OVER = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT


def servicer(limits: RateLimits, now: list[float]) -> RateLimitServicer:
    settings = replace(load_settings(None, env={}), rate_limits=limits)
    return RateLimitServicer(Runtime(None, settings), RequestCounter(clock=lambda: now[0]), Telemetry())


def ask(svc: RateLimitServicer, provider: str | None = None, **entries: str) -> rls_pb2.RateLimitResponse:
    """One request's descriptors as Envoy sends them: one per identity entry, each with the route's provider."""
    extra = [ratelimit_pb2.RateLimitDescriptor.Entry(key="provider", value=provider)] if provider else []
    descriptors = [ratelimit_pb2.RateLimitDescriptor(entries=[*extra, ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v)])
                   for k, v in entries.items()]
    return svc.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="llm-gateway", descriptors=descriptors), None)


def test_workspace_over_limit_while_another_flows_and_window_resets() -> None:
    now = [1_000_040.0]  # 20 s into a minute window that ends at 1_000_080
    svc = servicer(RateLimits(workspace_requests_per_minute=2), now)
    assert [ask(svc, workspace_id="a").overall_code for _ in range(3)] == [OK, OK, OVER]
    assert ask(svc, workspace_id="b").overall_code == OK
    over = ask(svc, workspace_id="a")
    headers = {h.key: h.value for h in over.response_headers_to_add}
    assert headers["retry-after"] == "41" and b"rate_limit" in over.raw_body
    now[0] += 40.5  # next minute window
    assert ask(svc, workspace_id="a").overall_code == OK


def test_team_limit_and_overrides() -> None:
    svc = servicer(RateLimits(team_requests_per_minute=1, overrides=(("workspace_id", "batch", 0),
                                                                      ("team_id", "big", 3))), [0.0])
    assert [ask(svc, team_id="t").overall_code for _ in range(2)] == [OK, OVER]
    assert [ask(svc, team_id="big").overall_code for _ in range(4)] == [OK, OK, OK, OVER]
    assert all(ask(svc, workspace_id="batch").overall_code == OK for _ in range(10))  # 0 = unlimited


def test_no_limits_configured_is_always_ok() -> None:
    svc = servicer(RateLimits(), [0.0])
    assert all(ask(svc, workspace_id="w", team_id="t").overall_code == OK for _ in range(100))


def test_429_is_in_each_providers_own_shape_with_retry_after() -> None:
    """What each SDK reads: Anthropic `rate_limit_error`, OpenAI `rate_limit_exceeded`, Gemini `status`
    RESOURCE_EXHAUSTED (google-genai prints "429 RESOURCE_EXHAUSTED. <message>"), Bedrock's error type header."""
    svc = servicer(RateLimits(workspace_requests_per_minute=1), [30.0])
    answers = {}
    for provider in ("anthropic", "openai", "gemini", "bedrock", "groq", None):
        ws = f"ws-{provider}"
        assert ask(svc, provider, workspace_id=ws).overall_code == OK  # the provider entry is never counted
        over = ask(svc, provider, workspace_id=ws)
        assert over.overall_code == OVER
        headers = {h.key: h.value for h in over.response_headers_to_add}
        assert headers["retry-after"] == "31" and headers["content-type"] == "application/json"
        answers[provider] = (json.loads(over.raw_body), headers)
    anthropic, _ = answers["anthropic"]
    assert anthropic["type"] == "error" and anthropic["error"]["type"] == "rate_limit_error"
    assert "retry in 31 s" in anthropic["error"]["message"]
    for openai_like in ("openai", "groq", None):
        err = answers[openai_like][0]["error"]
        assert err["code"] == "rate_limit_exceeded" and "retry in" in err["message"]
    gemini = answers["gemini"][0]["error"]
    assert (gemini["code"], gemini["status"]) == (429, "RESOURCE_EXHAUSTED") and gemini["message"]
    bedrock, bedrock_headers = answers["bedrock"]
    assert bedrock_headers["x-amzn-errortype"] == "ThrottlingException" and "retry in" in bedrock["message"]


def test_provider_entry_alone_is_never_limited() -> None:
    svc = servicer(RateLimits(workspace_requests_per_minute=1, overrides=(("provider", "anthropic", 1),)), [0.0])
    only_provider = rls_pb2.RateLimitRequest(domain="llm-gateway", descriptors=[ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="provider", value="anthropic")])])
    assert all(svc.ShouldRateLimit(only_provider, None).overall_code == OK for _ in range(5))
