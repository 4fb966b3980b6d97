"""The official `anthropic` SDK through the gateway: real Envoy and the real filter server in front of a fake
Anthropic API (tests/e2e/clients/sdk_provider.py; the real one cannot be reached from here).

The SDK uses the gateway's provider prefix: base_url http://gateway/anthropic, as ANTHROPIC_BASE_URL would set it
(the clean request also without it: the gateway routes the provider's own paths too).
Retries are off (max_retries=0), so every error the SDK raises comes from the one request the test made.
"""

from __future__ import annotations

import anthropic
import pytest

from tests.support.waiting import avoid_minute_edge

from ..envoy_harness import EnvoyProcess
from .expect import assert_blocked_message, assert_rate_limit_message, assert_unavailable_message
from .sdk_provider import REPLY, SdkProvider
from .stack import CLEAN_PROMPT, WORKSPACE_RPM, Leak, base_url, new_workspace

pytestmark = pytest.mark.e2e

PREFIX = "/anthropic"  # the gateway's provider prefix
MODEL = "claude-sonnet-4-5"


def client(envoy: EnvoyProcess, prefix: str = PREFIX, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url(envoy, prefix), api_key="sk-ant-dummy", max_retries=0,
                               default_headers=headers or None)  # fmt: skip


def ask(sdk: anthropic.Anthropic, text: str = CLEAN_PROMPT) -> anthropic.types.Message:
    return sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": text}])


@pytest.mark.parametrize("prefix", [PREFIX, ""], ids=["prefix", "root"])  # root: the provider's own paths
def test_message_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider, prefix: str) -> None:
    message = ask(client(gateway, prefix))
    assert [block.text for block in message.content if block.type == "text"] == [REPLY]
    assert message.usage.output_tokens > 0
    (sent,) = upstream.requests
    assert sent.path == "/v1/messages"  # no gateway prefix reaches the provider
    assert sent.headers["x-llm-filter-decision"] == "allow"
    assert sent.json()["messages"][0]["content"] == CLEAN_PROMPT


def test_stream_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    messages = [{"role": "user", "content": CLEAN_PROMPT}]
    with client(gateway).messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY
    assert final.stop_reason == "end_turn"
    assert upstream.requests[0].json()["stream"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_secret_is_blocked_as_a_bad_request_naming_the_filter(
    gateway: EnvoyProcess, upstream: SdkProvider, leak: Leak, stream: bool
) -> None:
    sdk = client(gateway)
    messages = [{"role": "user", "content": leak.prompt}]
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=messages, stream=stream)  # type: ignore[arg-type]
    exc = caught.value
    # Not AuthenticationError/PermissionDeniedError: Claude Code and others would tell the user to log in again.
    assert type(exc) is anthropic.BadRequestError, f"{type(exc).__name__}: {exc}"
    assert exc.type == "invalid_request_error"
    assert exc.response.headers["x-llm-filter-decision"] == "deny"
    assert_blocked_message(str(exc), exc.response.headers["x-llm-filter-id"], leak)
    assert upstream.requests == []


def test_rate_limit_is_the_sdks_rate_limit_error(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    sdk = client(gateway, **{"x-workspace-id": new_workspace()})
    avoid_minute_edge()
    for _ in range(WORKSPACE_RPM):
        ask(sdk)
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(sdk)
    exc = caught.value
    assert exc.type == "rate_limit_error"
    assert_rate_limit_message(str(exc))
    assert_rate_limit_message(exc.api_message)
    assert int(exc.response.headers["retry-after"]) >= 1
    assert len(upstream.requests) == WORKSPACE_RPM


def test_stopped_filter_is_a_503_naming_the_filter(dead_gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        ask(client(dead_gateway))
    exc = caught.value
    assert exc.status_code == 503
    assert exc.response.headers["x-llm-filter-decision"] == "unavailable"
    assert int(exc.response.headers["retry-after"]) >= 1
    assert_unavailable_message(str(exc))
    assert upstream.requests == []
