"""Check over real gRPC (pytest-grpc server on 127.0.0.1) with real xds-protos CheckRequests."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2

from filter.model import Category
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from tests.server.conftest import Servicer, make_check_request

RULES = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k")).rules
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
def test_each_category_is_denied_in_the_anthropic_error_shape(grpc_stub, category: Category) -> None:  # type: ignore[no-untyped-def]
    rule_id, example = first_example(category)
    body = {"model": "claude-sonnet-4", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": [{"type": "text", "text": "look:"},
                                                      {"type": "text", "text": example}]}]}
    resp = grpc_stub.Check(make_check_request(body, path="/v1/messages"))
    assert resp.denied_response.status.code == 403
    err = denied_body(resp)
    assert err["type"] == "error" and err["error"]["type"] == "permission_error"
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
    assert gem["error"]["code"] == 403 and gem["error"]["status"] == "PERMISSION_DENIED"


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
    assert resp.denied_response.status.code == 403


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
