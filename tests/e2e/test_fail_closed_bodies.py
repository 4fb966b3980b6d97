"""Fail closed in words the client understands: when the filter cannot be asked, Envoy answers 503 in
the provider's own error shape, with `x-llm-filter-decision: unavailable` and `retry-after`.

Real Envoy, the real filter (stalled with SIGSTOP, or no filter at all); the provider is the fake in
fake_provider.py and must receive nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.waiting import wait_until

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess

pytestmark = pytest.mark.e2e

TEXT = "Explain the failing test in two sentences."
CHAT = {"model": "m", "messages": [{"role": "user", "content": TEXT}]}
ANTHROPIC = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": TEXT}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}]}
BEDROCK = {"messages": [{"role": "user", "content": [{"text": TEXT}]}]}

# (provider, path, body); every provider, by prefix, header and path.
REQUESTS: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    ("anthropic", "/anthropic/v1/messages", ANTHROPIC, {}),
    ("anthropic", "/v1/messages", ANTHROPIC, {"x-llm-provider": "anthropic"}),
    ("openai", "/v1/chat/completions", CHAT, {}),
    ("openai", "/openai/v1/responses", {"model": "m", "input": TEXT}, {}),
    ("mistral", "/mistral/v1/chat/completions", CHAT, {}),
    ("groq", "/groq/openai/v1/chat/completions", CHAT, {}),
    ("azure", "/azure/openai/deployments/d/chat/completions", CHAT, {}),
    ("gemini", "/gemini/v1beta/models/gemini-2.0-flash:generateContent", GEMINI, {}),
    ("gemini", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", GEMINI, {}),
    ("bedrock", "/bedrock/model/m/converse", BEDROCK, {}),
    ("bedrock", "/model/m/invoke", BEDROCK, {"x-llm-provider": "bedrock"}),
]
IDS = [f"{p}:{path}" for p, path, _, _ in REQUESTS]


def assert_unavailable(provider: str, status: int, headers: dict[str, str], body: bytes) -> str:
    """The fail-closed answer of `provider`'s shape; returns its message."""
    assert status == 503
    assert headers["x-llm-filter-decision"] == "unavailable"
    assert headers["retry-after"] == "5"
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    if provider == "anthropic":
        assert doc["type"] == "error"
        assert doc["error"]["type"] == "overloaded_error"
        message = doc["error"]["message"]
    elif provider == "gemini":
        assert (doc["error"]["code"], doc["error"]["status"]) == (503, "UNAVAILABLE")
        message = doc["error"]["message"]
    elif provider == "bedrock":
        assert headers["x-amzn-errortype"] == "ServiceUnavailableException"
        message = doc["message"]
    else:
        assert doc["error"]["code"] == "content_filter_unavailable"
        assert doc["error"]["type"] == "server_error"
        message = doc["error"]["message"]
    assert "content filter is unavailable" in message
    assert "not sent to the provider" in message
    return str(message)


