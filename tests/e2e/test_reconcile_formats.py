"""Token budgets are charged what each provider reported, for every API and framing, through real Envoy.

Real Envoy (rendered from envoy/envoy.yaml) + the real filter (`serve`, a SQLite store, a policy file giving
team `budgeted` a daily token budget, so Check reserves prompt + max output under the decision id) + a fake
provider (fake_usage_provider.py: real providers cannot be called from tests) answering with known usage.

- JSON and streamed answers of OpenAI chat (SSE with and without `stream_options.include_usage`), OpenAI
  Responses, Anthropic Messages, Gemini and Bedrock Converse: the agent receives the provider's bytes unchanged,
  and the budget's `used` grows by exactly the reported input + output tokens;
- an OpenAI stream without usage is charged the filter's estimate (> 0), counted as `source="estimated"`;
- a provider error, and Envoy's own 429 from the rate limit after Check allowed (and reserved), release the
  reservation: nothing is charged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from filter.store import Budget, Store, Window, open_store
from tests.e2e.envoy_harness import REPO, EnvoyProcess, start_envoy
from tests.e2e.fake_usage_provider import FakeUsageProvider
from tests.support.ports import free_port
from tests.support.processes import stop, wait_grpc_ready
from tests.support.waiting import avoid_minute_edge, wait_until

pytestmark = pytest.mark.e2e

BUDGET = Budget("team:budgeted", Window.DAY, 50_000_000)  # the policy file's budget for team `budgeted`
RATE_LIMIT = 3  # requests per workspace and minute (Envoy's rate limit, counted by the filter)
WAIT = 30.0
PROMPT = "Summarise the build log in one line."


@dataclass(frozen=True)
class Case:
    """A request on the gateway and what its answer reports (input + output tokens, see tests/usage/samples.py)."""

    path: str
    body: dict[str, Any]
    total: int | None  # None: the answer reports no usage


CHAT: dict[str, Any] = {"model": "gpt-4.1", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
ANTHROPIC: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
GEMINI: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                          "generationConfig": {"maxOutputTokens": 64}}
CONVERSE: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": PROMPT}]}], "inferenceConfig": {"maxTokens": 64}}
GEMINI_PATH = "/gemini/v1beta/models/gemini-2.5-flash"
BEDROCK_PATH = "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0"

CASES = {
    "openai-chat-json": Case("/openai/v1/chat/completions", CHAT, 19 + 10),
    "openai-chat-sse-usage": Case("/openai/v1/chat/completions",
                                  {**CHAT, "stream": True, "stream_options": {"include_usage": True}}, 1210 + 14),
    "openai-responses-json": Case("/openai/v1/responses", {"model": "gpt-4.1", "input": PROMPT}, 36 + 87),
    "openai-responses-sse": Case("/openai/v1/responses", {"model": "gpt-4.1", "input": PROMPT, "stream": True},
                                 37 + 11),
    # input (cache writes and reads added back) + output
    "anthropic-json": Case("/anthropic/v1/messages", ANTHROPIC, 2095 + 100 + 2000 + 503),
    "anthropic-sse": Case("/anthropic/v1/messages", {**ANTHROPIC, "stream": True}, 472 + 1800 + 89),
    # prompt + candidates + thoughts
    "gemini-json": Case(f"{GEMINI_PATH}:generateContent", GEMINI, 8 + 22 + 1016),
    "gemini-sse": Case(f"{GEMINI_PATH}:streamGenerateContent?alt=sse", GEMINI, 8 + 22 + 1016),
    "bedrock-converse": Case(f"{BEDROCK_PATH}/converse", CONVERSE, 30 + 400 + 100 + 628),
    "bedrock-converse-stream": Case(f"{BEDROCK_PATH}/converse-stream", CONVERSE, 19 + 21),
}  # fmt: skip
NO_USAGE = Case("/openai/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 4000}, None)


def credentials(path: str) -> dict[str, str]:
    """The provider credential header an agent sends (placeholders; Bedrock is signed by Envoy)."""
    if path.startswith("/openai/"):
        return {"authorization": "Bearer placeholder-openai-credential"}
    if path.startswith("/anthropic/"):
        return {"x-api-key": "placeholder-anthropic-credential", "anthropic-version": "2023-06-01"}
    if path.startswith("/gemini/"):
        return {"x-goog-api-key": "placeholder-gemini-credential"}
    return {}


@dataclass
class Stack:
    store: Store
    provider: FakeUsageProvider
    envoy: EnvoyProcess
    metrics_port: int

    def ask(self, case: Case, workspace: str, status: int | None = None) -> tuple[int, bytes, str]:
        """(status, body the agent received, decision id the provider saw)."""
        headers = {"x-workspace-id": workspace, "x-team-id": "budgeted", **credentials(case.path)}
        if status is not None:
            headers["x-test-status"] = str(status)
        before = set(self.provider.sent)
        code, _, answer = self.envoy.request("POST", case.path, json.dumps(case.body).encode(), headers=headers)
        new = set(self.provider.sent) - before
        return code, answer, new.pop() if new else ""

    def budget(self) -> tuple[int, int]:
        """(used, reserved) of the budget's current day."""
        (u,) = self.store.usage([BUDGET])
        return u.used, u.reserved

    def settled(self) -> int:
        """`used` once no reservation is open any more."""
        wait_until("the reservation is settled", lambda: self.budget()[1] == 0, WAIT)
        return self.budget()[0]

    def usage_tokens(self, provider: str, source: str) -> int:
        """llm_filter_usage_tokens summed over kinds, from the filter's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("llm_filter_usage_tokens") and f'provider="{provider}"' in line \
                    and f'source="{source}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("reconcile-formats")
    url = f"sqlite:///{workdir / 'store.db'}"
    port, usage, metrics = free_port(), free_port(), free_port()
    policy = workdir / "policy.yaml"
    policy.write_text(f"teams:\n  budgeted: {{budgets: {{daily_tokens: {BUDGET.limit}}}}}\n")
    config = workdir / "filter.yaml"
    config.write_text(f"""
