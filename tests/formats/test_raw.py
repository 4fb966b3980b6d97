"""Raw fallback (unknown paths and shapes: everything scanned), provider detection, body-type choices."""

from __future__ import annotations

import json
from typing import Any

import pytest

from filter.formats import detect_provider, parse
from filter.model import Envelope
from tests.formats.helpers import all_text, envelope, parsed, segments


def test_unknown_path_json_every_string_and_key() -> None:
    body = {"a": {"b": ["x", {"c": "y"}], "n": 1}, "list": [[["deep"]]], "flag": True, "card": 4111111111111111}
    result = parsed("/some/new/api", body)
    assert (result.provider, result.api) == ("raw", "raw")
    assert segments(result) == {
        "$.a.b[0]": "x",
        "$.a.b[1].c": "y",
        "$.list[0][0][0]": "deep",
        "$.card": "4111111111111111",
        "#keys": "a\nlist\nflag\ncard\nb\nn\nc",
    }


def test_unusual_keys_are_scanned_where_they_are() -> None:
    body = {"config": {"user@example.com": 1, "a-very-long-field-name-here": 2, "k": 3}}
    found = segments(parsed("/x", body))
    assert found["$.config#keys"] == "user@example.com\na-very-long-field-name-here"
    assert found["#keys"] == "config\nk"


def test_top_level_array_and_scalar() -> None:
    assert segments(parsed("/x", ["a", ["b"]])) == {"$[0]": "a", "$[1][0]": "b"}
    assert segments(parsed("/x", '"just a string"')) == {"$": "just a string"}


def test_escapes_decoded_in_raw_json() -> None:
    result = parsed("/x", '{"k": "\\u0041KIA\\/\\n"}')
    assert segments(result)["$.k"] == "AKIA/\n"


def test_key_that_looks_like_a_secret_is_not_spelled_in_locations() -> None:
    secret_key = "AKIAIOSFODNN7EXAMPLE"
    token_key = "ghp_" + "a1B2" * 9
    result = parsed("/x", {"creds": {secret_key: "v1", token_key: "v2", "api_key": "v3"}})
    found = segments(result)
    assert found["$.creds[#0]"] == "v1"
    assert found["$.creds[#1]"] == "v2"
    assert found["$.creds.api_key"] == "v3"
    assert found["$.creds#keys"] == f"{secret_key}\n{token_key}"
    assert found["#keys"] == "creds\napi_key"
    assert not any(secret_key in seg.location or token_key in seg.location for seg in result.segments)


def test_json_keys_in_known_decoders() -> None:
    secret_key = "AKIAIOSFODNN7EXAMPLE"
    result = parsed("/v1/messages", {"messages": [], "metadata": {secret_key: "x"}})
    found = segments(result)
    assert found["metadata#keys"] == secret_key
    assert found["metadata[#0]"] == "x"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain", b"hello AKIA", {"body": "hello AKIA"}),
        ("", b"\xffbad utf8 \xfe", {"body": "\ufffdbad utf8 \ufffd"}),
        ("text/plain; charset=utf-16", "utf16 text".encode("utf-16"), {"body": "utf16 text"}),
        ("text/plain; charset=nope", b"x", {"body": "x"}),
        (
            "application/x-www-form-urlencoded",
            b"a=%41KIA+x&b=2",
            {"body": "a=%41KIA+x&b=2", "body#urldecoded": "a=AKIA x&b=2"},
        ),
        ("multipart/form-data; boundary=z", b"--z\r\n\r\nfile\r\n--z--", {"body": "--z\r\n\r\nfile\r\n--z--"}),
    ],
)
def test_non_json_body_is_one_raw_segment(content_type: str, body: bytes, expected: dict[str, str]) -> None:
    result = parse(Envelope("POST", "/v1/files", {"content-type": content_type}, body))
    assert result.api == "raw"
    assert segments(result) == expected


def test_unknown_path_invalid_json_is_raw_text() -> None:
    result = parsed("/x", b'{"unterminated": "AKIA')
    assert segments(result) == {"body": '{"unterminated": "AKIA'}


def test_known_path_non_json_content_type() -> None:
    # a plain-text body where JSON is not claimed: raw text, not an error
    result = parse(Envelope("POST", "/v1/messages", {"content-type": "text/plain"}, b"hello there"))
    assert (result.api, segments(result)) == ("raw", {"body": "hello there"})
    # a JSON body is decoded whatever the content type claims, so escapes are undone
    body = json.dumps({"messages": [{"role": "user", "content": "\u0041KIA"}]}, ensure_ascii=True).replace(
        "A", "\\u0041"
    )
    result = parse(Envelope("POST", "/v1/messages", {"content-type": "text/plain"}, body.encode()))
    assert result.api == "anthropic.messages"
    assert segments(result)["messages[0].content"] == "AKIA"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
def test_empty_bodies_have_only_the_path_query_and_headers(method: str) -> None:
    for body in (b"", b"  \n"):
        result = parse(Envelope(method, "/v1/models?limit=20", {"user-agent": "agent/1.0"}, body))
        assert segments(result, roads=True) == {
            "path": "/v1/models",
            "query.limit": "20",
            "headers.user-agent": "agent/1.0",
        }
        assert result.image_count == 0