@pytest.fixture(scope="module")
def filter_down(
    tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    """Envoy whose filter address has nothing listening (connection refused)."""
    envoy = start_envoy(
        tmp_path_factory.mktemp("fc-down"), "--upstream", fake_provider_server.url, "--filter", f"127.0.0.1:{free_port()}"
    )
    try:
        yield envoy
    finally:
        envoy.stop()


@pytest.fixture(scope="module")
def stallable(
    tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider
) -> Iterator[tuple[EnvoyProcess, FilterProcess]]:
    workdir = tmp_path_factory.mktemp("fc-stall")
    with FilterProcess(workdir) as flt:
        envoy = start_envoy(
            workdir, "--upstream", fake_provider_server.url, "--filter", flt.address, "--authz-timeout", "0.5s"
        )
        try:
            yield envoy, flt
        finally:
            envoy.stop()


@pytest.mark.parametrize(("provider", "path", "body", "headers"), REQUESTS, ids=IDS)
def test_filter_down_answers_in_the_providers_shape(
    filter_down: EnvoyProcess,
    fake_provider: FakeProvider,
    provider: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    started = time.monotonic()
    status, resp_headers, resp = filter_down.request("POST", path, json.dumps(body).encode(), headers)
    elapsed = time.monotonic() - started
    assert_unavailable(provider, status, resp_headers, resp)
    assert elapsed < 2  # refused connection: answered at once, not after a timeout
    assert fake_provider.requests == []


@pytest.mark.parametrize(("provider", "path", "body", "headers"), REQUESTS[::3], ids=IDS[::3])
def test_stalled_filter_times_out_into_the_same_answer(
    stallable: tuple[EnvoyProcess, FilterProcess],
    fake_provider: FakeProvider,
    provider: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    envoy, flt = stallable
    flt.pause()
    try:
        status, resp_headers, resp = envoy.request("POST", path, json.dumps(body).encode(), headers)
    finally:
        flt.resume()
    assert_unavailable(provider, status, resp_headers, resp)
    assert fake_provider.requests == []


def test_the_filters_own_answers_pass_unchanged(
    stallable: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider
) -> None:
    """Only Envoy's own fail-closed answers are rewritten: a filter deny keeps its status, body and headers."""
    envoy, _ = stallable
    # The filter may still be working off checks abandoned while it was stalled: wait until it answers.
    wait_until("the filter answers again",
               lambda: envoy.request("POST", "/anthropic/v1/messages", json.dumps(ANTHROPIC).encode())[0] == 200,
               timeout=20, interval=0.2)
    fake_provider.clear()
    # A private key block is a secret in any rule pack.
    secret = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    body = dict(ANTHROPIC, messages=[{"role": "user", "content": f"deploy with this key:\n{secret}"}])
    status, headers, resp = envoy.request("POST", "/anthropic/v1/messages", json.dumps(body).encode())
    assert 400 <= status < 500
    assert headers["x-llm-filter-decision"] != "unavailable"
    assert "content filter is unavailable" not in resp.decode()
    assert fake_provider.requests == []


@pytest.mark.parametrize(("provider", "path", "body", "headers"), REQUESTS[::2], ids=IDS[::2])
def test_envoys_own_413_speaks_the_providers_language(
    filter_down: EnvoyProcess,
    fake_provider: FakeProvider,
    provider: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    """Over 16 MiB the body never reaches the filter; the 413 still reads like the provider's own."""
    status, resp_headers, resp = filter_down.request("POST", path, b"x" * (16 * 1024 * 1024 + 1), headers)
    assert status == 413
    assert resp_headers["content-type"] == "application/json"
    doc = json.loads(resp)
    if provider == "anthropic":
        assert doc["error"]["type"] == "request_too_large"
        message = doc["error"]["message"]
    elif provider == "gemini":
        assert (doc["error"]["code"], doc["error"]["status"]) == (413, "INVALID_ARGUMENT")
        message = doc["error"]["message"]
    elif provider == "bedrock":
        assert resp_headers["x-amzn-errortype"] == "ValidationException"
        message = doc["message"]
    else:
        assert doc["error"]["code"] == "request_too_large"
        message = doc["error"]["message"]
    assert "16 MiB" in message and "not sent to the provider" in message
    assert fake_provider.requests == []


@pytest.mark.parametrize(("provider", "path", "body", "headers"), REQUESTS[::2], ids=IDS[::2])
def test_unreachable_provider_is_a_provider_shaped_answer(
    stallable: tuple[EnvoyProcess, FilterProcess],
    tmp_path: Path,
    provider: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    """The filter allows, the provider's address refuses: the client learns that, in its provider's shape."""
    _, flt = stallable
    envoy = start_envoy(tmp_path, "--upstream", f"http://127.0.0.1:{free_port()}", "--filter", flt.address)
    try:
        status, resp_headers, resp = envoy.request("POST", path, json.dumps(body).encode(), headers)
    finally:
        envoy.stop()
    assert status == 503
    assert resp_headers["retry-after"] == "5"
    assert resp_headers.get("x-llm-filter-decision") != "unavailable"  # the filter did answer
    doc = json.loads(resp)
    if provider == "anthropic":
        assert doc["error"]["type"] == "api_error"
        message = doc["error"]["message"]
    elif provider == "gemini":
        assert (doc["error"]["code"], doc["error"]["status"]) == (503, "UNAVAILABLE")
        message = doc["error"]["message"]
    elif provider == "bedrock":
        assert resp_headers["x-amzn-errortype"] == "ServiceUnavailableException"
        message = doc["message"]
    else:
        assert doc["error"]["code"] == "provider_unreachable"
        message = doc["error"]["message"]
    assert "could not reach the provider" in message
