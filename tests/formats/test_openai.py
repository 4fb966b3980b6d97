"""OpenAI-style APIs: chat completions, Responses, completions, embeddings; Azure, Groq, Mistral paths."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.formats.helpers import all_text, parsed, segments

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n" + bytes(40)).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CHAT_CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    (
        "every role",
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": "dev"},
                {"role": "user", "content": "usr", "name": "alice"},
                {"role": "assistant", "content": "asst"},
                {"role": "tool", "tool_call_id": "call_1", "content": "tool out"},
                {"role": "function", "name": "legacy_fn", "content": "fn out"},
            ]
        },
        {
            "messages[0].content": "sys",
            "messages[1].content": "dev",
            "messages[2].content": "usr",
            "messages[2].name": "alice",
            "messages[3].content": "asst",
            "messages[4].content": "tool out",
            "messages[4].tool_call_id": "call_1",
            "messages[5].content": "fn out",
            "messages[5].name": "legacy_fn",
        },
    ),
    (
        "content parts",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "part one"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://img.example/x.png?token=t0k", "detail": "low"},
                        },
                        {"type": "text", "text": "part three"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no can do"}]},
            ]
        },
        {
            "messages[0].content[0].text": "part one",
            "messages[0].content[1].image_url.url": "https://img.example/x.png?token=t0k",
            "messages[0].content[2].text": "part three",
            "messages[1].content[0].refusal": "no can do",
        },
    ),
    (
        "tool call arguments: text and JSON-in-JSON, escapes undone",
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {
                                "name": "read_file",
                                "arguments": '{"path": "/home/u/.\\u0065nv", "n": [1, "two"]}',
                            },
                        }
                    ],
                }
            ]
        },
        {
            "messages[0].tool_calls[0].function.arguments": '{"path": "/home/u/.\\u0065nv", "n": [1, "two"]}',
            "messages[0].tool_calls[0].function.arguments$.path": "/home/u/.env",
            "messages[0].tool_calls[0].function.arguments$.n[1]": "two",
            "messages[0].tool_calls[0].function.name": "read_file",
            "messages[0].tool_calls[0].id": "call_abc",
        },
    ),
    (
        "double-encoded JSON arguments",
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": json.dumps(json.dumps({"k": "deep"}))},
                        }
                    ],
                }
            ]
        },
        {},
    ),
    (
        "legacy function_call",
        {"messages": [{"role": "assistant", "function_call": {"name": "get", "arguments": '{"q": "w"}'}}]},
        {"messages[0].function_call.arguments$.q": "w", "messages[0].function_call.name": "get"},
    ),
    (
        "tool message content that is JSON is expanded",
        {"messages": [{"role": "tool", "tool_call_id": "c", "content": '{"stdout": "AWS_SECRET=\\u0078"}'}]},
        {"messages[0].content$.stdout": "AWS_SECRET=x"},
    ),
    (
        "tool message content parts",
        {"messages": [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": '{"a": "b"}'}]}]},
        {"messages[0].content[0].text": '{"a": "b"}', "messages[0].content[0].text$.a": "b"},
    ),
    (
        "user JSON-looking text is not expanded",
        {"messages": [{"role": "user", "content": '{"a": "b"}'}]},
        {"messages[0].content": '{"a": "b"}'},
    ),
    (
        "tools and response format are scanned (the model reads them)",
        {
            "messages": [],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "run",
                        "description": "Runs a shell command",
                        "parameters": {
                            "type": "object",
                            "properties": {"cmd": {"type": "string", "description": "command"}},
                        },
                    },
                }
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"description": "d1"}}},
            "user": "user-123",
        },
        {
            "tools[0].function.name": "run",
            "tools[0].function.description": "Runs a shell command",
            "tools[0].function.parameters.properties.cmd.description": "command",
            "response_format.json_schema.name": "out",
            "response_format.json_schema.schema.description": "d1",
            "user": "user-123",
        },
    ),
    (
        "file part with a text data URL is decoded",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {"filename": "a.txt", "file_data": "data:text/plain;base64," + b64("file text")},
                        }
                    ],
                }
            ]
        },
        {"messages[0].content[0].file.file_data": "file text", "messages[0].content[0].file.filename": "a.txt"},
    ),
    (
        "file part with bare base64 and a .env name is sniffed as text",
        {
            "messages": [
                {"role": "user", "content": [{"type": "file", "file": {"filename": ".env", "file_data": b64("A=1")}}]}
            ]
        },
        {"messages[0].content[0].file.file_data": "A=1"},
    ),
]


@pytest.mark.parametrize(("body", "expected"), [(c[1], c[2]) for c in CHAT_CASES], ids=[c[0] for c in CHAT_CASES])
def test_chat_segments(body: dict[str, Any], expected: dict[str, str]) -> None:
    result = parsed(CHAT, body)
    assert (result.provider, result.api) == ("openai", "openai.chat")
    found = segments(result)
    for loc, text in expected.items():
        assert found.get(loc) == text, (loc, sorted(found))


def test_double_encoded_arguments_reach_the_inner_string() -> None:
    body = CHAT_CASES[3][1]
    found = segments(parsed(CHAT, body))
    assert found["messages[0].tool_calls[0].function.arguments$"] == '{"k": "deep"}'
    assert found["messages[0].tool_calls[0].function.arguments$$.k"] == "deep"


def test_images_and_audio_counted_not_scanned() -> None:
    audio = base64.b64encode(bytes(100)).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": PNG_URL}},
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                    {
                        "type": "file",
                        "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64," + b64("%PDF")},
                    },
                ],
            }
        ]
    }
    result = parsed(CHAT, body)
    assert result.image_count == 3
    text = all_text(result)
    assert PNG_URL not in text and audio not in text and "%PDF" not in text


@pytest.mark.parametrize(
    ("body", "tokens", "stream"),
    [
        ({"messages": [], "max_tokens": 100}, 100, False),
        ({"messages": [], "max_completion_tokens": 200, "max_tokens": 100}, 200, False),
        ({"messages": [], "stream": True}, None, True),
        ({"messages": [], "max_tokens": -1, "stream": 1}, None, False),
    ],
)
def test_chat_metadata(body: dict[str, Any], tokens: int | None, stream: bool) -> None:
    result = parsed(CHAT, {"model": "gpt-4o", **body})
    assert (result.model, result.max_output_tokens, result.stream) == ("gpt-4o", tokens, stream)


RESPONSES_CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("input string", {"input": "hello", "instructions": "be brief"}, {"input": "hello", "instructions": "be brief"}),
    (
        "message items with parts",
        {
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "q1"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a1"}]},
                {"role": "developer", "content": "plain"},
            ]
        },
        {"input[0].content[0].text": "q1", "input[1].content[0].text": "a1", "input[2].content": "plain"},
    ),
    (
        "function call and its output",
        {
            "input": [
                {"type": "function_call", "call_id": "call_1", "name": "ls", "arguments": '{"dir": "~/.ssh"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": '{"files": ["id_rsa"]}'},
            ]
        },
        {
            "input[0].arguments": '{"dir": "~/.ssh"}',
            "input[0].arguments$.dir": "~/.ssh",
            "input[0].name": "ls",
            "input[1].output": '{"files": ["id_rsa"]}',
            "input[1].output$.files[0]": "id_rsa",
        },
    ),
    (
        "custom tool call and output",
        {
            "input": [
                {"type": "custom_tool_call", "call_id": "c", "name": "patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "c", "output": "done"},
            ]
        },
        {"input[0].input": "*** Begin Patch", "input[1].output": "done"},
    ),
    (
        "reasoning summary scanned",
        {"input": [{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}]}]},
        {"input[0].summary[0].text": "thought", "input[0].id": "rs_1"},
    ),
    (
        "input image URL and file",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": "https://x.example/i.png"},
                        {
                            "type": "input_file",
                            "filename": "notes.md",
                            "file_data": "data:text/markdown;base64," + b64("# notes"),
                        },
                    ],
                }
            ]
        },
        {"input[0].content[0].image_url": "https://x.example/i.png", "input[0].content[1].file_data": "# notes"},
    ),
    (
        "unknown item types are walked generically",
        {"input": [{"type": "local_shell_call", "action": {"command": ["cat", "/etc/shadow"], "env": {"K": "v"}}}]},
        {"input[0].action.command[1]": "/etc/shadow", "input[0].action.env.K": "v"},
    ),
    (
        "tools",
        {"input": "x", "tools": [{"type": "function", "name": "f", "description": "does f", "parameters": {}}]},
        {"tools[0].description": "does f", "tools[0].name": "f"},
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [(c[1], c[2]) for c in RESPONSES_CASES], ids=[c[0] for c in RESPONSES_CASES]
)
def test_responses_segments(body: dict[str, Any], expected: dict[str, str]) -> None:
    result = parsed(RESPONSES, {"model": "gpt-5", "max_output_tokens": 64, **body})
    assert (result.api, result.model, result.max_output_tokens) == ("openai.responses", "gpt-5", 64)
    found = segments(result)
    for loc, text in expected.items():
        assert found.get(loc) == text, (loc, sorted(found))


def test_responses_opaque_reasoning_not_scanned_and_image_counted() -> None:
    body = {
        "input": [
            {"type": "reasoning", "id": "r", "summary": [], "encrypted_content": "gAAAAOPAQUE"},
            {"role": "user", "content": [{"type": "input_image", "image_url": PNG_URL}]},
        ]
    }
    result = parsed(RESPONSES, body)
    assert "gAAAAOPAQUE" not in all_text(result) and PNG_URL not in all_text(result)
    assert result.image_count == 1


@pytest.mark.parametrize(
    ("path", "body", "api", "expected"),
    [
        (
            "/v1/completions",
            {"model": "m", "prompt": "once upon", "max_tokens": 7},
            "openai.completions",
            {"prompt": "once upon"},
        ),
        (
            "/v1/completions",
            {"prompt": ["a", "b"], "suffix": "end"},
            "openai.completions",
            {"prompt[1]": "b", "suffix": "end"},
        ),
        ("/v1/completions", {"prompt": [1234, 5678]}, "openai.completions", {}),
        (
            "/v1/fim/completions",
            {"model": "codestral", "prompt": "def f(", "suffix": "return"},
            "openai.completions",
            {"prompt": "def f("},
        ),
        ("/v1/embeddings", {"model": "e", "input": "embed me"}, "openai.embeddings", {"input": "embed me"}),
        ("/v1/embeddings", {"model": "e", "input": ["one", "two"]}, "openai.embeddings", {"input[0]": "one"}),
    ],
)
def test_completions_and_embeddings(path: str, body: dict[str, Any], api: str, expected: dict[str, str]) -> None:
    result = parsed(path, body)
    assert result.api == api
    found = segments(result)
    for loc, text in expected.items():
        assert found[loc] == text


@pytest.mark.parametrize(
    ("path", "headers", "provider", "api", "model"),
    [
        (
            "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
            {},
            "azure",
            "openai.chat",
            "gpt4o-prod",
        ),
        ("/openai/v1/chat/completions", {"x-llm-provider": "groq"}, "groq", "openai.chat", "body-model"),
        ("/v1/chat/completions", {"x-llm-provider": "Mistral"}, "mistral", "openai.chat", "body-model"),
        ("/v1beta/openai/chat/completions", {}, "gemini", "openai.chat", "body-model"),
        ("/custom/route", {"x-llm-provider": "openai"}, "openai", "openai.chat", "body-model"),
        ("/custom/route", {"x-llm-provider": "azure"}, "azure", "openai.chat", "body-model"),
    ],
)
def test_openai_style_paths(path: str, headers: dict[str, str], provider: str, api: str, model: str) -> None:
    result = parsed(path, {"model": "body-model", "messages": [{"role": "user", "content": "hi"}]}, headers)
    assert (result.provider, result.api, result.model) == (provider, api, model)
    assert segments(result)["messages[0].content"] == "hi"


def test_azure_embeddings_deployment() -> None:
    result = parsed("/openai/deployments/emb/embeddings?api-version=1", {"input": "vec"})
    assert (result.provider, result.api, result.model) == ("azure", "openai.embeddings", "emb")


def test_header_picks_responses_on_unknown_path() -> None:
    result = parsed("/gateway", {"model": "m", "input": "hello"}, {"x-llm-provider": "openai"})
    assert result.api == "openai.responses"
    assert segments(result)["input"] == "hello"


@pytest.mark.parametrize(
    ("body", "loc", "text"),
    [
        ({"messages": {"role": "user", "content": "x"}}, "messages.content", "x"),
        ({"messages": [{"role": "assistant", "tool_calls": "oops"}]}, "messages[0].tool_calls", "oops"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {"obj": "v"}}}]}]},
            "messages[0].tool_calls[0].function.arguments.obj",
            "v",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}, {"type": "x", "v": "w"}]}]},
            "messages[0].content[1].v",
            "w",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://plain"}]}]},
            "messages[0].content[0].image_url",
            "https://plain",
        ),
    ],
)
def test_unexpected_shapes_still_scanned(body: dict[str, Any], loc: str, text: str) -> None:
    assert segments(parsed(CHAT, body))[loc] == text
