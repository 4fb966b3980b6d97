"""gRPC fixtures: a real grpc server on 127.0.0.1 (pytest-grpc) serving the real servicer and shipped packs."""

from __future__ import annotations

import io

import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc

from filter.audit import AuditLog
from filter.runtime import Runtime
from filter.server.authz import AuthorizationServicer
from filter.settings import load_settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from tests.support.envelopes import make_check_request as make_check_request  # re-exported: tests import it from here


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