listen: 127.0.0.1:{port}
workers: 1
metrics_port: {metrics}
usage_listen: 127.0.0.1:{usage}
store: {{url: "{url}"}}
policy_file: {policy}
policy: {{trust_identity_headers: true}}
rate_limits: {{workspace_requests_per_minute: {RATE_LIMIT}}}
""")
    log = (workdir / "filter.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "filter", "serve", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    store = open_store(url)
    provider = FakeUsageProvider()
    envoy: EnvoyProcess | None = None
    try:
        try:
            wait_grpc_ready(f"127.0.0.1:{port}", timeout=90)
        except TimeoutError:
            raise RuntimeError("the filter did not start: " + (workdir / "filter.log").read_text()[-3000:]) from None
        envoy = start_envoy(workdir, "--upstream", provider.url, "--filter", f"127.0.0.1:{port}",
                            "--usage", f"127.0.0.1:{usage}")
        yield Stack(store, provider, envoy, metrics)
    finally:
        if envoy is not None:
            envoy.stop()
        stop(proc)
        provider.close()
        store.close()


@pytest.mark.parametrize("name", list(CASES))
def test_the_budget_is_charged_the_reported_usage(stack: Stack, name: str) -> None:
    case = CASES[name]
    used_before = stack.settled()
    code, answer, decision_id = stack.ask(case, workspace=f"ws-{name}")
    assert code == 200, answer[:300]
    assert decision_id, "the filter names the decision in x-llm-filter-id"
    assert answer == stack.provider.sent[decision_id], "the agent receives the provider's bytes unchanged"
    assert stack.settled() - used_before == case.total


def test_a_stream_without_usage_is_charged_the_estimate(stack: Stack) -> None:
    """OpenAI sends usage in a stream only when asked (`stream_options.include_usage`): without it the budget is
    charged the filter's estimate (prompt counted in Check + streamed text), and the metric says so."""
    used_before = stack.settled()
    estimated_before = stack.usage_tokens("openai", "estimated")
    code, answer, decision_id = stack.ask(NO_USAGE, workspace="ws-estimated")
    assert code == 200
    assert answer == stack.provider.sent[decision_id]
    charged = stack.settled() - used_before
    assert charged > 0, "an answer without usage is not free"
    assert charged < 4000, "charged the estimate, not what Check reserved (prompt + max_tokens 4000)"
    wait_until("the estimate is counted", lambda: stack.usage_tokens("openai", "estimated") > estimated_before, WAIT)
    assert stack.usage_tokens("openai", "estimated") - estimated_before == charged


@pytest.mark.parametrize("name", ["openai-chat-json", "anthropic-sse", "bedrock-converse-stream"])
def test_a_provider_error_releases_the_reservation(stack: Stack, name: str) -> None:
    used_before = stack.settled()
    code, answer, decision_id = stack.ask(CASES[name], workspace=f"ws-error-{name}", status=529)
    assert code == 529 and decision_id, answer[:300]
    assert stack.settled() == used_before, "an error answer costs nothing"


def test_envoys_rate_limit_after_check_releases_the_reservation(stack: Stack) -> None:
    """Check allows (and reserves), then Envoy's rate limit answers 429 itself: the provider never sees the
    request, and the reservation is released."""
    avoid_minute_edge()
    case = CASES["anthropic-json"]
    for _ in range(RATE_LIMIT):
        assert stack.ask(case, workspace="ws-limited")[0] == 200
    used_before = stack.settled()
    over_before = stack.envoy.stat("cluster.anthropic.ratelimit.over_limit")
    code, answer, decision_id = stack.ask(case, workspace="ws-limited")
    assert code == 429, answer[:300]
    assert decision_id == "", "the provider never saw it"
    assert stack.envoy.stat("cluster.anthropic.ratelimit.over_limit") == over_before + 1, \
        "Envoy's rate limit answered, after Check had allowed and reserved"
    assert stack.settled() == used_before, "a request the provider never answered costs nothing"
