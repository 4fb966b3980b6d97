"""Base URL alone is enough: provider prefixes, OpenAI by path, GET / — through real Envoy and the real filter.

`http://GATEWAY/anthropic`, `/openai/v1`, `/gemini`, `/mistral/v1`, `/groq/openai/v1`, `/azure`,
`/bedrock` name the provider without any custom header; Envoy removes the prefix before the
provider, and the same path allowlist and 403 policy apply. `/v1/chat/completions` & co. without
a header go to OpenAI (OPENAI_BASE_URL=http://GATEWAY/v1). The provider is the fake in
fake_provider.py (a fake: real providers cannot be reached from the tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess

pytestmark = pytest.mark.e2e

HOSTS = {
    "anthropic": "api.anthropic.com",
    "openai": "api.openai.com",
    "gemini": "generativelanguage.googleapis.com",
    "mistral": "api.mistral.ai",
    "groq": "api.groq.com",
    "azure": "example-resource.openai.azure.com",
    "bedrock": "bedrock-runtime.us-east-1.amazonaws.com",
}
TEXT = "Rename the helper and keep the tests green."
CHAT = {"model": "m", "messages": [{"role": "user", "content": TEXT}]}
BODIES: dict[str, dict[str, Any]] = {
    "anthropic": {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": TEXT}]},
    "chat": CHAT,
    "responses": {"model": "m", "input": TEXT},
    "embeddings": {"model": "m", "input": [TEXT]},
    "fim": {"model": "codestral-latest", "prompt": "def add(a, b):", "suffix": "return c"},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": TEXT}]}]},
    "bedrock": {"messages": [{"role": "user", "content": [{"text": TEXT}]}]},
}

# (path sent to the gateway, provider, path the provider receives, body kind)
PREFIXED = [
    ("/anthropic/v1/messages", "anthropic", "/v1/messages", "anthropic"),
    ("/anthropic/v1/messages/count_tokens", "anthropic", "/v1/messages/count_tokens", "anthropic"),
    ("/openai/v1/chat/completions", "openai", "/v1/chat/completions", "chat"),
    ("/openai/v1/responses", "openai", "/v1/responses", "responses"),
    ("/openai/v1/embeddings", "openai", "/v1/embeddings", "embeddings"),
    ("/gemini/v1beta/models/gemini-2.0-flash:generateContent", "gemini",
     "/v1beta/models/gemini-2.0-flash:generateContent", "gemini"),
    ("/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini",
     "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini"),
    ("/mistral/v1/chat/completions", "mistral", "/v1/chat/completions", "chat"),
    ("/mistral/v1/fim/completions", "mistral", "/v1/fim/completions", "fim"),
    ("/groq/openai/v1/chat/completions", "groq", "/openai/v1/chat/completions", "chat"),
    ("/azure/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "azure",
     "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "chat"),
    ("/azure/openai/v1/responses", "azure", "/openai/v1/responses", "responses"),
    ("/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "bedrock",
     "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "bedrock"),
]  # fmt: skip


@pytest.fixture(scope="module")
def content_filter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilterProcess]:
    with FilterProcess(tmp_path_factory.mktemp("routes-filter")) as flt:
        yield flt


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, content_filter: FilterProcess, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    envoy = start_envoy(
        tmp_path_factory.mktemp("routes-envoy"), "--upstream", fake_provider_server.url, "--filter",
        content_filter.address,
    )  # fmt: skip
    try:
        yield envoy
    finally:
        envoy.stop()


def post(envoy: EnvoyProcess, path: str, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], bytes]:
    return envoy.request("POST", path, json.dumps(body).encode(), {k.replace("_", "-"): v for k, v in headers.items()})


@pytest.mark.parametrize(("path", "provider", "upstream_path", "kind"), PREFIXED)
def test_provider_prefix_alone_reaches_the_provider_without_the_prefix(
    gateway: EnvoyProcess,
    content_filter: FilterProcess,
    fake_provider: FakeProvider,
    path: str,
    provider: str,
    upstream_path: str,
    kind: str,
) -> None:
    checks = len(content_filter.audit())
    status, _, _ = post(gateway, path, BODIES[kind])
    assert status == 200
    [received] = fake_provider.requests
    assert received.path == upstream_path
    assert received.headers["host"] == HOSTS[provider]
    assert received.headers["x-llm-filter-decision"] == "allow"  # the filter checked it on the way
    assert received.json() == BODIES[kind]
    audit = content_filter.audit()
    assert len(audit) == checks + 1
    assert audit[-1]["provider"] == provider


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings"])
def test_openai_compatible_paths_without_a_header_go_to_openai(
    gateway: EnvoyProcess, fake_provider: FakeProvider, path: str
) -> None:
    body = BODIES["responses" if path == "/v1/responses" else "embeddings" if "embeddings" in path else "chat"]
    if path == "/v1/completions":
        body = {"model": "m", "prompt": TEXT}
    assert post(gateway, path, body)[0] == 200
    [received] = fake_provider.requests
    assert (received.path, received.headers["host"]) == (path, HOSTS["openai"])


@pytest.mark.parametrize(
    ("header", "path", "provider"),
    [
        ("mistral", "/v1/chat/completions", "mistral"),
        ("groq", "/openai/v1/chat/completions", "groq"),
        ("azure", "/openai/v1/chat/completions", "azure"),
        ("openai", "/v1/chat/completions", "openai"),
    ],
)
def test_the_provider_header_still_chooses_on_shared_paths(
    gateway: EnvoyProcess, fake_provider: FakeProvider, header: str, path: str, provider: str
) -> None:
    assert post(gateway, path, CHAT, x_llm_provider=header)[0] == 200
    [received] = fake_provider.requests
    assert (received.path, received.headers["host"]) == (path, HOSTS[provider])


@pytest.mark.parametrize(
    "path",
    [
        "/openai/v1/files",
        "/openai/v1/batches",
        "/anthropic/v1/messages/batches",
        "/anthropic/v1/files",
        "/mistral/v1/batch/jobs",
        "/groq/openai/v1/batches",
        "/azure/openai/files?api-version=2024-10-21",
        "/gemini/upload/v1beta/files",
        "/gemini/v1beta/cachedContents",
        "/gemini/v1beta/models/gemini-2.0-flash:batchGenerateContent",
        "/bedrock/async-invoke",
        "/anthropic/v1/messages/../files",
        "/openai/v1/chat/completions/../../fine_tuning/jobs",
    ],
)
def test_denied_surfaces_are_403_under_every_prefix(
    gateway: EnvoyProcess, content_filter: FilterProcess, fake_provider: FakeProvider, path: str
) -> None:
    checks = len(content_filter.audit())
    status, headers, body = gateway.request("POST", path, b"{}")
    assert status == 403
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "forbidden"
    assert len(content_filter.audit()) == checks
    assert fake_provider.requests == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/anthropic/v1/complete"),
        ("GET", "/openai/v1/models"),
        ("GET", "/anthropic/v1/messages"),
        ("POST", "/openai/v1/realtime"),
        ("POST", "/groq/v1/chat/completions"),  # Groq's API lives under /openai/v1
        ("POST", "/bedrock/model/m/list"),
        ("POST", "/acme/v1/chat/completions"),
        ("POST", "/anthropic/anthropic/v1/messages"),
    ],
)
def test_unknown_paths_under_a_prefix_are_404(
    gateway: EnvoyProcess, content_filter: FilterProcess, fake_provider: FakeProvider, method: str, path: str
) -> None:
    checks = len(content_filter.audit())
    status, _, body = gateway.request(method, path, b"{}" if method == "POST" else b"")
    assert status == 404
    assert json.loads(body)["error"]["type"] == "not_found"
    assert len(content_filter.audit()) == checks
    assert fake_provider.requests == []


def test_get_root_names_the_gateway_and_its_prefixes(gateway: EnvoyProcess, fake_provider: FakeProvider) -> None:
    status, headers, body = gateway.request("GET", "/")
    assert status == 200
    assert headers["content-type"] == "application/json"
    info = json.loads(body)
    assert info["status"] == "ok"
    assert info["base_urls"]["openai"] == "/openai/v1"
    assert set(info["base_urls"]) == set(HOSTS)
    status, headers, body = gateway.request("HEAD", "/")
    assert (status, body) == (200, b"")
    assert fake_provider.requests == []


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_root_never_forwards_a_body(
    gateway: EnvoyProcess, content_filter: FilterProcess, fake_provider: FakeProvider, method: str
) -> None:
    checks = len(content_filter.audit())
    status, _, _ = gateway.request(method, "/", json.dumps(CHAT).encode())
    assert status == (200 if method == "GET" else 404)
    assert fake_provider.requests == []
    assert len(content_filter.audit()) == checks
