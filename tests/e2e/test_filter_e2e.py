"""The product end to end: real Envoy (rendered from envoy/envoy.yaml by envoy/render.py) calling the real
filter server (`python -m filter serve`), in front of the fake provider, the only fake (real LLM providers
cannot be reached from here). Every test checks what the client got and what the provider received; the
filter's audit lines (one per Check, written before it answers) show whether the filter was asked at all.

Stacks, each shared by one group of tests (module-scoped):
    gateway        shipped packs; 3 requests/minute per workspace, 5 per team
    small_gateway  MAX_PROMPT_TOKENS=50, limits.max_body_bytes 4096, ext_authz timeout 1s; its filter is
                   stalled (SIGSTOP), killed (SIGKILL) and restarted on the same port by the failure tests
    reload_stack   packs = shipped + a tmp dir with an extra pack, checked for changes every 0.2 s
    jwt_stack      Envoy with jwt_authn; the filter does not trust identity headers
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from tests.support.waiting import avoid_minute_edge, wait_until

from .envoy_harness import EnvoyProcess, make_jwt, start_envoy, write_jwks
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess, replace_file, write_config

pytestmark = pytest.mark.e2e

SIXTEEN_MIB = 16 * 1024 * 1024
WORKSPACE_RPM = 3
TEAM_RPM = 5
JWT_SECRET = b"test-only-hs256-secret-0123456789abcdef"
CLEAN_TEXT = "Refactor the parser in src/app.py to use a dataclass and keep the tests green."
GATEWAY_403 = {"error": {"type": "forbidden", "message": "API path not allowed by gateway policy"}}
ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 403: "permission_error", 413: "request_too_large",
                         415: "invalid_request_error"}  # fmt: skip
LOCATION = {"anthropic": "messages[0].content", "openai": "messages[0].content",
            "gemini": "contents[0].parts[0].text", "bedrock": "messages[0].content[0].text"}  # fmt: skip
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 413: "INVALID_ARGUMENT"}
BEDROCK_ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 413: "ValidationException"}


# --- requests in each provider's format ---------------------------------------------------------


@dataclass(frozen=True)
class Api:
    provider: str
    path: str

    def body(self, text: str) -> bytes:
        if self.provider == "anthropic":
            doc: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64,
                                   "messages": [{"role": "user", "content": text}]}  # fmt: skip
        elif self.provider == "gemini":
            doc = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        elif self.provider == "bedrock":
            doc = {"messages": [{"role": "user", "content": [{"text": text}]}]}
        else:
            doc = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
        return json.dumps(doc).encode()

    def headers(self, **extra: str) -> dict[str, str]:
        return {"x-llm-provider": self.provider, **{k.replace("_", "-"): v for k, v in extra.items()}}


ANTHROPIC = Api("anthropic", "/v1/messages")
OPENAI = Api("openai", "/v1/chat/completions")
GEMINI = Api("gemini", "/v1beta/models/gemini-2.0-flash:generateContent")
BEDROCK = Api("bedrock", "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse")
APIS = [pytest.param(ANTHROPIC, id="anthropic"), pytest.param(OPENAI, id="openai")]


def send(envoy: EnvoyProcess, api: Api, text: str = CLEAN_TEXT, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return envoy.request("POST", api.path, api.body(text), api.headers(**headers))


def assert_denied(api: Api, status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    """A filter deny: `expected` status in the provider's own error shape, with the decision id.

    Returns {"message": ..., "llm_filter": {decision_id, reason, findings}} whatever the shape.
    """
    assert status == expected, body[:2000]
    assert headers["content-type"] == "application/json"
    assert headers["x-llm-filter-decision"] == "deny"
    doc = json.loads(body)
    if api.provider == "anthropic":  # {"type":"error","error":{"type","message"}}
        assert doc["type"] == "error"
        assert doc["error"]["type"] == ANTHROPIC_ERROR_TYPES[expected]
        message, details = doc["error"]["message"], doc["error"]["llm_filter"]
    elif api.provider == "gemini":  # {"error":{"code","message","status","details":[...]}}
        assert (doc["error"]["code"], doc["error"]["status"]) == (expected, GOOGLE_STATUS[expected])
        message, details = doc["error"]["message"], doc["error"]["details"][0]
    elif api.provider == "bedrock":  # {"message"} + x-amzn-errortype
        assert headers["x-amzn-errortype"] == BEDROCK_ERROR_TYPES[expected]
        message, details = doc["message"], doc["llm_filter"]
    else:  # OpenAI: {"error":{"message","type","param","code"}}
        assert {"message", "type", "param", "code"} <= doc["error"].keys()
        assert doc["error"]["code"] == doc["error"]["llm_filter"]["reason"]
        message, details = doc["error"]["message"], doc["error"]["llm_filter"]
    decision_id = headers["x-llm-filter-id"]
    assert details["decision_id"] == decision_id
    assert decision_id in message
    return {"message": message, "llm_filter": details}


def longest_word(text: str) -> str:
    return max(re.split(r"[\s=:'\"`,;()<>\[\]{}]+", text), key=len)


# --- examples from the shipped packs ------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    rule_id: str
    category: str
    text: str


PREFERRED = {"secret": ("AKIAZ5XQ3HR2LMNPQ7TW", "AKIA", "ghp_"), "pii": ("@",), "file": ("PRIVATE KEY", ".env")}


class Samples:
    """One `match` example of an enforcing rule per category, read from the shipped packs."""

    def __init__(self) -> None:
        self.rules = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k")).rules

    def __getitem__(self, category: str) -> Sample:
        rules = [r for r in self.rules
                 if r.category.value == category and r.mode.value == "enforce" and r.action.value != "log"]  # fmt: skip
        assert rules, f"no enforcing {category} rule in the shipped packs"
        for needle in PREFERRED[category]:
            for rule in rules:
                for example in rule.examples.match:
                    if needle in example:
                        return Sample(rule.id, category, example)
        return Sample(rules[0].id, category, rules[0].examples.match[0])


@pytest.fixture(scope="module")
def samples() -> Samples:
    return Samples()


# --- stacks -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def main_filter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilterProcess]:
    workdir = tmp_path_factory.mktemp("main")
    limits = {"workspace_requests_per_minute": WORKSPACE_RPM, "team_requests_per_minute": TEAM_RPM}
    config = write_config(workdir / "filter.yaml", {"rate_limits": limits})
    with FilterProcess(workdir, config=config) as flt:
        yield flt


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, main_filter: FilterProcess, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    envoy = start_envoy(
        tmp_path_factory.mktemp("main-envoy"), "--upstream", fake_provider_server.url, "--filter", main_filter.address
    )
    try:
        yield envoy
    finally:
        envoy.stop()


# --- allow --------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_clean_request_reaches_the_provider_with_the_filter_headers(
    gateway: EnvoyProcess, main_filter: FilterProcess, fake_provider: FakeProvider, api: Api
) -> None:
    body = api.body(CLEAN_TEXT)
    status, _, resp = gateway.request("POST", api.path, body, api.headers())
    assert status == 200, resp
    assert "usage" in json.loads(resp)  # the provider's own answer
    [sent] = fake_provider.requests
    assert (sent.method, sent.path, sent.body) == ("POST", api.path, body)  # the exact bytes
    assert sent.headers["x-llm-filter-decision"] == "allow"
    assert sent.headers["x-llm-prompt-tokens"].isdigit()
    audit = main_filter.audit()[-1]
    assert sent.headers["x-llm-filter-id"] == audit["decision_id"]
    assert (audit["verdict"], audit["provider"], audit["body_bytes"]) == ("allow", api.provider, len(body))


def test_client_cannot_forge_the_filter_headers(
    gateway: EnvoyProcess, main_filter: FilterProcess, fake_provider: FakeProvider
) -> None:
    forged = {
        "x-llm-filter-decision": "allow",
        "x-llm-filter-id": "forged",
        "x-llm-filter-anything": "forged",
        "x-llm-prompt-tokens": "1",
        "authorization": "Bearer sk-client-key",
    }
    status, _, _ = gateway.request("POST", OPENAI.path, OPENAI.body(CLEAN_TEXT), {**OPENAI.headers(), **forged})
    assert status == 200
    [sent] = fake_provider.requests
    assert sent.headers["x-llm-filter-id"] == main_filter.audit()[-1]["decision_id"] != "forged"
    assert sent.headers["x-llm-prompt-tokens"] != "1"
    assert "x-llm-filter-anything" not in sent.headers
    assert sent.headers["authorization"] == "Bearer sk-client-key"  # the provider key goes on


# --- deny: findings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "api"),
    [
        pytest.param("secret", ANTHROPIC, id="secret-anthropic"),
        pytest.param("secret", OPENAI, id="secret-openai"),
        pytest.param("pii", OPENAI, id="pii-openai"),
        pytest.param("pii", ANTHROPIC, id="pii-anthropic"),
        pytest.param("file", ANTHROPIC, id="file-anthropic"),
        pytest.param("file", OPENAI, id="file-openai"),
        pytest.param("secret", GEMINI, id="secret-gemini"),
        pytest.param("secret", BEDROCK, id="secret-bedrock"),
    ],
)
def test_finding_is_400_in_the_provider_shape_naming_the_rule(
    gateway: EnvoyProcess,
    main_filter: FilterProcess,
    fake_provider: FakeProvider,
    samples: Samples,
    category: str,
    api: Api,
) -> None:
    """400 in every provider's shape: each SDK (and Claude Code) shows the message; a 403 reads as an auth failure."""
    sample = samples[category]
    status, headers, body = send(gateway, api, sample.text)
    error = assert_denied(api, status, headers, body, 400)
    assert error["message"].startswith("Request blocked by the content filter: ")
    assert "(this turn): remove the value and retry" in error["message"]
    assert headers["x-llm-filter-reason"] == error["llm_filter"]["reason"]
    assert sample.rule_id in error["message"]
    found = {(f["rule"], f["category"], f["location"]) for f in error["llm_filter"]["findings"]}
    assert (sample.rule_id, category, LOCATION[api.provider]) in found
    assert longest_word(sample.text) not in body.decode()  # names the rule, never quotes the value
    assert fake_provider.requests == []
    assert main_filter.audit()[-1]["decision_id"] == headers["x-llm-filter-id"]


