"""Envoy's half of the contract with the filter, through real Envoy, with a scripted gRPC stub in
the filter's place (authz_stub.py) and the fake provider behind it.

What the filter can rely on is written in envoy/README.md; each test pins one piece of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from .authz_stub import AuthzStub, allow, deny
from .envoy_harness import EnvoyProcess, make_jwt, start_envoy, write_jwks
from .fake_provider import FakeProvider

pytestmark = pytest.mark.e2e

SIXTEEN_MIB = 16 * 1024 * 1024
JWT_NS = "envoy.filters.http.jwt_authn"
JWT_SECRET = b"test-only-hs256-secret-0123456789abcdef"
PROVIDER_GEMINI = "generativelanguage.googleapis.com"


@pytest.fixture(scope="module")
def stub_server() -> Iterator[AuthzStub]:
    with AuthzStub() as stub:
        yield stub


@pytest.fixture
def stub(stub_server: AuthzStub) -> AuthzStub:
    stub_server.clear()
    return stub_server


@pytest.fixture(scope="module")
def envoy(
    tmp_path_factory: pytest.TempPathFactory, stub_server: AuthzStub, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    proc = start_envoy(
        tmp_path_factory.mktemp("contract"),
        "--upstream",
        fake_provider_server.url,
        "--filter",
        stub_server.address,
        "--authz-timeout",
        "0.5s",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def envoy_jwt(
    tmp_path_factory: pytest.TempPathFactory, stub_server: AuthzStub, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    workdir = tmp_path_factory.mktemp("contract-jwt")
    jwks = write_jwks(workdir / "jwks.json", JWT_SECRET)
    proc = start_envoy(
        workdir,
        "--upstream",
        fake_provider_server.url,
        "--filter",
        stub_server.address,
        "--jwt-jwks",
        str(jwks),
    )
    try:
        yield proc
    finally:
        proc.stop()


def body_for(provider: str) -> bytes:
    if provider == "anthropic":
        doc: dict[str, object] = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    elif provider == "gemini":
        doc = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    elif provider == "bedrock":
        doc = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    else:
        doc = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps(doc).encode()


ALLOWED = [
    # (x-llm-provider or None, path, provider routed to, upstream Host)
    ("anthropic", "/v1/messages", "anthropic", "api.anthropic.com"),
    ("anthropic", "/v1/messages/count_tokens", "anthropic", "api.anthropic.com"),
    ("anthropic", "/v1/messages?beta=true", "anthropic", "api.anthropic.com"),
    ("openai", "/v1/chat/completions", "openai", "api.openai.com"),
    ("openai", "/v1/responses", "openai", "api.openai.com"),
    ("openai", "/v1/completions", "openai", "api.openai.com"),
    ("openai", "/v1/embeddings", "openai", "api.openai.com"),
    ("gemini", "/v1beta/models/gemini-2.0-flash:generateContent", "gemini", "generativelanguage.googleapis.com"),
    (
        "gemini",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        "gemini",
        "generativelanguage.googleapis.com",
    ),
    ("gemini", "/v1/models/gemini-1.5-pro:countTokens", "gemini", "generativelanguage.googleapis.com"),
    ("mistral", "/v1/chat/completions", "mistral", "api.mistral.ai"),
    ("mistral", "/v1/fim/completions", "mistral", "api.mistral.ai"),
    ("groq", "/openai/v1/chat/completions", "groq", "api.groq.com"),
    (
        "bedrock",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse",
        "bedrock",
        "bedrock-runtime.us-east-1.amazonaws.com",
    ),
    (
        "bedrock",
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/converse-stream",
        "bedrock",
        "bedrock-runtime.us-east-1.amazonaws.com",
    ),
    ("bedrock", "/model/amazon.titan-text-express-v1/invoke", "bedrock", "bedrock-runtime.us-east-1.amazonaws.com"),
    ("bedrock", "/model/m/invoke-with-response-stream", "bedrock", "bedrock-runtime.us-east-1.amazonaws.com"),
    (
        "azure",
        "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
        "azure",
        "example-resource.openai.azure.com",
    ),
    ("azure", "/openai/v1/responses", "azure", "example-resource.openai.azure.com"),
    # no header: the path names one provider
    (None, "/v1/messages", "anthropic", "api.anthropic.com"),
    (None, "/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaFAKE", "gemini", PROVIDER_GEMINI),
    (None, "/model/m/converse", "bedrock", "bedrock-runtime.us-east-1.amazonaws.com"),
    (None, "/openai/deployments/d1/chat/completions", "azure", "example-resource.openai.azure.com"),
]


@pytest.mark.parametrize(("header", "path", "provider", "host"), ALLOWED)
def test_allowed_request_reaches_its_provider_after_check(
    envoy: EnvoyProcess,
    stub: AuthzStub,
    fake_provider: FakeProvider,
    header: str | None,
    path: str,
    provider: str,
    host: str,
) -> None:
    body = body_for(provider)
    headers = {"x-llm-provider": header} if header else {}
    status, _, resp = envoy.request("POST", path, body, headers)
    assert status == 200, resp
    assert "usage" in json.loads(resp)

    [check] = stub.checks
    http = check.attributes.request.http
    assert http.raw_body == body  # pack_as_bytes: exact bytes
    assert http.path == path  # query string included
    assert http.method == "POST"
    meta = check.attributes.route_metadata_context.filter_metadata["llm_gateway"]
    assert meta["provider"] == provider
    assert meta["provider_source"] == ("header" if header else "path")

    [sent] = fake_provider.requests
    assert (sent.method, sent.path, sent.body) == ("POST", path, body)
    assert sent.headers["host"] == host
    leaked = [h for h in sent.headers if h.startswith("x-envoy-") or h == "x-forwarded-for"]
    assert leaked == []


@pytest.mark.parametrize(
    ("header", "path", "method"),
    [
        (None, "/v1/chat/completions", "POST"),  # OpenAI-compatible path: header required
        (None, "/v1/responses", "POST"),
        ("openai", "/v1/messages", "POST"),  # header and path disagree
        ("anthropic", "/v1/chat/completions", "POST"),
        ("acme", "/v1/chat/completions", "POST"),  # unknown provider
        ("anthropic", "/v1/messages", "GET"),  # wrong method
        ("openai", "/v1/models", "GET"),
        ("openai", "/v1/realtime", "POST"),
        ("anthropic", "/v1/messages/", "POST"),
        ("anthropic", "/V1/MESSAGES", "POST"),
        ("gemini", "/v1beta/models/a%2F..%2Ffiles:generateContent", "POST"),
        (None, "/", "POST"),
    ],
)
def test_anything_else_is_404_and_never_checked(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider, header: str | None, path: str, method: str
) -> None:
    headers = {"x-llm-provider": header, "x-workspace-id": "w1"} if header else {"x-workspace-id": "w1"}
    status, resp_headers, body = envoy.request(method, path, b"{}" if method == "POST" else b"", headers)
    assert status == 404
    assert resp_headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "not_found"
    assert stub.checks == [] and stub.ratelimits == []
    assert fake_provider.requests == []


DENIED = [
    ("openai", "/v1/files"),
    ("openai", "/v1/files/file-abc/content"),
    ("openai", "/v1/uploads"),
    ("openai", "/v1/batches"),
    ("openai", "/v1/fine_tuning/jobs"),
    ("openai", "/v1/assistants"),
    ("openai", "/v1/vector_stores/vs_1/files"),
    ("openai", "/v1/threads/t/runs"),
    ("openai", "/v1/organization/admin_api_keys"),
    ("anthropic", "/v1/messages/batches"),
    ("anthropic", "/v1/messages/batches/b1/results"),
    ("anthropic", "/v1/files"),
    ("anthropic", "/v1/organizations/api_keys"),
    ("mistral", "/v1/batch/jobs"),
    ("groq", "/openai/v1/files"),
    ("groq", "/openai/v1/batches"),
    ("azure", "/openai/files?api-version=2024-10-21"),
    ("azure", "/openai/fine_tuning/jobs"),
    ("gemini", "/upload/v1beta/files"),
    ("gemini", "/v1beta/cachedContents"),
    ("gemini", "/v1beta/tunedModels"),
    ("gemini", "/v1beta/models/gemini-2.0-flash:batchGenerateContent"),
    ("bedrock", "/async-invoke"),
    (None, "/v1/files"),
    # dot segments are resolved before routing
    ("anthropic", "/v1/messages/../files"),
    ("openai", "/v1/chat/completions/../../batches"),
    ("openai", "//v1//files"),
]


@pytest.mark.parametrize(("header", "path"), DENIED)
def test_denied_surfaces_are_403_and_never_leave(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider, header: str | None, path: str
) -> None:
    headers = {"x-llm-provider": header} if header else {}
    status, resp_headers, body = envoy.request("POST", path, b"{}", headers)
    assert status == 403
    assert resp_headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": {"type": "forbidden", "message": "API path not allowed by gateway policy"}}
    assert stub.checks == []
    assert fake_provider.requests == []


def test_filter_headers_reach_the_provider_and_client_copies_do_not(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider
) -> None:
    stub.on_check = lambda _req: allow(
        {"x-llm-filter-decision": "allow", "x-llm-prompt-tokens": "7", "x-llm-filter-id": "dec-123"}
    )
    forged = {
        "x-llm-provider": "openai",
        "x-llm-filter-decision": "allow",
        "x-llm-filter-id": "forged",
        "x-llm-filter-anything": "forged",
        "x-llm-prompt-tokens": "1",
        "authorization": "Bearer sk-client-key",
    }
    status, _, _ = envoy.request("POST", "/v1/chat/completions", body_for("openai"), forged)
    assert status == 200
    [check] = stub.checks
    seen = dict(check.attributes.request.http.headers)
    assert not [h for h in seen if h.startswith("x-llm-filter-") or h == "x-llm-prompt-tokens"]
    assert seen["x-llm-provider"] == "openai"
    assert seen["authorization"] == "Bearer sk-client-key"
    [sent] = fake_provider.requests
    assert sent.headers["x-llm-filter-decision"] == "allow"
    assert sent.headers["x-llm-prompt-tokens"] == "7"
    assert sent.headers["x-llm-filter-id"] == "dec-123"
    assert "x-llm-filter-anything" not in sent.headers


def test_filter_can_replace_the_provider_key(envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider) -> None:
    """Credential injection: the filter strips the client's key and sets the team's."""
    stub.on_check = lambda _req: allow({"authorization": "Bearer sk-team-key"}, remove=["x-api-key"])
    headers = {"x-llm-provider": "openai", "authorization": "Bearer sk-client", "x-api-key": "sk-client-2"}
    status, _, _ = envoy.request("POST", "/v1/chat/completions", body_for("openai"), headers)
    assert status == 200
    [sent] = fake_provider.requests
    assert sent.headers["authorization"] == "Bearer sk-team-key"
    assert "x-api-key" not in sent.headers


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415, 429])
def test_filter_denials_pass_through_unchanged(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider, status: int
) -> None:
    body = json.dumps({"type": "error", "error": {"type": "forbidden", "message": "rule aws-access-key"}})
    stub.on_check = lambda _req: deny(status, body, {"x-llm-filter-id": "dec-9", "retry-after": "30"})
    got, headers, resp = envoy.request("POST", "/v1/messages", body_for("anthropic"), {"x-llm-provider": "anthropic"})
    assert got == status
    assert resp.decode() == body
    assert headers["x-llm-filter-id"] == "dec-9"
    assert headers["retry-after"] == "30"
    assert fake_provider.requests == []


def test_slow_filter_fails_closed(envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider) -> None:
    stub.check_delay = 1.5  # over the 0.5s rendered for this Envoy
    started = time.monotonic()
    status, _, _ = envoy.request("POST", "/v1/messages", body_for("anthropic"), {"x-llm-provider": "anthropic"})
    assert status == 503
    assert time.monotonic() - started < 1.45  # did not wait for the stub (1.5 s)
    time.sleep(1.2)  # let the stub finish; nothing may arrive late either
    assert fake_provider.requests == []


def test_rate_limit_descriptors_and_over_limit(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider
) -> None:
    headers = {"x-llm-provider": "anthropic", "x-workspace-id": "ws-1", "x-team-id": "team-a"}
    status, _, _ = envoy.request("POST", "/v1/messages", body_for("anthropic"), headers)
    assert status == 200
    [rl] = stub.ratelimits
    assert rl.domain == "llm-gateway"
    assert rl.hits_addend == 0  # i.e. 1
    descriptors = [[(e.key, e.value) for e in d.entries] for d in rl.descriptors]
    assert descriptors == [[("workspace_id", "ws-1")], [("team_id", "team-a")]]

    stub.clear()
    fake_provider.clear()
    stub.over_limit = True
    stub.over_limit_headers = {"retry-after": "42"}
    status, resp_headers, _ = envoy.request("POST", "/v1/messages", body_for("anthropic"), headers)
    assert status == 429
    assert resp_headers["retry-after"] == "42"
    assert stub.checks == []  # rate limit runs first: no body buffered, no scan
    assert fake_provider.requests == []


def test_no_identity_header_means_no_rate_limit_call(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider
) -> None:
    status, _, _ = envoy.request("POST", "/v1/messages", body_for("anthropic"), {"x-llm-provider": "anthropic"})
    assert status == 200
    assert stub.ratelimits == []
    assert len(stub.checks) == 1  # the filter decides what a request without identity gets


def test_16_mib_body_is_checked_whole_and_one_byte_more_is_413(
    envoy: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider
) -> None:
    prefix = b'{"model":"m","messages":[{"role":"user","content":"'
    suffix = b'"}]}'
    body = prefix + b"a" * (SIXTEEN_MIB - len(prefix) - len(suffix)) + suffix
    assert len(body) == SIXTEEN_MIB
    status, _, _ = envoy.request("POST", "/v1/chat/completions", body, {"x-llm-provider": "openai"})
    assert status == 200
    [check] = stub.checks
    assert check.attributes.request.http.raw_body == body
    assert check.attributes.request.http.headers["x-envoy-auth-partial-body"] == "false"
    assert fake_provider.requests[0].body == body

    stub.clear()
    fake_provider.clear()
    status, _, _ = envoy.request("POST", "/v1/chat/completions", body + b" ", {"x-llm-provider": "openai"})
    assert status == 413
    assert stub.checks == []
    assert fake_provider.requests == []


def test_access_log_is_json_without_query_strings(
    stub: AuthzStub, fake_provider: FakeProvider, envoy_factory: Callable[..., EnvoyProcess]
) -> None:
    proc = envoy_factory("--upstream", fake_provider.url, "--filter", stub.address)
    stub.on_check = lambda _req: allow(
        {"x-llm-filter-id": "dec-42", "x-llm-filter-decision": "allow"}, {"decision_id": "dec-42", "verdict": "allow"}
    )
    path = "/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaSECRETSECRET"
    headers = {"x-llm-provider": "gemini", "x-workspace-id": "ws-9"}
    assert proc.request("POST", path, body_for("gemini"), headers)[0] == 200
    assert proc.request("POST", "/v1/files", b"{}", {"x-llm-provider": "openai"})[0] == 403
    proc.stop()
    text = proc.stdout_path.read_text()
    assert "AIzaSECRETSECRET" not in text
    allowed, denied = proc.access_log()
    assert allowed["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert allowed["status"] == 200
    assert allowed["route"] == "gemini"
    assert allowed["provider"] == "gemini"
    assert allowed["workspace"] == "ws-9"
    assert allowed["filter_id"] == "dec-42"
    assert allowed["upstream_cluster"] == "gemini"
    assert {"decision_id": "dec-42", "verdict": "allow"}.items() <= allowed["ext_authz"].items()
    assert "ext_authz_duration" in allowed["ext_authz"]  # added by Envoy (ms)
    assert denied["status"] == 403
    assert denied["route"] == "deny-openai-style-surfaces"
    assert denied["response_code_details"] == "direct_response"


# --- JWT identity ----------------------------------------------------------------------------


def token(**overrides: object) -> str:
    claims: dict[str, object] = {
        "iss": "llm-gateway-test",
        "sub": "agent-7",
        "exp": int(time.time()) + 600,
        "workspace": "ws-verified",
        "team": "team-verified",
        "project": "proj-verified",
        "agent": "agent-7",
    }
    claims.update(overrides)
    return make_jwt({k: v for k, v in claims.items() if v is not None}, JWT_SECRET)


def test_jwt_claims_become_the_identity(envoy_jwt: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider) -> None:
    headers = {
        "x-llm-provider": "anthropic",
        "x-llm-gateway-token": token(),
        "x-workspace-id": "ws-forged",
        "x-team-id": "team-forged",
        "x-agent-id": "agent-forged",
        "x-api-key": "sk-ant-client",
    }
    status, _, _ = envoy_jwt.request("POST", "/v1/messages", body_for("anthropic"), headers)
    assert status == 200

    [rl] = stub.ratelimits
    descriptors = [[(e.key, e.value) for e in d.entries] for d in rl.descriptors]
    assert descriptors == [[("workspace_id", "ws-verified")], [("team_id", "team-verified")]]

    [check] = stub.checks
    payload = check.attributes.metadata_context.filter_metadata[JWT_NS]["jwt_payload"]
    assert {k: payload[k] for k in ("iss", "workspace", "team", "project", "agent")} == {
        "iss": "llm-gateway-test",
        "workspace": "ws-verified",
        "team": "team-verified",
        "project": "proj-verified",
        "agent": "agent-7",
    }
    seen = dict(check.attributes.request.http.headers)
    assert seen["x-workspace-id"] == "ws-verified"
    assert seen["x-team-id"] == "team-verified"
    assert seen["x-project-id"] == "proj-verified"
    assert seen["x-agent-id"] == "agent-7"
    assert "x-llm-gateway-token" not in seen  # forward: false

    [sent] = fake_provider.requests
    assert sent.headers["x-workspace-id"] == "ws-verified"
    assert "x-llm-gateway-token" not in sent.headers
    assert sent.headers["x-api-key"] == "sk-ant-client"


def test_jwt_missing_claim_leaves_no_client_header(
    envoy_jwt: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider
) -> None:
    headers = {"x-llm-provider": "anthropic", "x-llm-gateway-token": token(project=None), "x-project-id": "forged"}
    status, _, _ = envoy_jwt.request("POST", "/v1/messages", body_for("anthropic"), headers)
    assert status == 200
    [check] = stub.checks
    assert "x-project-id" not in dict(check.attributes.request.http.headers)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "not-a-jwt",
        "wrong-issuer",
        "expired",
        "bad-signature",
    ],
)
def test_jwt_missing_or_invalid_is_401(
    envoy_jwt: EnvoyProcess, stub: AuthzStub, fake_provider: FakeProvider, bad: str | None
) -> None:
    headers = {"x-llm-provider": "anthropic", "x-workspace-id": "ws-1"}
    if bad == "not-a-jwt":
        headers["x-llm-gateway-token"] = "abc.def"
    elif bad == "wrong-issuer":
        headers["x-llm-gateway-token"] = token(iss="someone-else")
    elif bad == "expired":
        headers["x-llm-gateway-token"] = token(exp=int(time.time()) - 3600)
    elif bad == "bad-signature":
        headers["x-llm-gateway-token"] = make_jwt({"iss": "llm-gateway-test", "exp": int(time.time()) + 60}, b"x" * 40)
    status, _, _ = envoy_jwt.request("POST", "/v1/messages", body_for("anthropic"), headers)
    assert status == 401
    assert stub.checks == [] and stub.ratelimits == []
    assert fake_provider.requests == []
