"""envoy.service.ratelimit.v3.RateLimitService: per-workspace and per-team requests per minute.

Over the limit, the 429 body is in the route's provider's own error shape (a `provider` descriptor entry names
it), so each SDK shows the message and backs off (`retry-after` always set).

Counts live in the shared store when one is configured (`store:` in the config: SQLite for the workers of one
host, Redis for every replica), so all workers enforce one limit; without a store they live in this process
(fixed one-minute windows), exact for one replica and one worker. A store that cannot answer fails the call
(gRPC UNAVAILABLE): Envoy's ratelimit filter (failure_mode_deny) then answers its fail-closed 503, unless the
policy file says `on_store_error: allow` (as for budgets): then the request goes through uncounted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import duration_pb2

from filter.headers import CONTENT_TYPE, REASON, RETRY_AFTER
from filter.reasons import Reason
from filter.runtime import Runtime
from filter.server.response import rate_limited_body
from filter.settings import RateLimits
from filter.store import Store, StoreError
from filter.telemetry import Telemetry

log = logging.getLogger("llm_content_filter")

WINDOW_SECONDS = 60
PROVIDER_KEY = "provider"  # descriptor entry with the route's provider: anthropic, openai, gemini, bedrock, ...


class RequestCounter:
    """Fixed-window counters keyed by (descriptor key, value, window start)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, value: str, amount: int) -> tuple[int, int]:
        """Add `amount`; return (count in this window, seconds until it resets)."""
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            if len(self._counts) > 100_000:  # drop finished windows
                self._counts = {k: v for k, v in self._counts.items() if k[2] >= window}
            count = self._counts.get((key, value, window), 0) + amount
            self._counts[(key, value, window)] = count
        return count, int((window + 1) * WINDOW_SECONDS - now) + 1


def limit_for(limits: RateLimits, key: str, value: str) -> int:
    """Requests per minute for one descriptor entry; 0 means unlimited."""
    for o_key, o_value, rpm in limits.overrides:
        if o_key == key and o_value == value:
            return rpm
    if key == "workspace_id":
        return limits.workspace_requests_per_minute
    if key == "team_id":
        return limits.team_requests_per_minute
    return 0


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, runtime: Runtime, counter: RequestCounter, telemetry: Telemetry,
                 store: Store | None = None) -> None:
        self.runtime = runtime
        self.counter = counter
        self.telemetry = telemetry
        self.store = store  # shared counts (all workers, all replicas); None: `counter`, this process only

    def _hit(self, key: str, value: str, amount: int, limit: int) -> tuple[int, int]:
        """(count in this window, seconds until it resets); StoreError when the shared store cannot answer."""
        if self.store is None:
            return self.counter.hit(key, value, amount)
        hit = self.store.hit(key, value, amount, limit, WINDOW_SECONDS)
        return hit.count, hit.reset_seconds

    def ShouldRateLimit(self, request: rls_pb2.RateLimitRequest, context: grpc.ServicerContext) -> rls_pb2.RateLimitResponse:  # noqa: N802
        limits = self.runtime.current.settings.rate_limits
        ok, over = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
        statuses = []
        overall = ok
        retry_after = 0
        addend = request.hits_addend or 1
        for descriptor in request.descriptors:
            status = rls_pb2.RateLimitResponse.DescriptorStatus(code=ok)
            for entry in descriptor.entries:
                if entry.key == PROVIDER_KEY:
                    continue  # names the answer's shape; never a counter
                rpm = limit_for(limits, entry.key, entry.value)
                if rpm <= 0:
                    continue
                try:
                    count, reset = self._hit(entry.key, entry.value, addend, rpm)
                except StoreError as e:
                    policy = self.runtime.current.policy
                    if policy is not None and policy.on_store_error == "allow":
                        log.warning("rate limit store unavailable, %s not counted (on_store_error: allow): %s",
                                    entry.key, e)
                        continue
                    log.error("rate limit store unavailable: %s", e)
                    # Not OVER_LIMIT (that would be a 429 telling the client to slow down): an error, which
                    # Envoy answers with its fail-closed 503 (failure_mode_deny) in the provider's shape.
                    context.abort(grpc.StatusCode.UNAVAILABLE, "rate limit store unavailable")
                status = rls_pb2.RateLimitResponse.DescriptorStatus(
                    code=over if count > rpm else ok,
                    current_limit=rls_pb2.RateLimitResponse.RateLimit(
                        name=f"{entry.key}={entry.value}", requests_per_unit=rpm,
                        unit=rls_pb2.RateLimitResponse.RateLimit.MINUTE),
                    limit_remaining=max(rpm - count, 0),
                    duration_until_reset=duration_pb2.Duration(seconds=reset),
                )
                if count > rpm:
                    overall = over
                    retry_after = max(retry_after, reset)
                    self.telemetry.rate_limited.add(1, {"key": entry.key})
                    break
            statuses.append(status)
        if overall != over:
            return rls_pb2.RateLimitResponse(overall_code=overall, statuses=statuses)
        provider = _provider(request)
        body, extra = rate_limited_body(provider, f"Request rate limit reached; retry in {retry_after} s.")
        headers = {RETRY_AFTER: str(retry_after), CONTENT_TYPE: "application/json", REASON: Reason.RATE_LIMITED,
                   **extra}
        return rls_pb2.RateLimitResponse(
            overall_code=over, statuses=statuses, raw_body=json.dumps(body, separators=(",", ":")).encode(),
            response_headers_to_add=[base_pb2.HeaderValue(key=k, value=v) for k, v in headers.items()],
        )


def _provider(request: rls_pb2.RateLimitRequest) -> str:
    """The route's provider, from the descriptor entry Envoy adds for it (not counted); "" when absent."""
    for descriptor in request.descriptors:
        for entry in descriptor.entries:
            if entry.key == PROVIDER_KEY:
                return str(entry.value)
    return ""
