"""The official `openai` SDK through the gateway: real Envoy and the real filter server in front of a fake OpenAI
API (tests/e2e/clients/sdk_provider.py; the real one cannot be reached from here).

The SDK uses the gateway's provider prefix (base_url http://gateway/openai/v1), and, as most tools are set up,
OPENAI_BASE_URL=http://gateway/v1 with nothing else. Retries are off (max_retries=0).
"""

from __future__ import annotations

import openai
import pytest

from tests.support.waiting import avoid_minute_edge

from ..envoy_harness import EnvoyProcess
from .expect import assert_blocked_message, assert_rate_limit_message, assert_unavailable_message
from .sdk_provider import REPLY, SdkProvider
from .stack import CLEAN_PROMPT, WORKSPACE_RPM, Leak, base_url, new_workspace

pytestmark = pytest.mark.e2e

MODEL = "gpt-4o"


def client(envoy: EnvoyProcess, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url(envoy, "/openai/v1"), api_key="sk-dummy", max_retries=0,
                         default_headers=headers or None)  # fmt: skip


def ask(sdk: openai.OpenAI, text: str = CLEAN_PROMPT) -> openai.types.chat.ChatCompletion:
    return sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])


def test_chat_completion_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    completion = ask(client(gateway))
    assert completion.choices[0].message.content == REPLY
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    (sent,) = upstream.requests
    assert sent.path == "/v1/chat/completions"  # the gateway prefix is not the provider's
    assert sent.headers["x-llm-filter-decision"] == "allow"


def test_openai_base_url_on_v1_alone_works(
    gateway: EnvoyProcess, upstream: SdkProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user sets first: OPENAI_BASE_URL=http://gateway/v1, no extra header, no prefix."""
    monkeypatch.setenv("OPENAI_BASE_URL", base_url(gateway, "/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy")
    completion = openai.OpenAI(max_retries=0).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": CLEAN_PROMPT}]
    )
    assert completion.choices[0].message.content == REPLY
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]


def test_stream_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    chunks = list(client(gateway).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": CLEAN_PROMPT}], stream=True))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert upstream.requests[0].json()["stream"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_secret_is_blocked_naming_the_filter(gateway: EnvoyProcess, upstream: SdkProvider, leak: Leak, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client(gateway).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": leak.prompt}],
                                                stream=stream)  # fmt: skip
    exc = caught.value
    # A bad request, not AuthenticationError/PermissionDeniedError: those send users to their API key.
    assert type(exc) is openai.BadRequestError, f"{type(exc).__name__}: {exc}"
    assert exc.response.headers["x-llm-filter-decision"] == "deny"
    assert_blocked_message(str(exc), exc.response.headers["x-llm-filter-id"], leak)
    assert upstream.requests == []


def test_rate_limit_is_the_sdks_rate_limit_error(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    sdk = client(gateway, **{"x-workspace-id": new_workspace()})
    avoid_minute_edge()
    for _ in range(WORKSPACE_RPM):
        ask(sdk)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(sdk)
    exc = caught.value
    assert_rate_limit_message(str(exc))
    assert_rate_limit_message(exc.message)
    assert int(exc.response.headers["retry-after"]) >= 1
    assert len(upstream.requests) == WORKSPACE_RPM


def test_stopped_filter_is_a_503_naming_the_filter(dead_gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client(dead_gateway))
    exc = caught.value
    assert exc.status_code == 503
    assert exc.response.headers["x-llm-filter-decision"] == "unavailable"
    assert int(exc.response.headers["retry-after"]) >= 1
    assert_unavailable_message(str(exc))
    assert upstream.requests == []
