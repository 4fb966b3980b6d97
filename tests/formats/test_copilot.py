"""GitHub Copilot: OpenAI-shaped chat at api.githubcopilot.com (no /v1) and the completions proxy's engines API."""

from __future__ import annotations

import pytest

from filter.model import Verdict
from tests.formats.helpers import aws_key_id, decide, parsed, segments

CHAT = {"model": "gpt-4o", "messages": [{"role": "system", "content": "You are Copilot."},
                                        {"role": "user", "content": "explain this"}], "max_tokens": 100}  # fmt: skip
COMPLETION = {"prompt": "# path: app.py\ndef total(xs):", "suffix": "\n\nprint(total([1]))", "max_tokens": 500,
              "n": 1, "extra": {"language": "python", "next_indent": 4}}  # fmt: skip


def test_copilot_chat_is_openai_chat() -> None:
    result = parsed("/copilot/chat/completions", CHAT)
    assert (result.provider, result.api, result.model, result.max_output_tokens) == (
        "copilot", "openai.chat", "gpt-4o", 100)  # fmt: skip
    assert segments(result)["messages[1].content"] == "explain this"


@pytest.mark.parametrize(("path", "api"), [("/copilot/responses", "openai.responses"),
                                           ("/copilot/embeddings", "openai.embeddings")])  # fmt: skip
def test_copilot_other_apis(path: str, api: str) -> None:
    result = parsed(path, {"model": "m", "input": "hello"})
    assert (result.provider, result.api) == ("copilot", api)
    assert segments(result)["input"] == "hello"


def test_copilot_proxy_completions_scan_prompt_suffix_and_extra() -> None:
    result = parsed("/copilot-proxy/v1/engines/copilot-codex/completions", COMPLETION)
    assert (result.provider, result.api, result.model, result.max_output_tokens) == (
        "copilot-proxy", "openai.completions", "copilot-codex", 500)  # fmt: skip
    found = segments(result)
    assert found["prompt"] == COMPLETION["prompt"]
    assert found["suffix"] == COMPLETION["suffix"]
    assert found["extra.language"] == "python"


def test_the_github_token_is_the_providers_editor_headers_are_scanned() -> None:
    headers = {"authorization": "Bearer tid=abc;exp=1", "editor-version": "vscode/1.95.0",
               "copilot-integration-id": "vscode-chat"}  # fmt: skip
    found = segments(parsed("/copilot/chat/completions", CHAT, headers), roads=True)
    assert {k for k in found if k.startswith("headers")} == {"headers.editor-version", "headers.copilot-integration-id"}


@pytest.mark.parametrize(
    ("path", "field", "location"),
    [
        ("/copilot/chat/completions", "chat", "messages[1].content"),
        ("/copilot-proxy/v1/engines/copilot-codex/completions", "prompt", "prompt"),
        ("/copilot-proxy/v1/engines/copilot-codex/completions", "suffix", "suffix"),
    ],
)
def test_a_secret_in_a_copilot_request_is_denied(path: str, field: str, location: str) -> None:
    key = aws_key_id(21)
    if field == "chat":
        body = {**CHAT, "messages": [CHAT["messages"][0], {"role": "user", "content": f"key {key}"}]}
    else:
        body = {**COMPLETION, field: f"AWS_ACCESS_KEY_ID = '{key}'\n"}
    decision = decide(path, body)
    assert decision.verdict is Verdict.DENY
    found = {(f.rule_id, f.location) for f in decision.findings}
    assert ("aws-access-key-id", location) in found
    assert {loc for _, loc in found} == {location}
    assert decision.provider == path.split("/")[1]
