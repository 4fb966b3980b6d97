"""The policy file through the real servicer over real gRPC: scope refusals (403) and token budgets (429, 503)
in each provider's error shape, with a real SQLite store."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2

from filter.audit import AuditLog
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.store import Budget, SqliteStore, Window
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from tests.server.conftest import Servicer, make_check_request

POLICY = """\
default:
  providers: [anthropic, openai, gemini]
  models: ["claude-*", "gpt-4o*", "gemini-*"]
teams:
  payments:
    models: ["claude-sonnet-*"]
agents:
  tiny: {budgets: {daily_tokens: 200}}
  "*": {budgets: {daily_tokens: 100000}}
"""


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store") / "budgets.db"


@pytest.fixture(scope="module")
def grpc_servicer(tmp_path_factory: pytest.TempPathFactory, store_path: Path) -> Servicer:
    base = tmp_path_factory.mktemp("config")
    (base / "policy.yaml").write_text(POLICY)
    (base / "config.yaml").write_text("policy_file: policy.yaml\n")
    settings = load_settings(str(base / "config.yaml"), env={"LLM_FILTER_FINGERPRINT_KEY": "k"})
    stream = io.StringIO()
    servicer = Servicer(Runtime(str(base / "config.yaml"), settings), TokenCounter(load_encoding()),
                        AuditLog(stream=stream), Telemetry(), store=SqliteStore(store_path, busy_timeout=0.1))
    servicer.audit_stream = stream
    return servicer


def check(stub: Any, body: dict[str, Any], path: str, agent: str, team: str = "") -> external_auth_pb2.CheckResponse:  # noqa: ANN401
    headers = {"x-agent-id": agent, **({"x-team-id": team} if team else {})}
    return stub.Check(make_check_request(body, path=path, headers=headers))


def deny(resp: external_auth_pb2.CheckResponse) -> tuple[int, dict[str, str], dict[str, Any]]:
    assert resp.status.code == code_pb2.PERMISSION_DENIED
    headers = {h.header.key: h.header.value for h in resp.denied_response.headers}
    return resp.denied_response.status.code, headers, json.loads(resp.denied_response.body)


CLAUDE = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
OPUS = {**CLAUDE, "model": "claude-opus-4-1"}
GPT = {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def test_a_model_outside_the_team_scope_is_a_403_naming_the_policy(grpc_stub: Any) -> None:  # noqa: ANN401
    status, headers, body = deny(check(grpc_stub, OPUS, "/v1/messages", "a1", team="payments"))
    assert status == 403 and headers["x-llm-filter-reason"] == "model_not_allowed"
    assert body["error"]["type"] == "permission_error"
    message = body["error"]["message"]
    assert "'claude-opus-4-1' is not allowed by the gateway policy for team payments" in message
    assert "authenticat" not in message.lower()
    assert check(grpc_stub, OPUS, "/v1/messages", "a1", team="research").status.code == code_pb2.OK


def test_a_provider_outside_the_scope_is_a_403_in_its_shape(grpc_stub: Any) -> None:  # noqa: ANN401
    bedrock = {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 10}}
    status, headers, body = deny(check(grpc_stub, bedrock, "/model/anthropic.claude-v2/converse", "a1"))
    assert status == 403 and headers["x-llm-filter-reason"] == "provider_not_allowed"
    assert headers["x-amzn-errortype"] == "AccessDeniedException"
    assert "gateway policy for default" in body["message"]


def test_an_exhausted_budget_is_a_429_in_each_provider_shape_and_reserves_nothing(
        grpc_stub: Any, store_path: Path) -> None:  # noqa: ANN401
    store = SqliteStore(store_path)
    granted = 0
    while (resp := check(grpc_stub, CLAUDE, "/v1/messages", "tiny")).status.code == code_pb2.OK:
        granted += 1
    held = store.usage([Budget("agent:tiny", Window.DAY, 200)])[0].reserved
    assert granted >= 1 and 200 - held < held / granted  # refused only once the next one did not fit
    status, headers, body = deny(resp)
    assert status == 429 and headers["x-llm-filter-reason"] == "budget_exceeded"
    assert body["error"]["type"] == "rate_limit_error" and int(headers["retry-after"]) >= 1
    assert headers["x-llm-filter-budget"] == "agent:tiny/day" and headers["x-llm-filter-budget-limit"] == "200"
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 150}}
    status, _, body = deny(check(grpc_stub, gemini, "/v1beta/models/gemini-2.5-pro:generateContent", "tiny"))
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    status, _, body = deny(check(grpc_stub, {**GPT, "max_tokens": 150}, "/v1/chat/completions", "tiny"))
    assert status == 429 and body["error"]["code"] == "budget_exceeded"
    assert body["error"]["type"] == "rate_limit_exceeded"  # what OpenAI calls its own 429s
    assert store.usage([Budget("agent:tiny", Window.DAY, 200)])[0].reserved == held


def test_the_reservation_id_is_the_decision_id(grpc_stub: Any, store_path: Path) -> None:  # noqa: ANN401
    resp = check(grpc_stub, CLAUDE, "/v1/messages", "a7")
    decision_id = {h.header.key: h.header.value for h in resp.ok_response.headers}["x-llm-filter-id"]
    store = SqliteStore(store_path)
    assert store.release(decision_id)  # the usage observer settles it under this id
    assert store.usage([Budget("agent:a7", Window.DAY, 1)])[0].reserved == 0


def test_a_locked_store_is_a_503_store_unavailable(grpc_stub: Any, store_path: Path) -> None:  # noqa: ANN401
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        status, headers, body = deny(check(grpc_stub, CLAUDE, "/v1/messages", "a8"))
    finally:
        blocker.rollback()
    assert status == 503 and headers["x-llm-filter-reason"] == "store_unavailable" and headers["retry-after"] == "5"
    assert body["error"]["type"] == "api_error"
