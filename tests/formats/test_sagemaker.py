"""SageMaker runtime InvokeEndpoint: known LLM container shapes by field, anything else string by string or as text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from filter.errors import MalformedRequest
from filter.model import Verdict
from tests.formats.helpers import aws_key_id, decide, parsed, segments

PATH = "/sagemaker/endpoints/llama-3-70b-prod/invocations"
STREAM = "/sagemaker/endpoints/llama-3-70b-prod/invocations-response-stream"

SHAPES: list[tuple[str, dict[str, Any], dict[str, str], int | None]] = [
    (
        "Hugging Face inputs",
        {"inputs": "Summarise the diff", "parameters": {"max_new_tokens": 128, "temperature": 0.2}},
        {"inputs": "Summarise the diff"},
        128,
    ),
    (
        "batched inputs",
        {"inputs": ["first prompt", "second prompt"], "parameters": {"max_tokens": 16}},
        {"inputs[0]": "first prompt", "inputs[1]": "second prompt"},
        16,
    ),
    (
        "JumpStart chat turns",
        {"inputs": [[{"role": "user", "content": "fix the test"}]], "parameters": {"max_new_tokens": 8}},
        {"inputs[0][0].content": "fix the test"},
        8,
    ),
    (
        "JumpStart text_inputs",
        {"text_inputs": "Translate this", "max_length": 50},
        {"text_inputs": "Translate this"},
        None,
    ),
    (
        "Messages API (TGI, vLLM, LMI)",
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "max_tokens": 9},
        {"messages[0].content": "be brief", "messages[1].content": "hi"},
        9,
    ),
    (
        "completion prompt",
        {"prompt": "def add(a, b):", "max_tokens": 20},
        {"prompt": "def add(a, b):"},
        20,
    ),
    (
        "any other JSON: every string from $",
        {"instances": [{"text": "classify me"}], "config": {"label": "spam"}},
        {"$.instances[0].text": "classify me", "$.config.label": "spam"},
        None,
    ),
]


@pytest.mark.parametrize(("body", "expected", "tokens"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_container_shapes(body: dict[str, Any], expected: dict[str, str], tokens: int | None) -> None:
    result = parsed(PATH, body)
    assert (result.provider, result.api, result.model) == ("sagemaker", "sagemaker.invocations", "llama-3-70b-prod")
    found = segments(result)
    for location, text in expected.items():
        assert found[location] == text
    assert result.max_output_tokens == tokens


@pytest.mark.parametrize("content_type", ["text/csv", "text/plain; charset=utf-8", "application/octet-stream", ""])
def test_bodies_that_are_not_json_are_scanned_as_text(content_type: str) -> None:
    result = parsed(STREAM, b"Write a haiku about CI,\nplease", {"content-type": content_type})
    assert (result.provider, result.api, result.stream) == ("sagemaker", "sagemaker.invocations", True)
    assert segments(result) == {"body": "Write a haiku about CI,\nplease"}


def test_ndjson_is_scanned_as_text_unless_the_request_says_json() -> None:
    body = b'{"inputs": "a"}\n{"inputs": "b"}\n'
    assert segments(parsed(PATH, body, {"content-type": "application/jsonlines"})) == {"body": body.decode()}
    with pytest.raises(MalformedRequest):  # declared JSON that is not JSON: a clear 400, as for every JSON API
        parsed(PATH, body, {"content-type": "application/json"})


def test_sigv4_headers_are_the_gateways_not_scanned_custom_attributes_are() -> None:
    headers = {"authorization": "AWS4-HMAC-SHA256 Credential=...", "x-amz-date": "20250101T000000Z",
               "x-amzn-sagemaker-custom-attributes": "trace=on"}  # fmt: skip
    roads = {k for k in segments(parsed(PATH, {"inputs": "x"}, headers), roads=True) if k.startswith("headers")}
    assert roads == {"headers.x-amzn-sagemaker-custom-attributes"}


@pytest.mark.parametrize(
    ("body", "content_type", "location"),
    [
        ({"inputs": "creds: KEY"}, "application/json", "inputs"),
        ({"messages": [{"role": "user", "content": "creds: KEY"}]}, "application/json", "messages[0].content"),
        ({"rows": [["id", "creds: KEY"]]}, "application/json", "$.rows[0][1]"),
        ("creds: KEY", "text/plain", "body"),
    ],
    ids=["inputs", "messages", "unknown-json", "text"],
)
def test_a_secret_in_any_container_body_is_denied(body: Any, content_type: str, location: str) -> None:
    key = aws_key_id(11)
    raw = (body if isinstance(body, str) else json.dumps(body)).replace("KEY", key)
    decision = decide(PATH, raw, {"content-type": content_type})
    assert decision.verdict is Verdict.DENY
    assert (decision.provider, decision.reason) == ("sagemaker", "secret_detected")
    assert [(f.rule_id, f.location) for f in decision.findings] == [("aws-access-key-id", location)]


def test_escapes_in_json_lines_do_not_hide_a_secret() -> None:
    key = aws_key_id(12)
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    body = f'{{"inputs": "a"}}\n{{"inputs": "key {escaped}"}}\n'
    decision = decide(PATH, body, {"content-type": "application/jsonlines"})
    assert [(f.rule_id, f.location) for f in decision.findings] == [("aws-access-key-id", "body")]
