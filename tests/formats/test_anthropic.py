"""Anthropic Messages: every role and block type, with locations."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.formats.helpers import all_text, parsed, segments

PATH = "/v1/messages"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def msgs(*content: Any, role: str = "user") -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": role, "content": list(content)}]}


CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    (
        "system string and user string",
        {"model": "m", "max_tokens": 5, "system": "you are terse", "messages": [{"role": "user", "content": "hi"}]},
        {"system": "you are terse", "messages[0].content": "hi"},
    ),
    (
        "system blocks",
        {"system": [{"type": "text", "text": "rule one", "cache_control": {"type": "ephemeral"}}], "messages": []},
        {"system[0].text": "rule one"},
    ),
    (
        "every turn, both roles",
        {
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": [{"type": "text", "text": "second"}]},
                {"role": "user", "content": [{"type": "text", "text": "third"}, {"type": "text", "text": "fourth"}]},
            ]
        },
        {
            "messages[0].content": "first",
            "messages[1].content[0].text": "second",
            "messages[2].content[0].text": "third",
            "messages[2].content[1].text": "fourth",
        },
    ),
    (
        "escaped text is decoded",
        json.loads('{"messages": [{"role": "user", "content": "key \\u0041KIA\\/x\\nend"}]}'),
        {"messages[0].content": "key AKIA/x\nend"},
    ),
    (
        "tool_use input: JSON text and every string",
        msgs({"type": "tool_use", "id": "toolu_01", "name": "bash", "input": {"command": "cat ~/.aws/credentials"}}),
        {
            "messages[0].content[0].input": '{"command": "cat ~/.aws/credentials"}',
            "messages[0].content[0].input.command": "cat ~/.aws/credentials",
            "messages[0].content[0].name": "bash",
            "messages[0].content[0].id": "toolu_01",
        },
    ),
    (
        "tool_use input with multi-line value is also scanned unescaped",
        msgs({"type": "tool_use", "id": "t", "name": "write", "input": {"body": "line1\nline2"}}),
        {"messages[0].content[0].input.body": "line1\nline2"},
    ),
    (
        "tool_result string content, JSON inside expanded",
        msgs({"type": "tool_result", "tool_use_id": "toolu_01", "content": '{"env": {"TOKEN": "\\u0073ecret"}}'}),
        {
            "messages[0].content[0].content": '{"env": {"TOKEN": "\\u0073ecret"}}',
            "messages[0].content[0].content$.env.TOKEN": "secret",
            "#keys": "env\nTOKEN",
        },
    ),
    (
        "tool_result nested blocks",
        msgs(
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "is_error": False,
                "content": [
                    {"type": "text", "text": "stdout here"},
                    {"type": "text", "text": '["a", "b"]'},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            }
        ),
        {
            "messages[0].content[0].content[0].text": "stdout here",
            "messages[0].content[0].content[1].text$[1]": "b",
        },
    ),
    (
        "document with a text source",
        msgs({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc body"}}),
        {"messages[0].content[0].source.data": "doc body"},
    ),
    (
        "document base64 text/plain is decoded",
        msgs({"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": b64("AWS=1\n")}}),
        {"messages[0].content[0].source.data": "AWS=1\n"},
    ),
    (
        "document base64 application/json is decoded",
        msgs({"type": "document", "source": {"type": "base64", "media_type": "application/json", "data": b64("{}")}}),
        {"messages[0].content[0].source.data": "{}"},
    ),
    (
        "document with content blocks and a title",
        msgs(
            {
                "type": "document",
                "title": "notes",
                "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]},
            }
        ),
        {"messages[0].content[0].source.content[0].text": "chunk", "messages[0].content[0].title": "notes"},
    ),
    (
        "thinking text is scanned",
        msgs({"type": "thinking", "thinking": "let me think", "signature": "EqQBCkYIBxgCKkC"}, role="assistant"),
        {"messages[0].content[0].thinking": "let me think"},
    ),
    (
        "image given by URL: the URL is scanned",
        msgs({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png?sig=abc"}}),
        {"messages[0].content[0].source.url": "https://example.com/a.png?sig=abc"},
    ),
    (
        "server tool use and its result",
        msgs(
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q1"}},
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [{"type": "web_search_result", "title": "T", "url": "https://u"}],
            },
            role="assistant",
        ),
        {
            "messages[0].content[0].input.query": "q1",
            "messages[0].content[1].content[0].title": "T",
            "messages[0].content[1].content[0].url": "https://u",
        },
    ),
    (
        "unknown block type is scanned generically",
        msgs({"type": "future_block", "payload": {"deep": ["x1"]}}),
        {"messages[0].content[0].payload.deep[0]": "x1", "messages[0].content[0].type": "future_block"},
    ),
    (
        "tools: names, descriptions, schemas",
        {
            "messages": [],
            "tools": [
                {
                    "name": "read_file",
                    "description": "Reads a file",
                    "input_schema": {
                        "type": "object",
                        "properties": {"path": {"type": "string", "description": "file path"}},
                    },
                }
            ],
        },
        {
            "tools[0].name": "read_file",
            "tools[0].description": "Reads a file",
            "tools[0].input_schema.properties.path.description": "file path",
        },
    ),
    (
        "unknown top-level fields and metadata are scanned",
        {"messages": [], "metadata": {"user_id": "u-42"}, "x_custom": "extra"},
        {"metadata.user_id": "u-42", "x_custom": "extra", "#keys": "x_custom\nuser_id"},
    ),
]


@pytest.mark.parametrize(("body", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_segments(body: dict[str, Any], expected: dict[str, str]) -> None:
    result = parsed(PATH, body)
    assert result.provider == "anthropic"
    assert result.api == "anthropic.messages"
    found = segments(result)
    for loc, text in expected.items():
        assert found.get(loc) == text, (loc, sorted(found))


def test_metadata() -> None:
    body = {"model": "claude-opus-4", "max_tokens": 4096, "stream": True, "messages": []}
    result = parsed(PATH, body)
    assert (result.model, result.max_output_tokens, result.stream) == ("claude-opus-4", 4096, True)


def test_metadata_absent_or_wrong_type() -> None:
    result = parsed(PATH, {"model": 7, "max_tokens": "lots", "stream": "yes", "messages": []})
    assert (result.model, result.max_output_tokens, result.stream) == (None, None, False)


def test_images_counted_not_scanned() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    result = parsed(PATH, msgs(image, image, {"type": "text", "text": "what is this"}))
    assert result.image_count == 2
    assert PNG not in all_text(result)
    assert segments(result)["messages[0].content[2].text"] == "what is this"


def test_pdf_counted_not_scanned() -> None:
    pdf = b64("%PDF-1.7 secret-looking")
    result = parsed(
        PATH, msgs({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}})
    )
    assert result.image_count == 1
    assert "secret-looking" not in all_text(result)
    assert pdf not in all_text(result)


def test_opaque_provider_blobs_not_scanned() -> None:
    body = msgs(
        {"type": "thinking", "thinking": "t", "signature": "SIGNATUREBLOB"},
        {"type": "redacted_thinking", "data": "ENCRYPTEDBLOB"},
        role="assistant",
    )
    text = all_text(parsed(PATH, body))
    assert "SIGNATUREBLOB" not in text and "ENCRYPTEDBLOB" not in text


def test_count_tokens_path_and_prefix() -> None:
    assert parsed("/v1/messages/count_tokens", msgs("x")).api == "anthropic.messages"
    assert parsed("/anthropic/v1/messages?beta=true", msgs("x")).api == "anthropic.messages"


@pytest.mark.parametrize(
    ("body", "loc", "text"),
    [
        ({"messages": "not a list of messages"}, "messages", "not a list of messages"),
        ({"messages": [{"role": "user", "content": {"odd": "shape"}}]}, "messages[0].content.odd", "shape"),
        ({"messages": [{"role": "user", "content": 12345678901}]}, "messages[0].content", "12345678901"),
        ({"messages": [["nested", "list"]]}, "messages[0][1]", "list"),
        (
            {"messages": [{"role": "user", "content": ["bare string block"]}]},
            "messages[0].content[0]",
            "bare string block",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ["x", "y"]}]}]},
            "messages[0].content[0].text[1]",
            "y",
        ),
    ],
)
def test_unexpected_shapes_still_scanned(body: dict[str, Any], loc: str, text: str) -> None:
    assert segments(parsed(PATH, body))[loc] == text


def test_no_messages_falls_back_to_raw() -> None:
    result = parsed(PATH, {"prompt": "\n\nHuman: legacy\n\nAssistant:"})
    assert result.api == "raw"
    assert segments(result)["$.prompt"] == "\n\nHuman: legacy\n\nAssistant:"
