"""Check over real gRPC (pytest-grpc server on 127.0.0.1) with real xds-protos CheckRequests."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2

from filter.audit import AuditLog
from filter.model import Category
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from filter.runtime import Runtime
from filter.server.authz import AuthorizationServicer
from filter.settings import load_settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from tests.server.conftest import Servicer, make_check_request

RULES = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k")).rules
REWRITE_MARKS = ("x-llm-filter-rewrite", "x-llm-filter-rehydrate")  # only a rewrite verdict sends a request on with them
CLEAN_CHAT = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a coding assistant."},
        {"role": "user", "content": "Why does this loop never end?\n\nwhile i < 10:\n    print(i)\n"},
        {"role": "assistant", "content": "You never increment i. Add `i += 1` inside the loop."},
        {"role": "user", "content": "Thanks. Now write a unit test for add(a, b)."},
    ],
}


def first_example(category: Category) -> tuple[str, str]:
    rule = next(r for r in RULES if r.category is category)
    return rule.id, rule.examples.match[0]


def denied_body(resp: external_auth_pb2.CheckResponse) -> dict[str, Any]:
    assert resp.status.code == code_pb2.PERMISSION_DENIED
    return json.loads(resp.denied_response.body)  # type: ignore[no-any-return]


def headers_of(resp: external_auth_pb2.CheckResponse) -> dict[str, str]:
    opts = resp.ok_response.headers if resp.HasField("ok_response") else resp.denied_response.headers
    return {h.header.key: h.header.value for h in opts}


def test_clean_conversation_is_allowed_with_provider_hop_headers(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    resp = grpc_stub.Check(make_check_request(CLEAN_CHAT, headers={"x-workspace-id": "ws-7"}))
    assert resp.status.code == code_pb2.OK
    h = headers_of(resp)
    assert h["x-llm-filter-decision"] == "allow" and h["x-workspace-id"] == "ws-7"
    assert int(h["x-llm-prompt-tokens"]) > 0 and len(h["x-llm-filter-id"]) == 20


@pytest.mark.parametrize("category", [Category.SECRET, Category.PII, Category.FILE])
def test_each_category_is_denied_as_an_anthropic_invalid_request(grpc_stub, category: Category) -> None:  # type: ignore[no-untyped-def]
    """400 invalid_request_error: Claude Code and the SDK show the message (a 403 reads "Failed to authenticate")."""
    rule_id, example = first_example(category)
    body = {"model": "claude-sonnet-4", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": [{"type": "text", "text": "look:"},
                                                      {"type": "text", "text": example}]}]}
    resp = grpc_stub.Check(make_check_request(body, path="/v1/messages"))
    assert resp.denied_response.status.code == 400
    err = denied_body(resp)
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert err["error"]["message"].startswith("Request blocked by the content filter: ")
    assert "message 3 of 3 (this turn): remove the value and retry" in err["error"]["message"]
    assert headers_of(resp)["x-llm-filter-decision"] == "deny"
    details = err["error"]["llm_filter"]
    assert {"rule": rule_id, "category": category.value} in [
        {"rule": f["rule"], "category": f["category"]} for f in details["findings"]]
    assert "messages[2].content[1].text" in {f["location"] for f in details["findings"]}
    assert rule_id in err["error"]["message"]


def test_openai_and_gemini_denies_use_their_own_shapes(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    _, example = first_example(Category.SECRET)
    oa = denied_body(grpc_stub.Check(make_check_request(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": example}]})))
    assert oa["error"]["code"] == "secret_detected" and "llm_filter" in oa["error"]
    gem = denied_body(grpc_stub.Check(make_check_request(
        {"contents": [{"role": "user", "parts": [{"text": example}]}]},
        path="/v1beta/models/gemini-2.0-flash:generateContent")))
    assert gem["error"]["code"] == 400 and gem["error"]["status"] == "INVALID_ARGUMENT"
    # Vertex AI answers as Google APIs do, SageMaker as AWS: their SDKs read those shapes.
    vertex = denied_body(grpc_stub.Check(make_check_request(
        {"contents": [{"role": "user", "parts": [{"text": example}]}]},
        path="/vertex/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent")))
    assert vertex["error"]["status"] == "INVALID_ARGUMENT"
    sagemaker = grpc_stub.Check(make_check_request({"inputs": example}, path="/sagemaker/endpoints/llm/invocations"))
    assert headers_of(sagemaker)["x-amzn-errortype"] == "ValidationException"
    assert "llm_filter" in denied_body(sagemaker)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "reason"),
    [
        ({"body": b'{"model": "gpt-4o", "messages": [}'}, 400, "malformed_request"),
        ({"body": gzip.compress(b"{}"), "headers": {"content-encoding": "compress"}}, 415, "unsupported_encoding"),
        ({"body": json.dumps(CLEAN_CHAT), "headers": {"x-envoy-auth-partial-body": "true"}}, 413, "body_too_large"),
    ],
)
def test_bad_bodies_get_clear_4xx(grpc_stub, request_kwargs: dict[str, Any], status: int, reason: str) -> None:  # type: ignore[no-untyped-def]
    resp = grpc_stub.Check(make_check_request(**request_kwargs))
    assert resp.denied_response.status.code == status
    assert headers_of(resp)["x-llm-filter-reason"] == reason
    assert "model" not in denied_body(resp)["error"]["message"]  # never quotes the body


def test_gzip_body_with_a_secret_is_denied(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    _, example = first_example(Category.SECRET)
    raw = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": example}]}).encode()
    resp = grpc_stub.Check(make_check_request(gzip.compress(raw), headers={"content-encoding": "gzip"}))
    assert resp.denied_response.status.code == 400
    assert headers_of(resp)["x-llm-filter-reason"] == "secret_detected"


def test_verified_jwt_identity_wins_over_a_forged_header(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    req = make_check_request(CLEAN_CHAT, headers={"x-workspace-id": "forged", "x-team-id": "forged"})
    claims = struct_pb2.Struct()
    claims.update({"jwt_payload": {"workspace": "ws-real", "team": "team-real", "sub": "agent-1"}})
    req.attributes.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"].CopyFrom(claims)
    h = headers_of(grpc_stub.Check(req))
    assert (h["x-workspace-id"], h["x-team-id"], h["x-agent-id"]) == ("ws-real", "team-real", "agent-1")


def test_no_matched_value_reaches_a_response_or_the_audit_log(grpc_stub, grpc_servicer: Servicer) -> None:  # type: ignore[no-untyped-def]
    """Every shipped match example is sent; none of its matched text appears in the answer or the audit line."""
    for rule in RULES:
        example = rule.examples.match[0]
        grpc_servicer.audit_stream.seek(0)
        grpc_servicer.audit_stream.truncate()
        resp = grpc_stub.Check(make_check_request({"model": "m", "messages": [{"role": "user", "content": example}]}))
        answer = resp.SerializeToString()
        audit = grpc_servicer.audit_stream.getvalue()
        findings = json.loads(audit)["findings"]
        assert findings, rule.id
        for f in findings:
            value = example[f["start"]:f["end"]]
            # the token itself, not short common words: every matched span is at least 6 characters here
            if len(value) >= 6:
                assert value.encode() not in answer, rule.id
                assert value not in audit, rule.id


@pytest.fixture(scope="module")
def untrusting_stub() -> Iterator[external_auth_pb2_grpc.AuthorizationStub]:
    """A second real servicer over gRPC whose policy does not trust identity headers (no JWT: no identity)."""
    settings = load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"})
    settings = replace(settings, policy=replace(settings.policy, trust_identity_headers=False))
    servicer = AuthorizationServicer(Runtime(None, settings), TokenCounter(load_encoding()),
                                     AuditLog(stream=io.StringIO()), Telemetry())
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield external_auth_pb2_grpc.AuthorizationStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    server.stop(None)


def metadata_of(resp: external_auth_pb2.CheckResponse) -> dict[str, Any]:
    return json_format.MessageToDict(resp.dynamic_metadata)


def test_metadata_carries_verified_identity_and_the_path_without_query(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    resp = grpc_stub.Check(make_check_request(CLEAN_CHAT, path="/v1/chat/completions?key=AIzaSyQueryKey",
                                              headers={"x-workspace-id": "ws-7", "x-team-id": "t-1"}))
    meta = metadata_of(resp)
    assert meta["workspace_id"] == "ws-7" and meta["team_id"] == "t-1"
    assert "project_id" not in meta and "agent_id" not in meta  # unknown: omitted
    assert meta["path"] == "/v1/chat/completions" and meta["reason"] == "allowed"
    assert meta["decision_id"] == headers_of(resp)["x-llm-filter-id"]
    assert set(resp.ok_response.headers_to_remove) == {"x-project-id", "x-agent-id", *REWRITE_MARKS}


def test_metadata_path_masks_a_key_and_a_deny_carries_it_too(grpc_stub) -> None:  # type: ignore[no-untyped-def]
    key = "AKIAZ7QW3ERT5YU2IOPL"  # AWS access key id format, random characters
    resp = grpc_stub.Check(make_check_request(CLEAN_CHAT, path=f"/v1/chat/completions/{key}"))
    meta = metadata_of(resp)
    assert resp.status.code == code_pb2.PERMISSION_DENIED and meta["reason"] == "secret_detected"
    assert key not in meta["path"] and "[REDACTED]" in meta["path"]


def test_unverified_identity_headers_are_removed_and_never_in_metadata(untrusting_stub) -> None:  # type: ignore[no-untyped-def]
    forged = {"x-workspace-id": "forged-ws", "x-team-id": "forged-t", "x-project-id": "p", "x-agent-id": "a"}
    resp = untrusting_stub.Check(make_check_request(CLEAN_CHAT, headers=forged))
    assert resp.status.code == code_pb2.OK
    assert set(resp.ok_response.headers_to_remove) == {*forged, *REWRITE_MARKS}
    assert not set(headers_of(resp)) & set(forged)
    assert not {"workspace_id", "team_id", "project_id", "agent_id"} & set(metadata_of(resp))


def test_verified_jwt_identity_is_the_metadata_and_unclaimed_headers_are_removed(untrusting_stub) -> None:  # type: ignore[no-untyped-def]
    req = make_check_request(CLEAN_CHAT, headers={"x-workspace-id": "forged", "x-project-id": "forged"})
    claims = struct_pb2.Struct()
    claims.update({"jwt_payload": {"workspace": "ws-real", "sub": "agent-1"}})
    req.attributes.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"].CopyFrom(claims)
    resp = untrusting_stub.Check(req)
    meta = metadata_of(resp)
    assert (meta["workspace_id"], meta["agent_id"]) == ("ws-real", "agent-1") and "project_id" not in meta
    assert headers_of(resp)["x-workspace-id"] == "ws-real"
    assert set(resp.ok_response.headers_to_remove) == {"x-team-id", "x-project-id", *REWRITE_MARKS}
