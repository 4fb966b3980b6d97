"""A scripted stand-in for the filter's gRPC side, used ONLY to pin Envoy's half of the contract.

The filter server (filter/) is the real thing and has its own end-to-end tests. These config
tests need to see exactly what Envoy sends to `Check` and to the RateLimitService (body bytes,
headers, route metadata, verified JWT claims, descriptors) and what Envoy does with each kind
of answer, independently of the filter's detection logic. So this stub records every call and
answers as the test scripts it: allow (with headers for the provider hop), deny (status + body),
over limit, or slow. It also serves grpc.health.v1 like the real server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

CheckRequest = external_auth_pb2.CheckRequest
CheckResponse = external_auth_pb2.CheckResponse
RateLimitRequest = rls_pb2.RateLimitRequest

MAX_MESSAGE = 32 * 1024 * 1024  # a CheckRequest carries up to 16 MiB of body


def allow(
    headers: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    remove: list[str] | None = None,
) -> CheckResponse:
    """OK; `headers` are set (overwriting) and `remove` removed on the request that goes to the
    provider; `metadata` becomes dynamic metadata in namespace envoy.filters.http.ext_authz."""
    ok = external_auth_pb2.OkHttpResponse(
        headers_to_remove=remove or [],
        headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=k, value=v),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
            for k, v in (headers or {}).items()
        ],
    )
    response = CheckResponse(status=status_pb2.Status(code=code_pb2.OK), ok_response=ok)
    if metadata:
        response.dynamic_metadata.update(metadata)
    return response


def deny(status: int, body: str, headers: dict[str, str] | None = None) -> CheckResponse:
    denied = external_auth_pb2.DeniedHttpResponse(
        status=http_status_pb2.HttpStatus(code=status),
        body=body,
        headers=[
            base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=k, value=v)) for k, v in (headers or {}).items()
        ],
    )
    return CheckResponse(status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED), denied_response=denied)


class AuthzStub:
    """gRPC server on 127.0.0.1:<free port> with Authorization, RateLimitService and Health."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: list[CheckRequest] = []
        self._ratelimits: list[RateLimitRequest] = []
        self.on_check: Callable[[CheckRequest], CheckResponse] = lambda _req: allow()
        self.over_limit = False
        self.over_limit_headers: dict[str, str] = {}
        self.check_delay = 0.0
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(_Authz(self), self._server)
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(_RateLimit(self), self._server)
        self._health = health.HealthServicer()
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def checks(self) -> list[CheckRequest]:
        with self._lock:
            return list(self._checks)

    @property
    def ratelimits(self) -> list[RateLimitRequest]:
        with self._lock:
            return list(self._ratelimits)

    def clear(self) -> None:
        with self._lock:
            self._checks.clear()
            self._ratelimits.clear()
        self.on_check = lambda _req: allow()
        self.over_limit = False
        self.over_limit_headers = {}
        self.check_delay = 0.0

    def __enter__(self) -> AuthzStub:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


class _Authz(external_auth_pb2_grpc.AuthorizationServicer):
    def __init__(self, stub: AuthzStub) -> None:
        self._stub = stub

    def Check(self, request: CheckRequest, context: grpc.ServicerContext) -> CheckResponse:  # noqa: N802
        with self._stub._lock:
            self._stub._checks.append(request)
        if self._stub.check_delay:
            time.sleep(self._stub.check_delay)
        return self._stub.on_check(request)


class _RateLimit(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, stub: AuthzStub) -> None:
        self._stub = stub

    def ShouldRateLimit(  # noqa: N802
        self, request: RateLimitRequest, context: grpc.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        with self._stub._lock:
            self._stub._ratelimits.append(request)
        if not self._stub.over_limit:
            return rls_pb2.RateLimitResponse(overall_code=rls_pb2.RateLimitResponse.OK)
        return rls_pb2.RateLimitResponse(
            overall_code=rls_pb2.RateLimitResponse.OVER_LIMIT,
            response_headers_to_add=[
                base_pb2.HeaderValue(key=k, value=v) for k, v in self._stub.over_limit_headers.items()
            ],
        )
