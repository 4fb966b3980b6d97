"""The path, query parameters and headers are scanned like the body, except the provider's own credentials."""

from __future__ import annotations

import pytest

from tests.formats.helpers import parsed, segments

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def roads(path: str, headers: dict[str, str] | None = None, body: object = CHAT) -> dict[str, str]:
    result = parsed(path, body, headers)
    in_body = segments(result)
    return {k: v for k, v in segments(result, roads=True).items() if k not in in_body}


def test_path_and_each_query_parameter_are_segments_as_sent() -> None:
    found = roads("/model/us.anthropic.claude%2Dx/converse?note=a%20b&n=1&flag&=v&QK2X9ZT5MRW4LKP7NB3Y=1&n=2")
    assert found["path"] == "/model/us.anthropic.claude%2Dx/converse"
    assert found["path#urldecoded"] == "/model/us.anthropic.claude-x/converse"
    assert found["query.note"] == "a%20b" and found["query.note#urldecoded"] == "a b"
    assert found["query.n"] == "1"
    # a name that is not a plain key, or a repeated one, is not spelled: the whole pair is scanned at its index
    assert found["query[#3]"] == "=v" and found["query[#4]"] == "QK2X9ZT5MRW4LKP7NB3Y=1" and found["query[#5]"] == "n=2"
    assert "query.flag" not in found


def test_headers_are_segments_except_credentials_and_transport() -> None:
    headers = {
        "user-agent": "agent/1.2",
        "x-custom-note": "deploy",
        "cookie": "a=b",
        "authorization": "Bearer tok",
        "x-api-key": "k",
        "content-length": "10",
        "accept-encoding": "gzip",
        ":authority": "api.example",
        ":path": "/v1/messages",
        "x-envoy-expected-rq-timeout-ms": "1000",
        "x-forwarded-for": "10.0.0.1",
        "x-request-id": "r",
        "traceparent": "00-1-2-01",
        "x-llm-gateway-token": "eyJ.x.y",
        "anthropic-version": "2023-06-01",
    }
    found = roads("/v1/messages", headers, {"messages": [{"role": "user", "content": "hi"}]})
    assert {k for k in found if k.startswith("headers")} == {
        "headers.user-agent",
        "headers.x-custom-note",
        "headers.cookie",
        "headers.anthropic-version",
    }


@pytest.mark.parametrize(
    ("path", "skipped", "scanned"),
    [
        ("/v1/messages", {"x-api-key", "authorization"}, {"api-key", "x-goog-api-key", "x-amz-date"}),
        ("/v1/chat/completions", {"authorization"}, {"x-api-key", "api-key", "x-amz-date"}),
        ("/openai/deployments/d/chat/completions", {"api-key", "authorization"}, {"x-api-key"}),
        ("/v1beta/models/g:generateContent", {"x-goog-api-key", "authorization"}, {"x-api-key"}),
        ("/model/m/converse", {"authorization", "x-amz-date", "x-amz-security-token"}, {"x-api-key"}),
        # a path that names no provider: every provider's credential is the client's own
        ("/v1/models", {"authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-date"}, set()),
    ],
)
def test_credential_headers_are_the_routes_own(path: str, skipped: set[str], scanned: set[str]) -> None:
    headers = {name: "value" for name in skipped | scanned}
    body = {"messages": [{"role": "user", "content": "hi"}], "contents": [{"parts": [{"text": "hi"}]}]}
    found = roads(path, headers, body)
    assert {f"headers.{h}" for h in scanned} <= found.keys()
    assert not {f"headers.{h}" for h in skipped} & found.keys()


def test_gemini_key_parameter_is_its_credential_elsewhere_it_is_scanned() -> None:
    gemini = roads("/v1beta/models/g:generateContent?key=abc&alt=sse", body={"contents": []})
    assert "query.key" not in gemini and gemini["query.alt"] == "sse"
    assert roads("/v1/chat/completions?key=abc")["query.key"] == "abc"


def test_a_header_provider_cannot_widen_what_is_skipped() -> None:
    found = roads("/v1/chat/completions", {"x-llm-provider": "azure", "api-key": "value"})
    assert found["headers.api-key"] == "value"


def test_body_fields_named_like_the_roads_do_not_collide_with_them() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "path": "/x", "headers": {"a": "b"}, "query": "q"}
    found = segments(parsed("/v1/chat/completions?q=1", body, {"user-agent": "u"}), roads=True)
    assert found["$.path"] == "/x" and found["$.headers.a"] == "b" and found["$.query"] == "q"
    assert found["path"] == "/v1/chat/completions" and found["query.q"] == "1"


def test_prompt_segments_are_the_body_text_as_sent() -> None:
    text = "id: A\u200bK " + "%41" * 3
    result = parsed("/v1/chat/completions?q=1", {"messages": [{"role": "user", "content": text}]}, {"x-note": "n"})
    assert {s.location for s in result.segments} >= {
        "messages[0].content#normalized",
        "messages[0].content#urldecoded",
        "path",
        "query.q",
        "headers.x-note",
    }
    assert [s.location for s in result.prompt_segments()] == ["messages[0].content"]
