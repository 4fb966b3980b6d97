"""gRPC fixtures: a real grpc server on 127.0.0.1 (pytest-grpc) serving the real servicer and shipped packs."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc

from filter.audit import AuditLog
from filter.runtime import Runtime
from filter.server.authz import AuthorizationServicer
from filter.settings import load_settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding


def make_check_request(body: bytes | str | dict[str, Any], path: str = "/v1/chat/completions",
                       headers: dict[str, str] | None = None, method: str = "POST") -> external_auth_pb2.CheckRequest:
    """A CheckRequest as Envoy builds it with with_request_body + pack_as_bytes."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method=method, path=path, host="gateway", scheme="http", protocol="HTTP/1.1",
        headers={"content-type": "application/json", **(headers or {})}, raw_body=body, size=len(body),
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(request=attribute_context_pb2.AttributeContext.Request(http=http))
    )


class Servicer(AuthorizationServicer):
    """The real servicer with its audit stream kept for assertions."""

    audit_stream: io.StringIO


@pytest.fixture(scope="module")
def grpc_add_to_server():  # type: ignore[no-untyped-def]
    return external_auth_pb2_grpc.add_AuthorizationServicer_to_server


@pytest.fixture(scope="module")
def grpc_servicer() -> Servicer:
    stream = io.StringIO()
    settings = load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"})
    runtime = Runtime(None, settings)
    servicer = Servicer(runtime, TokenCounter(load_encoding()), AuditLog(stream=stream), Telemetry())
    servicer.audit_stream = stream
    return servicer


@pytest.fixture(scope="module")
def grpc_stub_cls(grpc_channel):  # type: ignore[no-untyped-def]
    return external_auth_pb2_grpc.AuthorizationStub
