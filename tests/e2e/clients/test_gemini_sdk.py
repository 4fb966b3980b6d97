"""The official `google-genai` SDK through the gateway: real Envoy and the real filter server in front of a fake
Gemini API (tests/e2e/clients/sdk_provider.py; the real one cannot be reached from here).

The SDK uses the gateway's provider prefix: HttpOptions(base_url="http://gateway/gemini"). It sends its key in
x-goog-api-key and streams with `:streamGenerateContent?alt=sse`. Retries are off (attempts=1).
"""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.support.waiting import avoid_minute_edge

from ..envoy_harness import EnvoyProcess
from .expect import assert_blocked_message, assert_rate_limit_message, assert_unavailable_message
from .sdk_provider import REPLY, SdkProvider
from .stack import CLEAN_PROMPT, WORKSPACE_RPM, Leak, base_url, new_workspace

pytestmark = pytest.mark.e2e

PREFIX = "/gemini"  # the gateway's provider prefix
MODEL = "gemini-2.0-flash"


def client(envoy: EnvoyProcess, prefix: str = PREFIX, **headers: str) -> genai.Client:
    options = types.HttpOptions(base_url=base_url(envoy, prefix), api_version="v1beta", headers=headers or None,
                                retry_options=types.HttpRetryOptions(attempts=1))  # fmt: skip
    return genai.Client(api_key="dummy-gemini-key", http_options=options)


def ask(sdk: genai.Client, text: str = CLEAN_PROMPT) -> types.GenerateContentResponse:
    return sdk.models.generate_content(model=MODEL, contents=text)


def header(exc: errors.APIError, name: str) -> str:
    assert exc.response is not None
    return str(exc.response.headers[name])


@pytest.mark.parametrize("prefix", [PREFIX, ""], ids=["prefix", "root"])  # root: the provider's own paths
def test_generate_content_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider, prefix: str) -> None:
    response = ask(client(gateway, prefix))
    assert response.text == REPLY
    assert response.usage_metadata is not None and response.usage_metadata.candidates_token_count
    (sent,) = upstream.requests
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"  # no gateway prefix reaches the provider
    assert sent.headers["x-llm-filter-decision"] == "allow"
    assert sent.json()["contents"][0]["parts"][0]["text"] == CLEAN_PROMPT


def test_stream_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    sdk = client(gateway)  # kept referenced: the SDK closes its HTTP client when the Client object goes away
    chunks = list(sdk.models.generate_content_stream(model=MODEL, contents=CLEAN_PROMPT))
    assert "".join(c.text or "" for c in chunks) == REPLY
    assert len(chunks) == 2  # two SSE events, parsed one by one
    assert upstream.requests[0].path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_secret_is_blocked_naming_the_filter(gateway: EnvoyProcess, upstream: SdkProvider, leak: Leak, stream: bool) -> None:
    sdk = client(gateway)
    with pytest.raises(errors.ClientError) as caught:
        if stream:
            list(sdk.models.generate_content_stream(model=MODEL, contents=leak.prompt))
        else:
            ask(sdk, leak.prompt)
    exc = caught.value
    # A bad request, not UNAUTHENTICATED/PERMISSION_DENIED: those send users to their API key.
    assert (exc.code, exc.status) == (400, "INVALID_ARGUMENT"), str(exc)
    assert header(exc, "x-llm-filter-decision") == "deny"
    assert_blocked_message(str(exc), header(exc, "x-llm-filter-id"), leak)
    assert_blocked_message(str(exc.message), header(exc, "x-llm-filter-id"), leak)
    assert upstream.requests == []


def test_rate_limit_is_resource_exhausted(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    sdk = client(gateway, **{"x-workspace-id": new_workspace()})
    avoid_minute_edge()
    for _ in range(WORKSPACE_RPM):
        ask(sdk)
    with pytest.raises(errors.ClientError) as caught:
        ask(sdk)
    exc = caught.value
    assert (exc.code, exc.status) == (429, "RESOURCE_EXHAUSTED"), str(exc)
    assert_rate_limit_message(exc.message)
    assert int(header(exc, "retry-after")) >= 1
    assert len(upstream.requests) == WORKSPACE_RPM


def test_stopped_filter_is_a_503_naming_the_filter(dead_gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    with pytest.raises(errors.ServerError) as caught:
        ask(client(dead_gateway))
    exc = caught.value
    assert (exc.code, exc.status) == (503, "UNAVAILABLE"), str(exc)
    assert header(exc, "x-llm-filter-decision") == "unavailable"
    assert int(header(exc, "retry-after")) >= 1
    assert_unavailable_message(str(exc.message))
    assert upstream.requests == []
