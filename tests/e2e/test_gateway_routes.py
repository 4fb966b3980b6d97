"""Base URL alone is enough: provider prefixes, OpenAI by path, GET / — through real Envoy and the real filter.

`http://GATEWAY/anthropic`, `/openai/v1`, `/gemini`, `/mistral/v1`, `/groq/openai/v1`, `/azure`,
`/bedrock`, `/vertex`, `/sagemaker`, `/copilot`, `/copilot-proxy`, `/cursor`, `/codeium` name the provider
without any custom header; Envoy removes the prefix before the provider, and the same path allowlist and 403
policy apply. `/v1/chat/completions` & co. without a header go to OpenAI (OPENAI_BASE_URL=http://GATEWAY/v1).
The provider is the fake in fake_provider.py (a fake: real providers cannot be reached from the tests); the
gateway signs Bedrock and SageMaker requests with test-only AWS keys, checked as AWS would (fake_bedrock.py).
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_bedrock import signature_problem
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
    "vertex": "us-central1-aiplatform.googleapis.com",
    "sagemaker": "runtime.sagemaker.us-east-1.amazonaws.com",
    "copilot": "api.githubcopilot.com",
    "copilot-proxy": "copilot-proxy.githubusercontent.com",
    "cursor": "api2.cursor.sh",
    "codeium": "server.codeium.com",
}
GATEWAY_KEYS = Credentials("AKIAGATEWAYEXAMPLE02", "gateway-secret-key-for-tests-only-000001")
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
    "vertex-claude": {"anthropic_version": "vertex-2023-10-16", "max_tokens": 16,
                      "messages": [{"role": "user", "content": TEXT}]},
    "sagemaker": {"inputs": TEXT, "parameters": {"max_new_tokens": 16}},
    "copilot-completion": {"prompt": "# app.py\ndef add(a, b):", "suffix": "\n", "max_tokens": 50},
}
VERTEX = "/v1/projects/acme-dev/locations/us-central1/publishers"
CURSOR = "/aiserver.v1.ChatService/StreamUnifiedChatWithTools"
CODEIUM = "/exa.api_server_pb.ApiServerService/GetCompletions"

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
    (f"/vertex{VERTEX}/google/models/gemini-2.5-pro:generateContent", "vertex",
     f"{VERTEX}/google/models/gemini-2.5-pro:generateContent", "gemini"),
    (f"/vertex{VERTEX}/anthropic/models/claude-sonnet-4@20250514:streamRawPredict", "vertex",
     f"{VERTEX}/anthropic/models/claude-sonnet-4@20250514:streamRawPredict", "vertex-claude"),
    ("/sagemaker/endpoints/llama-3-prod/invocations", "sagemaker", "/endpoints/llama-3-prod/invocations", "sagemaker"),
    ("/sagemaker/endpoints/llama-3-prod/invocations-response-stream", "sagemaker",
     "/endpoints/llama-3-prod/invocations-response-stream", "sagemaker"),
    ("/copilot/chat/completions", "copilot", "/chat/completions", "chat"),
    ("/copilot-proxy/v1/engines/copilot-codex/completions", "copilot-proxy", "/v1/engines/copilot-codex/completions",
     "copilot-completion"),
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
        env={"AWS_ACCESS_KEY_ID": GATEWAY_KEYS.access_key, "AWS_SECRET_ACCESS_KEY": GATEWAY_KEYS.secret_key,
             "AWS_EC2_METADATA_DISABLED": "true"},
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
        ("POST", f"/vertex{VERTEX}/google/models/gemini-2.5-pro:predict"),
        ("POST", f"/vertex{VERTEX}/anthropic/models/claude-sonnet-4:generateContent"),
        ("POST", "/vertex/v1/projects/acme-dev/locations/us-central1/batchPredictionJobs"),
        ("POST", "/sagemaker/endpoints/llama-3-prod/async-invocations"),
        ("GET", "/sagemaker/endpoints/llama-3-prod/invocations"),
        ("GET", "/copilot/models"),
        ("POST", "/copilot/v1/chat/completions"),
        ("POST", "/copilot-proxy/v1/engines/copilot-codex/embeddings"),
        ("POST", "/cursor/v1/chat/completions"),
        ("GET", f"/cursor{CURSOR}"),
        ("POST", "/codeium/exa.api_server_pb.ApiServerService"),
        ("POST", CURSOR),  # a Connect path without its prefix names no provider
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


# -- providers without a JSON body or with a signature ------------------------------------------------


def aws_key_id() -> str:
    rng = random.Random(41)
    return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def ld(number: int, payload: bytes) -> bytes:
    """A protobuf length-delimited field (payloads under 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def frame(message: bytes, flags: int = 0) -> bytes:
    return bytes([flags]) + len(message).to_bytes(4, "big") + message


def connect_chat(text: str) -> bytes:
    """A Connect streaming request: one envelope holding a protobuf message (the clients' schemas are not
    published; this stands in for them)."""
    return frame(ld(2, ld(1, text.encode())) + ld(5, ld(1, b"claude-4-sonnet")))


def test_sagemaker_is_signed_by_the_gateway_for_service_sagemaker(
    gateway: EnvoyProcess, fake_provider: FakeProvider
) -> None:
    body = json.dumps(BODIES["sagemaker"]).encode()
    status, _, _ = gateway.request(
        "POST", "/sagemaker/endpoints/llama-3-prod/invocations", body,
        {"authorization": "AWS4-HMAC-SHA256 Credential=AKIACLIENTEXAMPLE001/x", "x-amz-date": "20200101T000000Z"},
    )  # fmt: skip
    assert status == 200
    [r] = fake_provider.requests
    assert r.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={GATEWAY_KEYS.access_key}/")
    assert signature_problem(r.method, r.path, r.headers, r.body, GATEWAY_KEYS, "us-east-1", "sagemaker") == ""
    assert "AKIACLIENTEXAMPLE001" not in json.dumps(r.headers)


@pytest.mark.parametrize(("prefix", "method"), [("/cursor", CURSOR), ("/codeium", CODEIUM)])
@pytest.mark.parametrize("content_type", ["application/connect+proto", "application/grpc-web+proto"])
def test_connect_bodies_reach_the_provider_byte_for_byte_without_the_prefix(
    gateway: EnvoyProcess, content_filter: FilterProcess, fake_provider: FakeProvider, prefix: str, method: str,
    content_type: str,
) -> None:  # fmt: skip
    body = connect_chat(TEXT)
    status, _, _ = gateway.request("POST", prefix + method, body, {"content-type": content_type})
    assert status == 200
    [received] = fake_provider.requests
    assert (received.path, received.body) == (method, body)
    assert received.headers["host"] == HOSTS[prefix[1:]]
    audit = content_filter.audit()[-1]
    assert (audit["provider"], audit["api"]) == (prefix[1:], "connect")


SECRET_REQUESTS = [
    (f"/vertex{VERTEX}/google/models/gemini-2.5-pro:generateContent", "application/json",
     lambda key: json.dumps({"contents": [{"parts": [{"text": f"key {key}"}]}]}).encode()),
    (f"/vertex{VERTEX}/anthropic/models/claude-sonnet-4@20250514:rawPredict", "application/json",
     lambda key: json.dumps({**BODIES["vertex-claude"], "messages": [{"role": "user", "content": key}]}).encode()),
    ("/sagemaker/endpoints/llama-3-prod/invocations", "text/csv", lambda key: f"id,note\n1,{key}\n".encode()),
    ("/copilot/chat/completions", "application/json",
     lambda key: json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": key}]}).encode()),
    ("/copilot-proxy/v1/engines/copilot-codex/completions", "application/json",
     lambda key: json.dumps({"prompt": f"AWS_KEY = '{key}'", "suffix": ""}).encode()),
    (f"/cursor{CURSOR}", "application/connect+proto", lambda key: connect_chat(f"deploy with {key}")),
    (f"/codeium{CODEIUM}", "application/grpc-web+proto",
     lambda key: frame(gzip.compress(ld(1, f"deploy with {key}".encode())), flags=1)),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content_type", "build"), SECRET_REQUESTS,
                         ids=[f"{r[0].split('/')[1]}-{i}" for i, r in enumerate(SECRET_REQUESTS)])  # fmt: skip
def test_a_secret_is_denied_under_every_new_prefix_and_nothing_is_forwarded(
    gateway: EnvoyProcess, fake_provider: FakeProvider, path: str, content_type: str, build: Any
) -> None:
    headers = {"content-type": content_type}
    if "grpc-web" in content_type:
        headers["grpc-encoding"] = "gzip"
    status, resp_headers, body = gateway.request("POST", path, build(aws_key_id()), headers)
    assert status == 400, body
    assert resp_headers["x-llm-filter-decision"] == "deny"
    assert aws_key_id().encode() not in body
    assert fake_provider.requests == []


def test_a_compressed_message_the_gateway_cannot_read_is_refused(
    gateway: EnvoyProcess, fake_provider: FakeProvider
) -> None:
    body = frame(b"\x00snappy-bytes", flags=1)
    status, _, _ = gateway.request("POST", f"/cursor{CURSOR}", body,
                                   {"content-type": "application/grpc-web+proto", "grpc-encoding": "snappy"})
    assert status == 415
    assert fake_provider.requests == []


@pytest.mark.parametrize("host", ["api2.cursor.sh", "api.githubcopilot.com", "llm.acme.internal"])
def test_the_host_header_chooses_no_provider(gateway: EnvoyProcess, fake_provider: FakeProvider, host: str) -> None:
    """Only a prefix (or a known API path) routes: a provider's host name alone is an unknown route."""
    for path in (CURSOR, "/chat/completions", "/acme/v1/chat/completions"):
        status, _, _ = gateway.request("POST", path, json.dumps(CHAT).encode(), {"host": host})
        assert status == 404, (host, path)
    assert fake_provider.requests == []