def test_gzip_body_is_decoded_and_scanned(
    gateway: EnvoyProcess, fake_provider: FakeProvider, samples: Samples
) -> None:
    headers = {**ANTHROPIC.headers(), "content-encoding": "gzip"}
    secret = gzip.compress(ANTHROPIC.body(samples["secret"].text))
    status, resp_headers, body = gateway.request("POST", ANTHROPIC.path, secret, headers)
    error = assert_denied(ANTHROPIC, status, resp_headers, body, 400)
    assert samples["secret"].rule_id in error["message"]
    assert fake_provider.requests == []

    clean = gzip.compress(ANTHROPIC.body(CLEAN_TEXT))
    status, _, _ = gateway.request("POST", ANTHROPIC.path, clean, headers)
    assert status == 200
    [sent] = fake_provider.requests
    assert sent.body == clean and sent.headers["content-encoding"] == "gzip"  # forwarded as sent


def test_unknown_content_encoding_is_415(gateway: EnvoyProcess, fake_provider: FakeProvider) -> None:
    headers = {**OPENAI.headers(), "content-encoding": "compress"}
    status, resp_headers, body = gateway.request("POST", OPENAI.path, b"\x1f\x9d\x90binary", headers)
    error = assert_denied(OPENAI, status, resp_headers, body, 415)
    assert "compress" in error["message"]
    assert fake_provider.requests == []


