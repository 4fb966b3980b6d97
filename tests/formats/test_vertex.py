"""Vertex AI: Gemini bodies (publishers/google) and Claude's Messages bodies (publishers/anthropic, rawPredict)."""

from __future__ import annotations

from typing import Any

import pytest

from filter.model import Verdict
from tests.formats.helpers import aws_key_id, decide, parsed, segments

BASE = "/vertex/v1/projects/acme-dev/locations/us-east5/publishers"
CLAUDE = f"{BASE}/anthropic/models/claude-sonnet-4@20250514"
GEMINI = f"{BASE}/google/models/gemini-2.5-pro"


def claude_body(text: str) -> dict[str, Any]:
    return {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 64,
        "system": "You review code.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": text}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"p": "a"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "file text"}]},
        ],
    }


@pytest.mark.parametrize(("op", "stream"), [("rawPredict", False), ("streamRawPredict", True)])
def test_claude_on_vertex_is_an_anthropic_messages_body_with_the_model_in_the_path(op: str, stream: bool) -> None:
    result = parsed(f"{CLAUDE}:{op}", claude_body("Rename the helper."))
    assert (result.provider, result.api, result.model, result.stream) == (
        "vertex", "anthropic.messages", "claude-sonnet-4@20250514", stream)  # fmt: skip
    assert result.max_output_tokens == 64
    found = segments(result)
    assert found["system"] == "You review code."
    assert found["messages[0].content[0].text"] == "Rename the helper."
    assert found["messages[1].content[0].input"] == '{"p": "a"}'
    assert found["messages[2].content[0].content"] == "file text"


@pytest.mark.parametrize(("op", "stream"), [("generateContent", False), ("streamGenerateContent", True)])
def test_gemini_on_vertex_is_a_generate_content_body(op: str, stream: bool) -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"maxOutputTokens": 32},
    }
    result = parsed(f"{GEMINI}:{op}?alt=sse", body)
    assert (result.provider, result.api, result.model, result.stream) == (
        "vertex", "gemini.generate_content", "gemini-2.5-pro", stream)  # fmt: skip
    assert result.max_output_tokens == 32
    assert segments(result) == {"systemInstruction.parts[0].text": "sys", "contents[0].parts[0].text": "hello"}


def test_vertex_credentials_are_not_scanned_but_other_headers_are() -> None:
    result = parsed(
        f"{GEMINI}:generateContent?key=AIzaSyKeyForVertexExpressMode",
        {"contents": [{"parts": [{"text": "hi"}]}]},
        {"authorization": "Bearer ya29.token", "x-goog-api-key": "AIza-key", "x-goog-user-project": "acme-dev"},
    )
    roads = {k: v for k, v in segments(result, roads=True).items() if k.startswith(("headers", "query"))}
    assert roads == {"headers.x-goog-user-project": "acme-dev"}


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        (f"{CLAUDE}:rawPredict", claude_body("deploy with AKIA"), "messages[0].content[0].text"),
        (f"{GEMINI}:generateContent", {"contents": [{"parts": [{"text": "deploy with AKIA"}]}]},
         "contents[0].parts[0].text"),
    ],
)  # fmt: skip
def test_a_secret_in_a_vertex_body_is_denied_where_it_is(path: str, body: dict[str, Any], location: str) -> None:
    key = aws_key_id()
    decision = decide(path, _replace(body, "AKIA", key))
    assert decision.verdict is Verdict.DENY
    assert (decision.provider, decision.reason) == ("vertex", "secret_detected")
    assert [(f.rule_id, f.location) for f in decision.findings] == [("aws-access-key-id", location)]


def _replace(body: Any, old: str, new: str) -> Any:
    if isinstance(body, str):
        return body.replace(old, new)
    if isinstance(body, list):
        return [_replace(x, old, new) for x in body]
    if isinstance(body, dict):
        return {k: _replace(v, old, new) for k, v in body.items()}
    return body
