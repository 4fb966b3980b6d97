"""Credential injection end to end: real Envoy (rendered from envoy/envoy.yaml) -> the real filter with a policy
file whose team scope names mounted key files -> the fake provider (real providers cannot be called from tests).

The provider receives the team's key in its own header and never the key the client sent (`authorization`,
`x-api-key`, `api-key`, `x-goog-api-key`, `?key=`); a team without `credentials` keeps its own key; the team key
appears in no audit line and no Envoy access-log line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.envoy_harness import EnvoyProcess, start_envoy
from tests.e2e.fake_provider import FakeProvider
from tests.e2e.filter_harness import FilterProcess

pytestmark = pytest.mark.e2e

OPENAI_KEY = "sk-team-a-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-team-a-0123456789abcdef"
GEMINI_KEY = "AIzaTeamAGeminiKey0123456789abcdef"
CLIENT = "client-own-key-5f4dcc3b5aa765d61d83"
CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Add a unit test for add()."}]})
MESSAGES = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Name three sorting algorithms."}]})
GENERATE = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Summarise the README."}]}]})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EnvoyProcess, FakeProvider, FilterProcess]]:
    tmp = tmp_path_factory.mktemp("credentials")
    keys = tmp / "secrets"
    keys.mkdir()
    for name, key in (("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY), ("gemini", GEMINI_KEY)):
        (keys / f"{name}-team-a").write_text(key + "\n")  # a mounted secret ends with a newline more often than not
    (tmp / "policy.yaml").write_text(
        "teams:\n  team-a:\n    credentials:\n"
        + "".join(f"      {name}: {keys / f'{name}-team-a'}\n" for name in ("openai", "anthropic", "gemini")))
    config = tmp / "filter.yaml"
    config.write_text("metrics_port: 0\npolicy_file: policy.yaml\n")
    with FakeProvider() as provider, FilterProcess(tmp, config=config) as flt:
        envoy = start_envoy(tmp, "--upstream", provider.url, "--filter", flt.address, "--no-usage")
        try:
            yield envoy, provider, flt
        finally:
            envoy.stop()


@pytest.fixture()
def provider(gateway: tuple[EnvoyProcess, FakeProvider, FilterProcess]) -> FakeProvider:
    gateway[1].clear()
    return gateway[1]


def test_the_provider_receives_the_team_key_and_never_the_clients(gateway, provider) -> None:  # type: ignore[no-untyped-def]
    envoy, _, flt = gateway
    every_client_key = {"authorization": f"Bearer {CLIENT}", "x-api-key": CLIENT, "api-key": CLIENT,
                        "x-goog-api-key": CLIENT, "x-team-id": "team-a"}
    answers = [
        envoy.request("POST", "/openai/v1/chat/completions", CHAT.encode(), headers=every_client_key),
        envoy.request("POST", "/anthropic/v1/messages", MESSAGES.encode(), headers=every_client_key),
        envoy.request("POST", f"/gemini/v1beta/models/gemini-2.0-flash:generateContent?key={CLIENT}&alt=json",
                      GENERATE.encode(), headers=every_client_key),
    ]
    assert [status for status, _, _ in answers] == [200, 200, 200], answers
    openai, anthropic, gemini = provider.requests
    assert openai.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert anthropic.headers["x-api-key"] == ANTHROPIC_KEY
    assert gemini.headers["x-goog-api-key"] == GEMINI_KEY
    assert gemini.path == "/v1beta/models/gemini-2.0-flash:generateContent?alt=json"  # `key` removed, the rest kept
    for sent in provider.requests:
        assert CLIENT not in sent.path and CLIENT not in json.dumps(sent.headers)
    assert all(line.get("credential") == "gateway" for line in flt.audit()[-3:])


def test_a_team_without_credentials_keeps_its_own_key(gateway, provider) -> None:  # type: ignore[no-untyped-def]
    envoy = gateway[0]
    status, _, body = envoy.request("POST", "/openai/v1/chat/completions", CHAT.encode(),
                                    headers={"authorization": f"Bearer {CLIENT}", "x-team-id": "team-b"})
    assert status == 200, body
    assert provider.requests[0].headers["authorization"] == f"Bearer {CLIENT}"


def test_no_team_key_is_written_down(gateway, provider) -> None:  # type: ignore[no-untyped-def]
    envoy, _, flt = gateway
    envoy.request("POST", "/openai/v1/chat/completions", CHAT.encode(), headers={"x-team-id": "team-a"})
    envoy.request("POST", "/anthropic/v1/messages", b"{not json", headers={"x-team-id": "team-a"})
    envoy.stop()  # Envoy flushes its access log on exit (the module's last test)
    assert len(envoy.access_log()) >= 2
    written = flt.audit_path.read_text() + flt.log() + envoy.stdout_path.read_text() + envoy.stderr()
    for key in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY):
        assert key not in written