def test_malformed_json_is_400_naming_the_offset(gateway: EnvoyProcess, fake_provider: FakeProvider) -> None:
    body = b'{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hunter2-in-the-body"'
    status, headers, resp = gateway.request("POST", ANTHROPIC.path, body, ANTHROPIC.headers())
    error = assert_denied(ANTHROPIC, status, headers, resp, 400)
    assert re.search(r"offset \d+", error["message"])
    assert b"hunter2" not in resp
    assert fake_provider.requests == []


def test_json_deeper_than_the_limit_is_400(gateway: EnvoyProcess, fake_provider: FakeProvider) -> None:
    deep = b'{"model":"gpt-4o","messages":[{"role":"user","content":' + b"[" * 100 + b"]" * 100 + b"}]}"
    status, headers, resp = gateway.request("POST", OPENAI.path, deep, OPENAI.headers())
    error = assert_denied(OPENAI, status, headers, resp, 400)
    assert "64" in error["message"]
    assert fake_provider.requests == []


def test_16_mib_reaches_the_filter_whole_and_one_byte_more_is_envoys_413(
    gateway: EnvoyProcess, main_filter: FilterProcess, fake_provider: FakeProvider
) -> None:
    prefix, suffix = b'{"model":"gpt-4o","messages":[{"role":"user","content":"', b'"}]}'
    filler = b"lorem ipsum dolor sit amet "
    size = SIXTEEN_MIB - len(prefix) - len(suffix)
    body = prefix + (filler * (size // len(filler) + 1))[:size] + suffix
    assert len(body) == SIXTEEN_MIB

    status, headers, resp = gateway.request("POST", OPENAI.path, body, OPENAI.headers())
    error = assert_denied(OPENAI, status, headers, resp, 400)  # the filter read it all: far over 128000 tokens
    assert error["llm_filter"]["reason"] == "prompt_too_large"
    assert "128000" in error["message"]
    assert main_filter.audit()[-1]["body_bytes"] == SIXTEEN_MIB

    checks = len(main_filter.audit())
    status, headers, _ = gateway.request("POST", OPENAI.path, body + b" ", OPENAI.headers())
    assert status == 413
    assert "x-llm-filter-id" not in headers  # Envoy's own 413: the body never reached the filter
    assert len(main_filter.audit()) == checks
    assert fake_provider.requests == []


# --- routing: what never reaches the filter or the provider -------------------------------------

ALLOWED = [
    # (x-llm-provider or None, path, upstream Host)
    ("anthropic", "/v1/messages", "api.anthropic.com"),
    ("anthropic", "/v1/messages/count_tokens", "api.anthropic.com"),
    ("anthropic", "/v1/messages?beta=true", "api.anthropic.com"),
    ("openai", "/v1/chat/completions", "api.openai.com"),
    ("openai", "/v1/responses", "api.openai.com"),
    ("openai", "/v1/completions", "api.openai.com"),
    ("openai", "/v1/embeddings", "api.openai.com"),
    ("gemini", "/v1beta/models/gemini-2.0-flash:generateContent", "generativelanguage.googleapis.com"),
    ("gemini", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "generativelanguage.googleapis.com"),
    ("gemini", "/v1/models/gemini-1.5-pro:countTokens", "generativelanguage.googleapis.com"),
    ("mistral", "/v1/chat/completions", "api.mistral.ai"),
    ("mistral", "/v1/fim/completions", "api.mistral.ai"),
    ("groq", "/openai/v1/chat/completions", "api.groq.com"),
    ("bedrock", "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse", "bedrock-runtime.us-east-1.amazonaws.com"),
    (
        "bedrock",
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/converse-stream",
        "bedrock-runtime.us-east-1.amazonaws.com",
    ),
    ("bedrock", "/model/amazon.titan-text-express-v1/invoke", "bedrock-runtime.us-east-1.amazonaws.com"),
    ("bedrock", "/model/m/invoke-with-response-stream", "bedrock-runtime.us-east-1.amazonaws.com"),
    ("azure", "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", "example-resource.openai.azure.com"),
    ("azure", "/openai/v1/responses", "example-resource.openai.azure.com"),
    # no header: the path names one provider
    (None, "/v1/messages", "api.anthropic.com"),
    (None, "/v1beta/models/gemini-2.0-flash:generateContent", "generativelanguage.googleapis.com"),
    (None, "/model/m/converse", "bedrock-runtime.us-east-1.amazonaws.com"),
    (None, "/openai/deployments/d1/chat/completions", "example-resource.openai.azure.com"),
]


def _provider_of(host: str) -> str:
    return {"api.anthropic.com": "anthropic", "generativelanguage.googleapis.com": "gemini",
            "bedrock-runtime.us-east-1.amazonaws.com": "bedrock", "example-resource.openai.azure.com": "azure",
            "api.mistral.ai": "mistral", "api.groq.com": "groq"}.get(host, "openai")  # fmt: skip


@pytest.mark.parametrize(("header", "path", "host"), ALLOWED)
def test_allowed_route_is_checked_and_reaches_its_provider(
    gateway: EnvoyProcess,
    main_filter: FilterProcess,
    fake_provider: FakeProvider,
    header: str | None,
    path: str,
    host: str,
) -> None:
    provider = _provider_of(host)
    body = Api(provider, path).body(CLEAN_TEXT)
    status, _, resp = gateway.request("POST", path, body, {"x-llm-provider": header} if header else {})
    assert status == 200, resp
    [sent] = fake_provider.requests
    assert (sent.method, sent.path, sent.body) == ("POST", path, body)
    assert sent.headers["host"] == host
    assert sent.headers["x-llm-filter-decision"] == "allow"
    assert not [h for h in sent.headers if h.startswith("x-envoy-") or h == "x-forwarded-for"]
    audit = main_filter.audit()[-1]
    assert audit["decision_id"] == sent.headers["x-llm-filter-id"]
    assert audit["provider"] == provider


NOT_FOUND = [
    ("acme", "/v1/chat/completions", "POST"),  # unknown provider
    ("acme-llm", "/v1/messages", "POST"),
    ("openai", "/v1/messages", "POST"),  # header and path disagree
    ("anthropic", "/v1/chat/completions", "POST"),
    ("anthropic", "/v1/messages", "GET"),  # wrong method
    ("openai", "/v1/models", "GET"),
    ("openai", "/v1/realtime", "POST"),
    ("anthropic", "/v1/messages/", "POST"),
    ("anthropic", "/V1/MESSAGES", "POST"),
    ("gemini", "/v1beta/models/a%2F..%2Ffiles:generateContent", "POST"),
    (None, "/", "POST"),
]


@pytest.mark.parametrize(("header", "path", "method"), NOT_FOUND)
def test_unknown_provider_path_or_method_is_404_and_never_checked(
    gateway: EnvoyProcess,
    main_filter: FilterProcess,
    fake_provider: FakeProvider,
    header: str | None,
    path: str,
    method: str,
) -> None:
    checks = len(main_filter.audit())
    headers = {"x-workspace-id": "ws-404", **({"x-llm-provider": header} if header else {})}
    status, resp_headers, body = gateway.request(method, path, b"{}" if method == "POST" else b"", headers)
    assert status == 404
    assert resp_headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "not_found"
    assert len(main_filter.audit()) == checks
    assert fake_provider.requests == []


DENIED_PATHS = [
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
    ("anthropic", "/v1/messages/../files"),  # dot segments are resolved before routing
    ("openai", "/v1/chat/completions/../../batches"),
    ("openai", "//v1//files"),
]


@pytest.mark.parametrize(("header", "path"), DENIED_PATHS)
def test_denied_api_path_is_403_and_never_checked(
    gateway: EnvoyProcess, main_filter: FilterProcess, fake_provider: FakeProvider, header: str | None, path: str
) -> None:
    checks = len(main_filter.audit())
    headers = {"x-workspace-id": "ws-403", **({"x-llm-provider": header} if header else {})}
    status, resp_headers, body = gateway.request("POST", path, b"{}", headers)
    assert status == 403
    assert resp_headers["content-type"] == "application/json"
    assert json.loads(body) == GATEWAY_403
    assert len(main_filter.audit()) == checks
    assert fake_provider.requests == []


# --- rate limits --------------------------------------------------------------------------------


def test_workspace_over_its_limit_gets_429_while_another_workspace_flows(
    gateway: EnvoyProcess, main_filter: FilterProcess, fake_provider: FakeProvider
) -> None:
    ws_a, ws_b = f"ws-a-{uuid.uuid4().hex[:8]}", f"ws-b-{uuid.uuid4().hex[:8]}"
    avoid_minute_edge()
    for _ in range(WORKSPACE_RPM):
        assert send(gateway, ANTHROPIC, x_workspace_id=ws_a)[0] == 200
    checks = len(main_filter.audit())
    status, headers, body = send(gateway, ANTHROPIC, x_workspace_id=ws_a)
    assert status == 429
    assert headers["x-ratelimit-limit"].startswith(str(WORKSPACE_RPM))
    assert headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 61
    error = json.loads(body)  # Anthropic's own rate limit shape: the SDK raises RateLimitError and backs off
    assert (error["type"], error["error"]["type"]) == ("error", "rate_limit_error")
    assert headers["x-llm-filter-reason"] == "rate_limited"
    # checked first: the limit keys on the identity the filter verified (its dynamic metadata), then refused
    assert len(main_filter.audit()) == checks + 1
    assert send(gateway, ANTHROPIC, x_workspace_id=ws_b)[0] == 200
    assert [r.headers["x-workspace-id"] for r in fake_provider.requests] == [ws_a] * WORKSPACE_RPM + [ws_b]


def test_team_over_its_limit_gets_429_across_its_workspaces(gateway: EnvoyProcess, fake_provider: FakeProvider) -> None:
    team, other = f"team-{uuid.uuid4().hex[:8]}", f"team-{uuid.uuid4().hex[:8]}"
    avoid_minute_edge()
    for i in range(TEAM_RPM):  # each workspace stays under its own limit
        assert send(gateway, OPENAI, x_team_id=team, x_workspace_id=f"{team}-ws{i}")[0] == 200
    status, headers, _ = send(gateway, OPENAI, x_team_id=team, x_workspace_id=f"{team}-ws-new")
    assert status == 429
    assert headers["x-ratelimit-limit"].startswith(str(TEAM_RPM))
    assert send(gateway, OPENAI, x_team_id=other, x_workspace_id=f"{other}-ws")[0] == 200
    assert len(fake_provider.requests) == TEAM_RPM + 1


def test_requests_without_identity_are_not_rate_limited(gateway: EnvoyProcess, fake_provider: FakeProvider) -> None:
    for _ in range(WORKSPACE_RPM + 2):
        assert send(gateway, OPENAI)[0] == 200
    assert len(fake_provider.requests) == WORKSPACE_RPM + 2


# --- access log ---------------------------------------------------------------------------------


def test_access_log_names_the_decision_and_never_the_query_string(
    main_filter: FilterProcess, fake_provider: FakeProvider, envoy_factory: Callable[..., EnvoyProcess]
) -> None:
    envoy = envoy_factory("--upstream", fake_provider.url, "--filter", main_filter.address)
    path = "/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaSECRETSECRET"
    headers = {"x-llm-provider": "gemini", "x-workspace-id": f"ws-log-{uuid.uuid4().hex[:6]}"}
    assert envoy.request("POST", path, Api("gemini", path).body(CLEAN_TEXT), headers)[0] == 200
    decision_id = main_filter.audit()[-1]["decision_id"]
    assert envoy.request("POST", "/v1/files", b"{}", {"x-llm-provider": "openai"})[0] == 403
    envoy.stop()  # Envoy buffers its stdout
    assert "AIzaSECRETSECRET" not in envoy.stdout_path.read_text()
    allowed, denied = envoy.access_log()
    assert allowed["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert (allowed["status"], allowed["route"], allowed["provider"]) == (200, "gemini", "gemini")
    # identity, path and decision as the filter verified and masked them (its dynamic metadata)
    assert allowed["workspace_id"] == headers["x-workspace-id"]
    assert (allowed["decision_id"], allowed["reason"]) == (decision_id, "allowed")
    assert (denied["status"], denied["response_code_details"]) == (403, "direct_response")


def test_audit_never_records_a_key_from_the_query_string(
    gateway: EnvoyProcess, main_filter: FilterProcess, fake_provider: FakeProvider
) -> None:
    path = "/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaSyD3xQ9mP2kL7vN4tR8wZ1cF6hJ0bY5uE2g"
    assert gateway.request("POST", path, Api("gemini", path).body(CLEAN_TEXT), {"x-llm-provider": "gemini"})[0] == 200
    assert fake_provider.requests[0].path == path  # the provider needs it; the audit log must not keep it
    assert "AIzaSyD3xQ9mP2kL7vN4tR8wZ1cF6hJ0bY5uE2g" not in main_filter.audit_path.read_text()


# --- limits and failures: small_gateway ----------------------------------------------------------


@pytest.fixture(scope="module")
def small_filter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilterProcess]:
    workdir = tmp_path_factory.mktemp("small")
    config = write_config(workdir / "filter.yaml", {"limits": {"max_body_bytes": 4096}})
    with FilterProcess(workdir, config=config, env={"MAX_PROMPT_TOKENS": "50"}) as flt:
        yield flt


@pytest.fixture(scope="module")
def small_gateway(
    tmp_path_factory: pytest.TempPathFactory, small_filter: FilterProcess, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    envoy = start_envoy(
        tmp_path_factory.mktemp("small-envoy"),
        "--upstream",
        fake_provider_server.url,
        "--filter",
        small_filter.address,
        "--authz-timeout",
        "1s",
    )
    try:
        yield envoy
    finally:
        envoy.stop()


@pytest.fixture
def healthy_small(
    small_gateway: EnvoyProcess, small_filter: FilterProcess, fake_provider: FakeProvider
) -> Iterator[tuple[EnvoyProcess, FilterProcess]]:
    """The small stack with a running filter that Envoy reaches (a failure test before may have killed it)."""
    small_filter.resume()
    if not small_filter.alive():
        small_filter.start()
    wait_until("small stack serves", lambda: send(small_gateway, OPENAI, "hi")[0] == 200)
    fake_provider.clear()
    yield small_gateway, small_filter
    small_filter.resume()


def test_prompt_over_the_token_limit_is_400_prompt_is_too_long(
    healthy_small: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider
) -> None:
    envoy, _ = healthy_small
    text = " ".join(f"step {i}: rename the variable" for i in range(40))  # ~240 tokens, < 4096 bytes
    status, headers, body = send(envoy, ANTHROPIC, text)
    error = assert_denied(ANTHROPIC, status, headers, body, 400)  # as Anthropic answers a prompt over the context
    assert error["llm_filter"]["reason"] == "prompt_too_large"
    assert error["message"].startswith("Prompt is too long")
    assert "limit is 50" in error["message"]
    assert re.search(r"counted at least \d+", error["message"])
    assert fake_provider.requests == []


def test_body_over_the_filter_byte_limit_is_413(
    healthy_small: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider
) -> None:
    envoy, _ = healthy_small
    body = OPENAI.body("x" * 5000)
    status, headers, resp = envoy.request("POST", OPENAI.path, body, OPENAI.headers())
    error = assert_denied(OPENAI, status, headers, resp, 413)
    assert error["llm_filter"]["reason"] == "body_too_large"
    assert str(len(body)) in error["message"] and "4096" in error["message"]
    assert fake_provider.requests == []


IDENTITY_CASES = [
    pytest.param({}, id="ext_authz"),  # no identity: only Check is called
    pytest.param({"x_workspace_id": "ws-fail", "x_team_id": "team-fail"}, id="ratelimit"),  # RLS is called first
]


@pytest.mark.parametrize("identity", IDENTITY_CASES)
def test_stalled_filter_fails_closed_within_the_timeout(
    healthy_small: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider, identity: dict[str, str]
) -> None:
    envoy, flt = healthy_small
    flt.pause()
    try:
        started = time.monotonic()
        status, _, _ = send(envoy, ANTHROPIC, "stalled-request " + CLEAN_TEXT, **identity)
        elapsed = time.monotonic() - started
    finally:
        flt.resume()
    assert status == 503, f"stalled filter pid {flt.pid}: {status} after {elapsed:.2f} s; audit tail: " + \
        " | ".join(flt.audit_path.read_text().splitlines()[-3:])
    assert elapsed < 5  # the 1 s ext_authz / 0.5 s rate-limit timeout, not the stalled filter, ended it
    # Once the filter runs again it may still finish the abandoned check: nothing may leave late either.
    wait_until("filter answers again", lambda: send(envoy, ANTHROPIC)[0] == 200)
    assert fake_provider.requests
    assert not [r for r in fake_provider.requests if b"stalled-request" in r.body]


@pytest.mark.parametrize("identity", IDENTITY_CASES)
def test_killed_filter_fails_closed(
    healthy_small: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider, identity: dict[str, str]
) -> None:
    envoy, flt = healthy_small
    flt.kill()
    for _ in range(3):  # the open connection dies, then new ones are refused
        status, _, _ = send(envoy, ANTHROPIC, **identity)
        assert status == 503
    assert fake_provider.requests == []


def test_restarted_filter_serves_again(
    healthy_small: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider, samples: Samples
) -> None:
    envoy, flt = healthy_small
    flt.kill()
    assert send(envoy, ANTHROPIC)[0] == 503
    flt.start()  # a new process on the same port
    wait_until("traffic flows after the restart", lambda: send(envoy, ANTHROPIC)[0] == 200)
    assert all(r.headers["x-llm-filter-decision"] == "allow" for r in fake_provider.requests)
    status, headers, body = send(envoy, OPENAI, samples["secret"].text)
    assert_denied(OPENAI, status, headers, body, 400)  # and it still enforces
    assert all(r.body == ANTHROPIC.body(CLEAN_TEXT) for r in fake_provider.requests)


# --- hot reload: reload_gateway ------------------------------------------------------------------

EXTRA_RULE = """\
  - id: {rule_id}
    category: secret
    description: e2e canary token {n}
    pattern: '{prefix}_[A-Za-z0-9]{{20}}'
    severity: high
    examples:
      match: ['{token}']
      no_match: ['{prefix}_short']
"""
CANARY = {1: "e2eone_Q7zP3kLm9XvB2nR4tW8y", 2: "e2etwo_H5sD8fJ2kL6pZ9xC3vB7"}


def extra_pack(*numbers: int) -> str:
    rules = "".join(
        EXTRA_RULE.format(rule_id=f"e2e-canary-{n}", n=n, prefix=CANARY[n].split("_")[0], token=CANARY[n])
        for n in numbers
    )
    return f"pack: e2e-extra\nversion: 1\ndescription: rewritten by the e2e tests\nrules:\n{rules}"


@pytest.fixture(scope="module")
def reload_stack(
    tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider
) -> Iterator[tuple[EnvoyProcess, FilterProcess, Path]]:
    workdir = tmp_path_factory.mktemp("reload")
    extra = workdir / "extra-packs"
    extra.mkdir()
    pack = extra / "extra.yaml"
    pack.write_text(extra_pack(1))
    config = write_config(
        workdir / "filter.yaml", {"packs": [str(SHIPPED_PACKS), str(extra)], "reload_interval_seconds": 0.2}
    )
    with FilterProcess(workdir, config=config) as flt:
        envoy = start_envoy(workdir, "--upstream", fake_provider_server.url, "--filter", flt.address)
        try:
            yield envoy, flt, pack
        finally:
            envoy.stop()


class Traffic:
    """Clean requests (expect 200) and requests with canary 1 (expect 400) from a thread, until stopped."""

    def __init__(self, envoy: EnvoyProcess) -> None:
        self.envoy = envoy
        self.results: list[tuple[str, int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for kind, text in (("clean", CLEAN_TEXT), ("canary-1", f"use {CANARY[1]} here")):
                try:
                    status, _, body = send(self.envoy, OPENAI, text)
                except OSError as e:
                    status, body = 0, repr(e).encode()
                self.results.append((kind, status, body))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, more: int) -> None:
        target = len(self.results) + more
        wait_until(f"{more} more background requests", lambda: len(self.results) >= target, timeout=30)

    def failures(self) -> list[tuple[str, int, bytes]]:
        expected = {"clean": 200, "canary-1": 400}
        return [
            (kind, status, body)
            for kind, status, body in self.results
            if status != expected[kind] or (kind == "canary-1" and b"e2e-canary-1" not in body)
        ]


def set_pack(pack: Path, text: str) -> None:
    """Rewrite the extra pack only when its content changes. Every write starts a reload, and a second write
    while a reload compiles goes unnoticed (filter/runtime.py stamps the files after compiling: a known bug)."""
    if pack.read_text() != text:
        replace_file(pack, text)


def _blocked_by(envoy: EnvoyProcess, rule_id: str, text: str) -> bool:
    status, _, body = send(envoy, ANTHROPIC, text)
    return status == 400 and rule_id in json.loads(body)["error"]["message"]


def test_pack_change_applies_while_requests_flow(
    reload_stack: tuple[EnvoyProcess, FilterProcess, Path], fake_provider: FakeProvider
) -> None:
    envoy, _, pack = reload_stack
    set_pack(pack, extra_pack(1))
    wait_until("canary 1 blocked", lambda: _blocked_by(envoy, "e2e-canary-1", f"token {CANARY[1]}"))
    assert send(envoy, ANTHROPIC, f"token {CANARY[2]}")[0] == 200  # not a rule yet
    with Traffic(envoy) as traffic:
        traffic.wait_for(10)
        replace_file(pack, extra_pack(1, 2))
        wait_until("the new rule applies", lambda: _blocked_by(envoy, "e2e-canary-2", f"token {CANARY[2]}"))
        traffic.wait_for(10)
    assert traffic.failures() == []
    status, headers, body = send(envoy, OPENAI, f"token {CANARY[2]}")
    error = assert_denied(OPENAI, status, headers, body, 400)
    assert [f["rule"] for f in error["llm_filter"]["findings"]] == ["e2e-canary-2"]


def test_broken_pack_change_keeps_the_last_good_rules(
    reload_stack: tuple[EnvoyProcess, FilterProcess, Path], fake_provider: FakeProvider
) -> None:
    envoy, flt, pack = reload_stack
    set_pack(pack, extra_pack(1, 2))
    wait_until("both canaries blocked", lambda: _blocked_by(envoy, "e2e-canary-2", f"token {CANARY[2]}"))
    failed_reloads = flt.log().count("reload failed")
    broken = extra_pack(1, 2).replace(f"match: ['{CANARY[2]}']", "match: ['this example does not match']")
    with Traffic(envoy) as traffic:
        traffic.wait_for(10)
        replace_file(pack, broken)
        wait_until("the broken change is refused", lambda: flt.log().count("reload failed") > failed_reloads)
        traffic.wait_for(10)
    assert traffic.failures() == []
    assert f"{pack}:" in flt.log() and "e2e-canary-2" in flt.log()  # file:line: rule-id: message
    assert _blocked_by(envoy, "e2e-canary-1", f"token {CANARY[1]}")
    assert _blocked_by(envoy, "e2e-canary-2", f"token {CANARY[2]}")
    assert send(envoy, ANTHROPIC)[0] == 200
    replace_file(pack, extra_pack(1))  # a good change after a bad one is picked up again
    wait_until("canary 2 no longer a rule", lambda: send(envoy, ANTHROPIC, f"token {CANARY[2]}")[0] == 200)


# --- JWT identity: jwt_gateway -------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_stack(
    tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider
) -> Iterator[tuple[EnvoyProcess, FilterProcess]]:
    workdir = tmp_path_factory.mktemp("jwt")
    config = write_config(
        workdir / "filter.yaml",
        {"policy": {"trust_identity_headers": False}, "rate_limits": {"workspace_requests_per_minute": WORKSPACE_RPM}},
    )
    jwks = write_jwks(workdir / "jwks.json", JWT_SECRET)
    with FilterProcess(workdir, config=config) as flt:
        envoy = start_envoy(
            workdir, "--upstream", fake_provider_server.url, "--filter", flt.address, "--jwt-jwks", str(jwks)
        )
        try:
            yield envoy, flt
        finally:
            envoy.stop()


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


def test_jwt_identity_wins_over_forged_identity_headers(
    jwt_stack: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider
) -> None:
    envoy, flt = jwt_stack
    forged = {"x_workspace_id": "ws-forged", "x_team_id": "team-forged", "x_agent_id": "agent-forged"}
    status, _, _ = send(envoy, ANTHROPIC, x_llm_gateway_token=token(), x_api_key="sk-ant-client", **forged)
    assert status == 200
    [sent] = fake_provider.requests
    assert sent.headers["x-workspace-id"] == "ws-verified"
    assert sent.headers["x-team-id"] == "team-verified"
    assert sent.headers["x-project-id"] == "proj-verified"
    assert sent.headers["x-agent-id"] == "agent-7"
    assert "x-llm-gateway-token" not in sent.headers
    assert sent.headers["x-api-key"] == "sk-ant-client"
    identity = flt.audit()[-1]["identity"]
    assert (identity["workspace"], identity["source"]) == ("ws-verified", "jwt")


def test_rate_limit_counts_the_jwt_workspace_not_the_forged_header(
    jwt_stack: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider
) -> None:
    envoy, _ = jwt_stack
    ws_a, ws_b = f"ws-a-{uuid.uuid4().hex[:8]}", f"ws-b-{uuid.uuid4().hex[:8]}"
    avoid_minute_edge()
    for i in range(WORKSPACE_RPM):  # a different forged workspace each time: the claim is what counts
        status, _, _ = send(envoy, ANTHROPIC, x_llm_gateway_token=token(workspace=ws_a), x_workspace_id=f"forged-{i}")
        assert status == 200
    status, _, _ = send(envoy, ANTHROPIC, x_llm_gateway_token=token(workspace=ws_a), x_workspace_id="fresh")
    assert status == 429
    # B's token with A's name forged in the header: counted for B, so not refused for A's spent limit
    status, _, _ = send(envoy, ANTHROPIC, x_llm_gateway_token=token(workspace=ws_b), x_workspace_id=ws_a)
    assert status == 200
    assert [r.headers["x-workspace-id"] for r in fake_provider.requests] == [ws_a] * WORKSPACE_RPM + [ws_b]


def test_jwt_without_a_claim_leaves_no_client_header(
    jwt_stack: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider
) -> None:
    envoy, _ = jwt_stack
    status, _, _ = send(envoy, ANTHROPIC, x_llm_gateway_token=token(project=None), x_project_id="forged")
    assert status == 200
    [sent] = fake_provider.requests
    assert "x-project-id" not in sent.headers
    assert sent.headers["x-workspace-id"] == "ws-verified"


@pytest.mark.parametrize("bad", [None, "not-a-jwt", "wrong-issuer", "expired", "bad-signature"])
def test_jwt_missing_or_invalid_is_401_and_never_checked(
    jwt_stack: tuple[EnvoyProcess, FilterProcess], fake_provider: FakeProvider, bad: str | None
) -> None:
    envoy, flt = jwt_stack
    tokens = {
        None: None,
        "not-a-jwt": "abc.def",
        "wrong-issuer": token(iss="someone-else"),
        "expired": token(exp=int(time.time()) - 3600),
        "bad-signature": make_jwt({"iss": "llm-gateway-test", "exp": int(time.time()) + 60}, b"x" * 40),
    }
    headers = {"x_workspace_id": "ws-1"}
    if tokens[bad]:
        headers["x_llm_gateway_token"] = str(tokens[bad])
    checks = len(flt.audit())
    status, _, _ = send(envoy, ANTHROPIC, **headers)
    assert status == 401
    assert len(flt.audit()) == checks
    assert fake_provider.requests == []
