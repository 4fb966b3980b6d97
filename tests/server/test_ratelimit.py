"""RateLimitService: per-workspace / per-team requests per minute, overrides, retry-after."""

from __future__ import annotations

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


def ask(svc: RateLimitServicer, **entries: str) -> rls_pb2.RateLimitResponse:
    descriptors = [ratelimit_pb2.RateLimitDescriptor(entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v)])
                   for k, v in entries.items()]
    return svc.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="llm-gateway", descriptors=descriptors), None)


def test_workspace_over_limit_while_another_flows_and_window_resets() -> None:
    now = [1_000_040.0]  # 20 s into a minute window that ends at 1_000_080
    svc = servicer(RateLimits(workspace_requests_per_minute=2), now)
    assert [ask(svc, workspace_id="a").overall_code for _ in range(3)] == [OK, OK, OVER]
    assert ask(svc, workspace_id="b").overall_code == OK
    over = ask(svc, workspace_id="a")
    headers = {h.key: h.value for h in over.response_headers_to_add}
    assert headers["retry-after"] == "41" and b"rate_limited" in over.raw_body
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
