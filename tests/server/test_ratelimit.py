"""RateLimitService: per-workspace / per-team requests per minute, overrides, retry-after."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from filter.runtime import Runtime
from filter.server.ratelimit import RateLimitServicer, RequestCounter
from filter.settings import RateLimits, StoreSettings, load_settings
from filter.store import Store, open_store
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


# -- counts in the shared store (`store:` configured) -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_servicer(limits: RateLimits, store: Store, policy_file: Path | None = None) -> RateLimitServicer:
    settings = replace(load_settings(None, env={}), rate_limits=limits, store=StoreSettings(url="sqlite:///unused"),
                       policy_file=None if policy_file is None else str(policy_file))
    return RateLimitServicer(Runtime(None, settings), RequestCounter(), Telemetry(), store=store)


def test_workers_sharing_a_store_enforce_one_limit(tmp_path: Path) -> None:
    """Two workers (each its own servicer and store connection on one SQLite file): 5 per minute in total."""
    path = tmp_path / "store.db"
    limits = RateLimits(workspace_requests_per_minute=5)
    first = store_servicer(limits, open_store(f"sqlite:///{path}"))
    second = store_servicer(limits, open_store(f"sqlite:///{path}"))
    answers = [ask(svc, "anthropic", workspace_id="w").overall_code for svc in [first, second] * 4]
    assert answers == [OK] * 5 + [OVER] * 3
    over = ask(second, "anthropic", workspace_id="w")
    headers = {h.key: h.value for h in over.response_headers_to_add}
    assert 1 <= int(headers["retry-after"]) <= 61 and json.loads(over.raw_body)["error"]["type"] == "rate_limit_error"
    assert ask(first, "anthropic", workspace_id="other").overall_code == OK


def _serve(svc: RateLimitServicer) -> tuple[grpc.Server, rls_pb2_grpc.RateLimitServiceStub, grpc.Channel]:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(svc, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, rls_pb2_grpc.RateLimitServiceStub(channel), channel


def _request(**entries: str) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(domain="llm-gateway", descriptors=[
        ratelimit_pb2.RateLimitDescriptor(entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v)])
        for k, v in entries.items()])


def test_unreachable_store_is_an_error_not_a_429() -> None:
    """Envoy's ratelimit filter (failure_mode_deny) answers an error call with its fail-closed 503; OVER_LIMIT
    would tell the client it sent too much. Nothing listens on the Redis port here."""
    store = open_store(f"redis://127.0.0.1:{_free_port()}/0", timeout=0.2)
    server, stub, channel = _serve(store_servicer(RateLimits(workspace_requests_per_minute=5), store))
    try:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ShouldRateLimit(_request(workspace_id="w"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # No limit applies to this request: the store is not asked, and the answer is OK.
        assert stub.ShouldRateLimit(_request(project_id="p"), timeout=10).overall_code == OK
    finally:
        channel.close()
        server.stop(None)
        store.close()


def test_unreachable_store_with_on_store_error_allow_lets_requests_through_uncounted(tmp_path: Path) -> None:
    """One switch for the whole store: the policy file's `on_store_error` decides for rate limits as for budgets."""
    store = open_store(f"redis://127.0.0.1:{_free_port()}/0", timeout=0.2)
    policy = tmp_path / "policy.yaml"
    policy.write_text("on_store_error: allow\n")
    svc = store_servicer(RateLimits(workspace_requests_per_minute=1), store, policy)
    assert [ask(svc, workspace_id="w").overall_code for _ in range(3)] == [OK, OK, OK]
    policy.write_text("on_store_error: deny\n")
    denying = store_servicer(RateLimits(workspace_requests_per_minute=1), store, policy)
    request = rls_pb2.RateLimitRequest(domain="llm-gateway", descriptors=[ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="workspace_id", value="w")])])
    with pytest.raises(Aborted, match="UNAVAILABLE"):
        denying.ShouldRateLimit(request, AbortingContext())
    store.close()


class Aborted(Exception):
    pass


class AbortingContext:
    """What grpc's context.abort does for a servicer: end the call with an error status."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(f"{code.name}: {details}")
