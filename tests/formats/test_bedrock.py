"""Bedrock Converse and InvokeModel."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.formats.helpers import all_text, parsed, segments

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CONVERSE = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    (
        "system and turns",
        {
            "system": [{"text": "sys"}, {"cachePoint": {"type": "default"}}],
            "messages": [
                {"role": "user", "content": [{"text": "u1"}]},
                {"role": "assistant", "content": [{"text": "a1"}]},
            ],
        },
        {"system[0].text": "sys", "messages[0].content[0].text": "u1", "messages[1].content[0].text": "a1"},
    ),
    (
        "tool use and tool result",
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "tu1", "name": "sh", "input": {"cmd": "env"}}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "toolResult": {
                                "toolUseId": "tu1",
                                "status": "success",
                                "content": [{"text": '{"HOME": "/root"}'}, {"json": {"PATH": "/bin"}}],
                            }
                        }
                    ],
                },
            ]
        },
        {
            "messages[0].content[0].toolUse.input": '{"cmd": "env"}',
            "messages[0].content[0].toolUse.input.cmd": "env",
            "messages[0].content[0].toolUse.name": "sh",
            "messages[1].content[0].toolResult.content[0].text": '{"HOME": "/root"}',
            "messages[1].content[0].toolResult.content[0].text$.HOME": "/root",
            "messages[1].content[0].toolResult.content[1].json": '{"PATH": "/bin"}',
            "messages[1].content[0].toolResult.content[1].json.PATH": "/bin",
        },
    ),
    (
        "text documents: bytes decoded, text and content sources",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"document": {"format": "txt", "name": "creds", "source": {"bytes": b64(b"password=hunter2")}}},
                        {"document": {"format": "md", "name": "n", "source": {"text": "# inline"}}},
                        {"document": {"format": "txt", "name": "c", "source": {"content": [{"text": "chunk"}]}}},
                        {"document": {"format": "docx", "name": "d", "source": {"bytes": b64(b"plain after all")}}},
                    ],
                }
            ]
        },
        {
            "messages[0].content[0].document.source.bytes": "password=hunter2",
            "messages[0].content[0].document.name": "creds",
            "messages[0].content[1].document.source.text": "# inline",
            "messages[0].content[2].document.source.content[0].text": "chunk",
            "messages[0].content[3].document.source.bytes": "plain after all",
        },
    ),
    (
        "reasoning text scanned",
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "S"}}}],
                }
            ]
        },
        {"messages[0].content[0].reasoningContent.reasoningText.text": "hmm"},
    ),
    (
        "guard content and tool config scanned generically",
        {
            "messages": [{"role": "user", "content": [{"guardContent": {"text": {"text": "guarded"}}}]}],
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "t", "description": "tool desc", "inputSchema": {"json": {}}}}]
            },
        },
        {
            "messages[0].content[0].guardContent.text.text": "guarded",
            "toolConfig.tools[0].toolSpec.description": "tool desc",
        },
    ),
]


@pytest.mark.parametrize(("body", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_converse_segments(body: dict[str, Any], expected: dict[str, str]) -> None:
    result = parsed(CONVERSE, {**body, "inferenceConfig": {"maxTokens": 512}})
    assert (result.provider, result.api, result.model) == ("bedrock", "bedrock.converse", MODEL)
    assert result.max_output_tokens == 512
    found = segments(result)
    for loc, text in expected.items():
        assert found.get(loc) == text, (loc, sorted(found))


def test_binary_content_counted_not_scanned() -> None:
    png, pdf, mp4 = b64(b"\x89PNG" + bytes(20)), b64(b"%PDF-1.7"), b64(bytes(40))
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"image": {"format": "png", "source": {"bytes": png}}},
                    {"document": {"format": "pdf", "name": "r", "source": {"bytes": pdf}}},
                    {"video": {"format": "mp4", "source": {"bytes": mp4}}},
                    {
                        "toolResult": {
                            "toolUseId": "t",
                            "content": [{"image": {"format": "png", "source": {"bytes": png}}}],
                        }
                    },
                ],
            }
        ]
    }
    result = parsed(CONVERSE, body)
    assert result.image_count == 4
    text = all_text(result)
    assert png not in text and pdf not in text and mp4 not in text


def test_opaque_reasoning_not_scanned() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "t", "signature": "SIGBLOB"}}},
                    {"reasoningContent": {"redactedContent": "REDACTEDBLOB"}},
                ],
            }
        ]
    }
    text = all_text(parsed(CONVERSE, body))
    assert "SIGBLOB" not in text and "REDACTEDBLOB" not in text


@pytest.mark.parametrize(
    ("path", "model", "stream"),
    [
        ("/model/amazon.nova-pro-v1:0/converse", "amazon.nova-pro-v1:0", False),
        (
            "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            True,
        ),
        (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fp/converse",
            "arn:aws:bedrock:us-east-1:123:inference-profile/p",
            False,
        ),
    ],
)
def test_converse_paths(path: str, model: str, stream: bool) -> None:
    result = parsed(path, {"messages": [{"role": "user", "content": [{"text": "x"}]}]})
    assert (result.api, result.model, result.stream) == ("bedrock.converse", model, stream)


ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 300,
    "system": "sys",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
}


@pytest.mark.parametrize(
    ("path", "stream"),
    [
        (f"/model/{MODEL}/invoke", False),
        ("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream", True),
        ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fabc/invoke", False),
    ],
)
def test_invoke_anthropic_uses_messages_decoder(path: str, stream: bool) -> None:
    result = parsed(path, ANTHROPIC_BODY)
    assert (result.provider, result.api, result.max_output_tokens, result.stream) == (
        "bedrock",
        "bedrock.invoke",
        300,
        stream,
    )
    found = segments(result)
    assert found["system"] == "sys"
    assert found["messages[0].content[0].text"] == "hello"


@pytest.mark.parametrize(
    ("model", "body", "loc", "text", "tokens"),
    [
        ("meta.llama3-70b-instruct-v1:0", {"prompt": "<|begin|>hi", "max_gen_len": 50}, "$.prompt", "<|begin|>hi", 50),
        (
            "mistral.mistral-large-2402-v1:0",
            {"prompt": "[INST] hi [/INST]", "max_tokens": 60},
            "$.prompt",
            "[INST] hi [/INST]",
            60,
        ),
        (
            "amazon.titan-text-express-v1",
            {"inputText": "hi", "textGenerationConfig": {"maxTokenCount": 70}},
            "$.inputText",
            "hi",
            70,
        ),
        (
            "amazon.nova-lite-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "n"}]}], "inferenceConfig": {"max_new_tokens": 80}},
            "$.messages[0].content[0].text",
            "n",
            80,
        ),
    ],
)
def test_invoke_other_vendors_scanned_raw(model: str, body: dict[str, Any], loc: str, text: str, tokens: int) -> None:
    result = parsed(f"/model/{model}/invoke", body)
    assert (result.api, result.model, result.max_output_tokens) == ("bedrock.invoke", model, tokens)
    assert segments(result)[loc] == text


def test_converse_unknown_shape_falls_back_to_raw() -> None:
    result = parsed(CONVERSE, {"inputText": "not converse"})
    assert result.api == "raw" and result.model == MODEL
    assert segments(result)["$.inputText"] == "not converse"


@pytest.mark.parametrize(
    ("body", "loc", "text"),
    [
        (
            {"messages": [{"role": "user", "content": "string, not blocks"}]},
            "messages[0].content",
            "string, not blocks",
        ),
        ({"messages": [{"role": "user", "content": [{"toolUse": "bad"}]}]}, "messages[0].content[0].toolUse", "bad"),
        ({"system": "plain system"}, "system", "plain system"),
        ({"messages": [], "system": [{"text": ["a", "b"]}]}, "system[0].text[1]", "b"),
    ],
)
def test_unexpected_shapes_still_scanned(body: dict[str, Any], loc: str, text: str) -> None:
    assert segments(parsed(CONVERSE, body))[loc] == text