def test_get_with_a_body_is_still_scanned() -> None:
    result = parse(Envelope("GET", "/v1/models", {}, b"sneaky"))
    assert segments(result) == {"body": "sneaky"}


def test_lone_surrogates_are_replaced() -> None:
    result = parsed("/v1/messages", '{"messages": [{"role": "user", "content": "a\\ud800b\\udc00"}]}')
    text = segments(result)["messages[0].content"]
    assert text == "a\ufffdb\ufffd"
    text.encode("utf-8")  # the scanner can encode it


def test_surrogate_pairs_are_joined() -> None:
    result = parsed("/v1/messages", '{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}')
    assert segments(result)["messages[0].content"] == "\U0001f600"


def test_data_urls_in_unknown_shapes() -> None:
    body = {"img": "data:image/png;base64,iVBORw0KGgo=", "txt": "data:text/plain;base64,c2VjcmV0", "pct": "data:,a%20b"}
    result = parsed("/x", body)
    found = segments(result)
    assert found["$.txt"] == "secret" and found["$.pct"] == "a b"
    assert "$.img" not in found and result.image_count == 1


def test_unclean_base64_is_also_scanned_as_sent() -> None:
    weird = "c2VjcmV0!!AKIA"
    found = segments(parsed("/x", {"doc": f"data:text/plain;base64,{weird}"}))
    assert found["$.doc#raw"] == weird


def test_locations_are_unique_in_a_big_mixed_request() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"t{i}"},
                    {"type": "tool_result", "tool_use_id": "x", "content": '{"a": ["b", {"c": "d"}]}'},
                ],
            }
            for i in range(50)
        ],
    }
    result = parsed("/v1/messages", body)
    assert len(segments(result, roads=True)) == len(result.segments)
    assert "t49" in all_text(result)


@pytest.mark.parametrize(
    ("path", "headers", "provider"),
    [
        ("/v1/messages", {}, "anthropic"),
        ("/v1/chat/completions", {}, "openai"),
        ("/v1/responses", {}, "openai"),
        ("/openai/deployments/d/chat/completions?api-version=1", {}, "azure"),
        ("/v1beta/models/gemini-pro:generateContent", {}, "gemini"),
        ("/v1beta/models/gemini-pro:streamGenerateContent?alt=sse", {}, "gemini"),
        ("/model/anthropic.claude-v2/invoke", {}, "bedrock"),
        ("/model/x/converse-stream", {}, "bedrock"),
        ("/v1/chat/completions", {"x-llm-provider": " GROQ "}, "groq"),
        ("/v1/chat/completions", {"x-llm-provider": "mistral"}, "mistral"),
        ("/v1/messages", {"x-llm-provider": "not-a-provider"}, "anthropic"),
        ("/v1/models", {}, "unknown"),
        ("/", {}, "unknown"),
        ("", {}, "unknown"),
        ("/v1/messages/batches", {}, "unknown"),
    ],
)
def test_detect_provider(path: str, headers: dict[str, str], provider: str) -> None:
    assert detect_provider(envelope(path, b"", headers)) == provider


def test_provider_header_does_not_override_the_path_format() -> None:
    result = parsed("/v1/messages", {"messages": [{"role": "user", "content": "x"}]}, {"x-llm-provider": "openai"})
    assert (result.provider, result.api) == ("openai", "anthropic.messages")


def test_percent_encoded_runs_are_scanned_decoded() -> None:
    text = "see https://h.example/cb?access_token=tok%5Fabc%2Fdef and postgres://app:p%40ss@db/x; 100% sure"
    body = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()
    parsed = parse(Envelope("POST", "/v1/chat/completions", {"content-type": "application/json"}, body))
    derived = {s.location: s.text for s in parsed.segments}["messages[0].content#urldecoded"]
    assert derived == "https://h.example/cb?access_token=tok_abc/def\npostgres://app:p@ss@db/x;"


def test_text_without_escapes_gets_no_decoded_copy() -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "100% done, 50%off"}]}).encode()
    parsed = parse(Envelope("POST", "/v1/chat/completions", {"content-type": "application/json"}, body))
    assert [s.location for s in parsed.segments] == ["messages[0].content", "path"]


def test_escaped_json_inside_a_string_is_also_scanned_decoded_with_its_names() -> None:
    inner = '{"DD_API_KEY": "\\u00354011f75ad58bc3059b0fe78a0765e8a", "path": "~\\/.ssh\\/id_\\u0072sa"}'
    body = json.dumps({"messages": [{"role": "tool", "tool_call_id": "c", "content": inner}]}).encode()
    parsed = parse(Envelope("POST", "/v1/chat/completions", {"content-type": "application/json"}, body))
    texts = {s.location: s.text for s in parsed.segments}
    assert texts["messages[0].content$#decoded"] == '{"DD_API_KEY": "54011f75ad58bc3059b0fe78a0765e8a", "path": "~/.ssh/id_rsa"}'
