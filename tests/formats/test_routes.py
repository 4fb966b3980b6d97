"""Gateway provider prefixes name the provider; unprefixed paths keep the path guess."""

from __future__ import annotations

import pytest

from filter.formats import detect_provider
from tests.formats.helpers import envelope, parsed


@pytest.mark.parametrize(
    ("path", "provider", "api", "model"),
    [
        ("/openai/v1/chat/completions", "openai", "openai.chat", None),
        ("/openai/v1/responses", "openai", "openai.responses", None),
        ("/anthropic/v1/messages", "anthropic", "anthropic.messages", None),
        ("/gemini/v1beta/models/gemini-2.0-flash:generateContent", "gemini", "gemini.generate_content", "gemini-2.0-flash"),
        ("/gemini/v1beta/openai/chat/completions", "gemini", "openai.chat", None),
        ("/mistral/v1/chat/completions", "mistral", "openai.chat", None),
        ("/mistral/v1/fim/completions", "mistral", "openai.completions", None),
        ("/groq/openai/v1/chat/completions", "groq", "openai.chat", None),
        ("/azure/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", "azure", "openai.chat", "gpt4o"),
        ("/bedrock/model/anthropic.claude-3-haiku/converse", "bedrock", "bedrock.converse", "anthropic.claude-3-haiku"),
        ("/vertex/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent",
         "vertex", "gemini.generate_content", "gemini-2.5-flash"),
        ("/vertex/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-opus-4@20250514:rawPredict",
         "vertex", "anthropic.messages", "claude-opus-4@20250514"),
        ("/sagemaker/endpoints/my-llm/invocations", "sagemaker", "sagemaker.invocations", "my-llm"),
        ("/copilot/chat/completions", "copilot", "openai.chat", None),
        ("/copilot-proxy/v1/engines/copilot-codex/completions", "copilot-proxy", "openai.completions", "copilot-codex"),
        # without a prefix, the path still tells
        ("/openai/deployments/gpt4o/chat/completions", "azure", "openai.chat", "gpt4o"),
        ("/openai/v1beta/models/x", "raw", "raw", None),
    ],
)
def test_gateway_prefix_names_the_provider(path: str, provider: str, api: str, model: str | None) -> None:
    result = parsed(
        path,
        {
            "model": "body-model",
            "messages": [{"role": "user", "content": "hi"}],
            "contents": [{"parts": [{"text": "hi"}]}],
            "prompt": "hi",
            "input": "hi",
        },
    )
    assert (result.provider, result.api) == (provider, api)
    if model is not None:
        assert result.model == model


def test_prefix_names_the_provider_and_the_provider_header_still_wins() -> None:
    assert detect_provider(envelope("/groq/openai/v1/chat/completions", b"")) == "groq"
    # Groq's own path is /openai/v1/...: clients going there directly say so in the header
    assert detect_provider(envelope("/openai/v1/chat/completions", b"", {"x-llm-provider": "groq"})) == "groq"


def test_prefixed_path_of_no_known_api_is_decoded_by_the_provider_format() -> None:
    result = parsed("/anthropic/v1/messages/batches", {"messages": [{"role": "user", "content": "hi"}]})
    assert (result.provider, result.api) == ("anthropic", "anthropic.messages")


@pytest.mark.parametrize(
    ("path", "provider", "api"),
    [
        ("/cursor/aiserver.v1.ChatService/StreamUnifiedChatWithTools", "cursor", "connect"),
        ("/codeium/exa.api_server_pb.ApiServerService/GetCompletions", "codeium", "connect"),
        ("/cursor/not-a-method", "cursor", "connect"),  # the provider has one format (and no gateway route here)
        ("/chat/completions", "raw", "raw"),  # Copilot's own path names no provider without its prefix
    ],
)
def test_connect_paths_under_their_prefix(path: str, provider: str, api: str) -> None:
    result = parsed(path, b"\x0a\x05hello", {"content-type": "application/proto"})
    assert (result.provider, result.api, result.model) == (provider, api, None)
