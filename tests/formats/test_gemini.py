"""Gemini generateContent: parts, inline data, function calls and responses; both field spellings."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.formats.helpers import all_text, parsed, segments

PATH = "/v1beta/models/gemini-2.5-pro:generateContent"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def user(*parts: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": list(parts)}]}


CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    (
        "turns and system instruction",
        {
            "systemInstruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "u1"}, {"text": "u2"}]},
                {"role": "model", "parts": [{"text": "m1"}]},
            ],
        },
        {
            "systemInstruction.parts[0].text": "sys",
            "contents[0].parts[0].text": "u1",
            "contents[0].parts[1].text": "u2",
            "contents[1].parts[0].text": "m1",
        },
    ),
    (
        "snake_case spellings keep their names",
        {
            "system_instruction": {"parts": [{"text": "sys"}]},
            **user({"inline_data": {"mime_type": "text/plain", "data": b64(b"txt")}}),
        },
        {"system_instruction.parts[0].text": "sys", "contents[0].parts[0].inline_data.data": "txt"},
    ),
    (
        "inline text data is decoded (URL-safe base64 too)",
        user(
            {
                "inlineData": {
                    "mimeType": "text/x-python",
                    "data": base64.urlsafe_b64encode(b"x = '\xff\xfe'?>>>").decode(),
                }
            }
        ),
        {"contents[0].parts[0].inlineData.data": "x = '\ufffd\ufffd'?>>>"},
    ),
    (
        "function call args and function response",
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "read", "args": {"path": "/root/.netrc"}}}]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "read", "response": {"content": '{"login": "me"}'}}}],
                },
            ]
        },
        {
            "contents[0].parts[0].functionCall.args": '{"path": "/root/.netrc"}',
            "contents[0].parts[0].functionCall.args.path": "/root/.netrc",
            "contents[0].parts[0].functionCall.name": "read",
            "contents[1].parts[0].functionResponse.response.content": '{"login": "me"}',
            "contents[1].parts[0].functionResponse.response.content$.login": "me",
        },
    ),
    (
        "code execution and file data are scanned",
        user(
            {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
            {"fileData": {"mimeType": "text/plain", "fileUri": "gs://b/o"}},
        ),
        {"contents[0].parts[0].executableCode.code": "print(1)", "contents[0].parts[1].fileData.fileUri": "gs://b/o"},
    ),
    (
        "tools are scanned",
        {"contents": [], "tools": [{"functionDeclarations": [{"name": "f", "description": "does things"}]}]},
        {"tools[0].functionDeclarations[0].description": "does things"},
    ),
    (
        "a bare string content is accepted",
        {"contents": ["just text"]},
        {"contents[0]": "just text"},
    ),
]


@pytest.mark.parametrize(("body", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_segments(body: dict[str, Any], expected: dict[str, str]) -> None:
    result = parsed(PATH, body)
    assert (result.provider, result.api, result.model) == ("gemini", "gemini.generate_content", "gemini-2.5-pro")
    found = segments(result)
    for loc, text in expected.items():
        assert found.get(loc) == text, (loc, sorted(found))


def test_binary_inline_data_counted_not_scanned() -> None:
    png, pdf, wav = b64(b"\x89PNG" + bytes(30)), b64(b"%PDF-1.4 x"), b64(bytes(50))
    body = user(
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"inline_data": {"mime_type": "application/pdf", "data": pdf}},
        {"inlineData": {"mimeType": "audio/wav", "data": wav}},
        {"text": "describe"},
    )
    result = parsed(PATH, body)
    assert result.image_count == 3
    text = all_text(result)
    assert png not in text and pdf not in text and wav not in text


def test_thought_signature_not_scanned() -> None:
    body = {"contents": [{"role": "model", "parts": [{"text": "t", "thoughtSignature": "OPAQUESIG"}]}]}
    assert "OPAQUESIG" not in all_text(parsed(PATH, body))


@pytest.mark.parametrize(
    ("path", "model", "stream"),
    [
        ("/v1beta/models/gemini-2.0-flash:generateContent", "gemini-2.0-flash", False),
        ("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini-2.0-flash", True),
        ("/v1/models/gemini-pro:countTokens", "gemini-pro", False),
        (
            "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
            "gemini-2.5-pro",
            True,
        ),
        ("/v1beta/tunedModels/my-tuned:generateContent", "my-tuned", False),
    ],
)
def test_paths(path: str, model: str, stream: bool) -> None:
    result = parsed(path, user({"text": "x"}))
    assert (result.provider, result.api, result.model, result.stream) == (
        "gemini",
        "gemini.generate_content",
        model,
        stream,
    )


@pytest.mark.parametrize(
    "config",
    [{"generationConfig": {"maxOutputTokens": 321}}, {"generation_config": {"max_output_tokens": 321}}],
)
def test_max_output_tokens(config: dict[str, Any]) -> None:
    assert parsed(PATH, {**user({"text": "x"}), **config}).max_output_tokens == 321


def test_header_picks_gemini_on_unknown_path() -> None:
    result = parsed("/llm", user({"text": "hello"}), {"x-llm-provider": "gemini"})
    assert result.api == "gemini.generate_content"
    assert segments(result)["contents[0].parts[0].text"] == "hello"


@pytest.mark.parametrize(
    ("body", "loc", "text"),
    [
        ({"contents": {"parts": [{"text": "single"}]}}, "contents.parts[0].text", "single"),
        ({"contents": [{"role": "user", "parts": "not a list"}]}, "contents[0].parts", "not a list"),
        ({"contents": [{"parts": [{"functionCall": "bad"}]}]}, "contents[0].parts[0].functionCall", "bad"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "text/plain", "data": "!!not base64!!"}}]}]},
            "contents[0].parts[0].inlineData.data",
            "!!not base64!!",
        ),
    ],
)
def test_unexpected_shapes_still_scanned(body: dict[str, Any], loc: str, text: str) -> None:
    assert segments(parsed(PATH, body))[loc] == text
