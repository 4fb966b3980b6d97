"""Admission and work limits over real gRPC: a worker refuses what it cannot take on, fast and fail closed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2

from filter.audit import AuditLog
from filter.errors import DeadlineExceeded, Overloaded
from filter.formats import DecodeLimits
from filter.runtime import Runtime
from filter.server.admission import Admission, ByteBudget
from filter.settings import Settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from tests.server.conftest import Servicer, make_check_request

LIMITS = DecodeLimits(max_json_nodes=2000, max_inflight_bytes=1_000_000)
CLEAN = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a unit test for add(a, b)."}]}


@pytest.fixture(scope="module")
def grpc_servicer() -> Servicer:
    runtime = Runtime(None, Settings(limits=LIMITS))
    stream = io.StringIO()
    servicer = Servicer(runtime, TokenCounter(load_encoding()), AuditLog(stream=stream), Telemetry())
    servicer.audit_stream = stream
    return servicer


@pytest.fixture
def full_worker(grpc_servicer: Servicer) -> Iterator[None]:
    """Other Checks hold the whole budget of this worker."""
    budget = grpc_servicer.admission.budget
    assert budget.try_take(LIMITS.max_inflight_bytes, LIMITS.max_inflight_bytes, new_holder=True)
    yield
    budget.give_back(LIMITS.max_inflight_bytes, holder_done=True)


def deny(resp: external_auth_pb2.CheckResponse) -> tuple[int, dict[str, str], dict[str, Any]]:
    assert resp.status.code == code_pb2.PERMISSION_DENIED
    headers = {h.header.key: h.header.value for h in resp.denied_response.headers}
    return resp.denied_response.status.code, headers, json.loads(resp.denied_response.body)


def test_body_of_tiny_strings_gets_413_work_limit_exceeded(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    body = {**CLEAN, "x": ["a"] * 10_000}
    status, headers, payload = deny(grpc_stub.Check(make_check_request(body)))
    assert status == 413 and headers["x-llm-filter-reason"] == "work_limit_exceeded"
    assert payload["error"]["code"] == "work_limit_exceeded"
    assert grpc_stub.Check(make_check_request(CLEAN)).status.code == code_pb2.OK  # the budget was given back


def test_full_worker_answers_503_overloaded_with_retry_after(grpc_stub, full_worker: None) -> None:  # type: ignore[no-untyped-def]
    status, headers, payload = deny(grpc_stub.Check(make_check_request(CLEAN, path="/v1/messages")))
    assert status == 503 and headers["x-llm-filter-reason"] == "overloaded"
    assert headers["retry-after"] == "1"
    assert payload["error"]["type"] == "api_error"  # Anthropic's shape for a 503


def test_worker_takes_checks_again_once_the_budget_frees(grpc_stub, grpc_servicer: Servicer) -> None:  # type: ignore[no-untyped-def]
    assert grpc_stub.Check(make_check_request(CLEAN)).status.code == code_pb2.OK
    assert grpc_servicer.admission.budget.in_use == 0


def test_nodes_are_charged_to_the_worker_budget(grpc_stub, grpc_servicer: Servicer) -> None:  # type: ignore[no-untyped-def]
    # 1500 nodes (under max_json_nodes) cost 1500 * 256 bytes: more than what is left of the budget.
    budget = grpc_servicer.admission.budget
    assert budget.try_take(700_000, LIMITS.max_inflight_bytes, new_holder=True)
    try:
        status, headers, _ = deny(grpc_stub.Check(make_check_request({**CLEAN, "x": ["a"] * 1500})))
        assert status == 503 and headers["x-llm-filter-reason"] == "overloaded" and headers["retry-after"] == "1"
    finally:
        budget.give_back(700_000, holder_done=True)


def test_byte_budget_admits_a_lone_body_larger_than_itself() -> None:
    budget = ByteBudget()
    assert budget.try_take(5000, 1000, new_holder=True)  # alone: admitted, or big bodies could never pass
    assert not budget.try_take(10, 1000, new_holder=True)
    budget.give_back(5000, holder_done=True)
    assert budget.try_take(600, 1000, new_holder=True) and budget.try_take(400, 1000, new_holder=True)
    assert not budget.try_take(1, 1000, new_holder=True)


def test_admission_refuses_a_check_whose_deadline_has_passed() -> None:
    admission = Admission()
    with pytest.raises(DeadlineExceeded), admission.admit(10, LIMITS, seconds_left=0.0):
        pass
    assert admission.budget.in_use == 0


def test_admission_gives_back_what_a_refused_check_took() -> None:
    admission = Admission()
    with pytest.raises(Overloaded), admission.admit(600_000, LIMITS, seconds_left=None) as work:
        work.charge_nodes(1900, "request body")  # 486 400 bytes more: over 1 000 000
    assert admission.budget.in_use == 0


def test_a_body_that_decompresses_large_is_charged_its_decoded_size() -> None:
    # 1 000 bytes received (charged 6 000), 200 000 once decompressed: 6 * 199 000 more, past the 1 000 000.
    admission = Admission()
    with admission.admit(1000, LIMITS, seconds_left=None) as work:
        work.charge_decoded(150_000)  # 6 * 149 000 more still fits
    with pytest.raises(Overloaded), admission.admit(1000, LIMITS, seconds_left=None) as work:
        work.charge_decoded(200_000)
    assert admission.budget.in_use == 0
