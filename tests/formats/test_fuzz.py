"""Any bytes, any JSON, any shape, on every known path, compressed or not: a ParsedRequest or a RequestError."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from typing import Any

import brotli
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from filter.errors import RequestError
from filter.formats import DecodeLimits, parse
from filter.formats.jsonload import depth_exceeds
from filter.model import Envelope, ParsedRequest

PATHS = [
    "/v1/messages",
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/openai/deployments/d/chat/completions?api-version=1",
    "/v1beta/models/gemini-pro:generateContent",
    "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse",
    "/model/anthropic.claude-v2/converse",
    "/model/anthropic.claude-v2/invoke",
    "/model/meta.llama3/invoke-with-response-stream",
    "/unknown/path",
]
CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda d: d,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "gzip, br": lambda d: brotli.compress(gzip.compress(d)),
}
# Field names and values the decoders branch on, so generated shapes reach deep into them.
KEYS = [
    "messages",
    "content",
    "role",
    "type",
    "text",
    "system",
    "input",
    "instructions",
    "prompt",
    "tool_calls",
    "function",
    "arguments",
    "function_call",
    "tool_use",
    "tool_result",
    "source",
    "data",
    "media_type",
    "image_url",
    "url",
    "file",
    "file_data",
    "filename",
    "input_audio",
    "output",
    "summary",
    "encrypted_content",
    "thinking",
    "signature",
    "contents",
    "parts",
    "inlineData",
    "inline_data",
    "mimeType",
    "functionCall",
    "args",
    "functionResponse",
    "response",
    "systemInstruction",
    "generationConfig",
    "maxOutputTokens",
    "toolUse",
    "toolResult",
    "json",
    "document",
    "image",
    "bytes",
    "format",
    "reasoningContent",
    "reasoningText",
    "inferenceConfig",
    "maxTokens",
    "max_tokens",
    "stream",
    "model",
    "anthropic_version",
    "AKIAIOSFODNN7EXAMPLE",
]
VALUES = [
    "user",
    "assistant",
    "tool",
    "function",
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "base64",
    "text/plain",
    "application/pdf",
    "image/png",
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "input_text",
    "input_image",
    "input_file",
    "image_url",
    "file",
    "txt",
    "pdf",
    "data:text/plain;base64,aGk=",
    "data:image/png;base64,AA==",
    '{"a": "\\u0041"}',
    '["x", {"y": "z"}]',
    '"{\\"k\\": 1}"',
    "aGVsbG8=",
    "%%%",
    "[" * 70,
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
shaped = st.recursive(
    st.sampled_from(VALUES) | json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=40,
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = DecodeLimits(max_json_depth=16, max_base64_document_bytes=4096)


def check(path: str, coding: str, body: bytes, content_type: str = "application/json") -> None:
    headers = {"content-type": content_type, "content-encoding": coding}
    try:
        result = parse(Envelope("POST", path, headers, body), SMALL)
    except RequestError as e:
        assert isinstance(e.message, str) and e.message
        return
    assert isinstance(result, ParsedRequest)
    for seg in result.segments:
        assert isinstance(seg.location, str) and seg.location
        seg.text.encode("utf-8")  # always encodable for the scanner
    assert result.image_count >= 0


@FUZZ
@given(st.sampled_from(PATHS), st.sampled_from(sorted(CODINGS)), st.binary(max_size=2048))
@example("/v1/messages", "", b"[" * 5000)
@example("/v1/messages", "gzip", b"\x1f\x8b\x08\x00")
@example("/v1/chat/completions", "", b'"\\ud800"')
@example("/unknown/path", "", b'{"a": 1e400, "b": -0.0}')
def test_any_bytes(path: str, coding: str, body: bytes) -> None:
    check(path, coding, body)  # raw bytes under a coding header are (almost always) corrupt data
    check(path, "", body, content_type="text/plain")


@FUZZ
@given(st.sampled_from(PATHS), st.sampled_from(sorted(CODINGS)), json_values)
def test_any_json(path: str, coding: str, value: Any) -> None:
    check(path, coding, CODINGS[coding](json.dumps(value).encode()))


@FUZZ
@given(st.sampled_from(PATHS), shaped)
@example("/v1/messages", {"messages": [{"content": [{"type": "tool_result", "content": "[" * 70}]}]})
@example("/v1beta/models/g:generateContent", {"contents": [{"parts": [{"inlineData": {"data": "%%%"}}]}]})
def test_request_like_shapes(path: str, value: Any) -> None:
    check(path, "", json.dumps(value).encode())


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@FUZZ
@given(json_values, st.integers(min_value=1, max_value=6))
def test_depth_prescan_matches_the_parsed_depth(value: Any, limit: int) -> None:
    assert depth_exceeds(json.dumps(value).encode(), limit) == (_depth(value) > limit)
