"""Token budgets and scope refusals end to end: real Envoy (rendered from envoy/envoy.yaml) -> the real filter with
two worker processes sharing one store (a SQLite file, or a real redis-server) -> the fake provider (real providers
cannot be called from tests).

50 requests at once against an agent budget that holds a few of them: the workers together admit exactly as many
as the budget holds (each reservation is atomic in the shared store), never one more, and answer the rest with a
429 in Anthropic's rate-limit shape with `retry-after`. No usage observer settles the reservations here, so every
admitted request keeps its full reservation and the count is exact.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from filter.model import Envelope, Identity
from filter.pipeline import evaluate
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.store import Budget, Window, open_store
from filter.tokens import TokenCounter, load_encoding
from tests.e2e.envoy_harness import REPO, EnvoyProcess
from tests.e2e.fake_provider import FakeProvider
from tests.store.stores import RedisServer
from tests.support.ports import free_ports

pytestmark = pytest.mark.e2e

REQUESTS = 50
FITS = 7  # requests the budget holds
MAX_TOKENS = 400
BODY = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": MAX_TOKENS,
                   "messages": [{"role": "user", "content": "Summarise the change log in two lines."}]}).encode()
POLICY = """\
default:
  providers: [anthropic]
workspaces:
  ws-ci: {{paths: ["/anthropic/v1/messages"], models: ["claude-haiku-*"]}}
agents:
  "*": {{budgets: {{daily_tokens: {limit}}}}}
"""


def cost(config: Path) -> int:
    """What the filter reserves for BODY: its prompt tokens (counted as the filter counts them) + max_tokens."""
    runtime = Runtime(str(config), load_settings(str(config), env={}), warn_random_key=False)
    envelope = Envelope("POST", "/v1/messages", {"content-type": "application/json"}, BODY)
    decision = evaluate(envelope, runtime.current, TokenCounter(load_encoding()), Identity(agent="x")).decision
    assert decision.allowed and decision.prompt_tokens
    return decision.prompt_tokens + MAX_TOKENS


@pytest.fixture()
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The shared store: a SQLite file (default), or a real redis-server when parametrized with "redis"."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: run `make install` (it installs Debian's redis-server)")
    server = RedisServer(binary, free_ports(1))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def filter_workers(tmp_path: Path, store_url: str) -> Iterator[tuple[int, str, int]]:
    """`serve --workers 2` on ports P and P+1 sharing one store; yields (P, store url, cost of BODY)."""
    port = free_ports(2)
    policy, config = tmp_path / "policy.yaml", tmp_path / "filter.yaml"
    policy.write_text(POLICY.format(limit=1))
    config.write_text(f'listen: 127.0.0.1:{port}\nworkers: 2\nmetrics_port: 0\npolicy_file: policy.yaml\n'
                      f'store: {{url: "{store_url}", timeout_seconds: 2}}\n')
    each = cost(config)
    policy.write_text(POLICY.format(limit=FITS * each + each // 2))  # room for FITS and half of one more
    log = (tmp_path / "filter.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "filter", "serve", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 90
        for address in (f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"):
            with grpc.insecure_channel(address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while True:
                    assert proc.poll() is None and time.monotonic() < deadline, \
                        "the filter did not start: " + (tmp_path / "filter.log").read_text()[-3000:]
                    try:
                        serving = health_pb2.HealthCheckResponse.SERVING
                        if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == serving:
                            break
                    except grpc.RpcError:
                        pass
                    time.sleep(0.2)
        yield port, store_url, each
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)
def test_two_workers_sharing_a_store_never_admit_more_than_the_budget_holds(
        filter_workers: tuple[int, str, int], fake_provider: FakeProvider,
        envoy_factory: Callable[..., EnvoyProcess]) -> None:
    port, url, each = filter_workers
    envoy = envoy_factory("--upstream", fake_provider.url, "--filter", f"127.0.0.1:{port},127.0.0.1:{port + 1}")
    headers = {"x-llm-provider": "anthropic", "x-agent-id": "busy-bot", "x-api-key": "sk-ant-test-not-a-key",
               "anthropic-version": "2023-06-01"}

    def ask(_: int) -> tuple[int, dict[str, str], bytes]:
        return envoy.request("POST", "/v1/messages", BODY, headers=headers)

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(ask, range(REQUESTS)))

    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * FITS + [429] * (REQUESTS - FITS), statuses
    assert len(fake_provider.requests) == FITS  # nothing refused reached the provider
    for status, hdrs, body in answers:
        if status == 429:
            error = json.loads(body)["error"]
            assert error["type"] == "rate_limit_error" and "Token budget exhausted" in error["message"]
            assert hdrs["x-llm-filter-reason"] == "budget_exceeded" and int(hdrs["retry-after"]) >= 1
            assert hdrs["x-llm-filter-budget"] == "agent:busy-bot/day"
    # Both workers decided (decision ids start with a per-process prefix), and the store holds exactly FITS
    # reservations: the limit was never passed.
    prefixes = {h["x-llm-filter-id"][:12] for _, h, _ in answers if "x-llm-filter-id" in h}
    prefixes |= {r.headers["x-llm-filter-id"][:12] for r in fake_provider.requests}
    assert len(prefixes) == 2
    store = open_store(url)
    try:
        (usage,) = store.usage([Budget("agent:busy-bot", Window.DAY, FITS * each + each // 2)])
    finally:
        store.close()
    assert usage.used + usage.reserved == FITS * each <= usage.budget.limit


def test_scope_refusals_through_envoy_see_the_path_as_the_client_sent_it(
        filter_workers: tuple[int, str, int], fake_provider: FakeProvider,
        envoy_factory: Callable[..., EnvoyProcess]) -> None:
    port, _, _ = filter_workers
    envoy = envoy_factory("--upstream", fake_provider.url, "--filter", f"127.0.0.1:{port},127.0.0.1:{port + 1}")
    headers = {"x-workspace-id": "ws-ci", "x-agent-id": "ci-bot", "x-api-key": "sk-ant-test-not-a-key",
               "anthropic-version": "2023-06-01"}
    haiku = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 16,
                        "messages": [{"role": "user", "content": "hi"}]}).encode()
    status, _, _ = envoy.request("POST", "/anthropic/v1/messages", haiku, headers=headers)
    assert status == 200 and fake_provider.requests[-1].path == "/v1/messages"  # Envoy strips the prefix after
    status, hdrs, body = envoy.request("POST", "/v1/messages", haiku, headers={**headers, "x-llm-provider": "anthropic"})
    assert status == 403 and hdrs["x-llm-filter-reason"] == "path_not_allowed"
    assert "not allowed by the gateway policy for workspace ws-ci" in json.loads(body)["error"]["message"]
    status, hdrs, body = envoy.request("POST", "/anthropic/v1/messages", BODY, headers=headers)
    assert status == 403 and hdrs["x-llm-filter-reason"] == "model_not_allowed"
    assert json.loads(body)["error"]["type"] == "permission_error"
    assert len(fake_provider.requests) == 1
