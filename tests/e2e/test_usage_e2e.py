"""Spend under control, end to end: real Envoy (rendered from envoy/envoy.yaml) + the real filter with two worker
processes sharing one store (a SQLite file, or a real redis-server) + a fake Anthropic provider (real providers
cannot be called from tests).

- the usage observer (Envoy's ext_proc -> the filter's usage_listen) settles the reservation made for a request's
  decision id: reconciled to the usage the provider reported (JSON and SSE), released when the provider answers an
  error; both for the reservation the filter makes itself (a token budget in the policy file) and for one made
  directly in the store;
- request rate limits counted in the shared store are exact across workers: N allowed, then 429;
- a USD budget reservation made by one worker's Check is settled at the real cost by the other worker's usage
  observer, from the price the request's own metadata carries (Envoy forwards ext_authz's metadata to ext_proc).

For requests outside any budget the fake provider makes the reservation itself, in the shared store, for the
decision id it receives in `x-llm-filter-id` (the id the filter gave the request), before it answers: the
settlement then has to find it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from filter.store import Budget, Store, Window, open_store
from tests.e2e.envoy_harness import REPO, EnvoyProcess, render_config
from tests.store.stores import RedisServer
from tests.support.ports import free_ports
from tests.support.waiting import wait_until
from tests.usage import samples

pytestmark = pytest.mark.e2e

BUDGET = Budget("team:usage-e2e", Window.DAY, 10_000_000)  # reserved by the fake provider
POLICY_BUDGET = Budget("team:budgeted", Window.DAY, 5_000_000)  # the policy file's: reserved by the filter
USD_BUDGET = Budget("team:spender:usd", Window.DAY, 100_000_000)  # USD 100 a day, in micro-dollars
USD_PRICE = (3, 15)  # the policy file's USD per million tokens (input, output) for claude-*
JSON_COST = 4195 * USD_PRICE[0] + 503 * USD_PRICE[1]  # samples.ANTHROPIC_JSON: input 4195, output 503; micro-USD
RESERVED = 50_000  # what the provider reserves for each request: far above what any answer below uses
JSON_TOTAL = 2095 + 100 + 2000 + 503  # samples.ANTHROPIC_JSON: input (cache writes and reads added back) + output
SSE_TOTAL = 472 + 1800 + 89  # samples.anthropic_sse(): message_start input + cache read, message_delta output
RATE_LIMIT = 4
WAIT = 30.0


class FakeAnthropic:
    """Answers /v1/messages as Anthropic does: JSON, or SSE when the body asks to stream; `x-test-status` makes it
    answer that error status instead. Before answering it reserves RESERVED tokens for the request's decision id."""

    def __init__(self, store: Store) -> None:
        self.decision_ids: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server name)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                decision_id = self.headers.get("x-llm-filter-id", "")
                fake.decision_ids.append(decision_id)
                if decision_id and self.headers.get("x-test-reserve"):
                    assert store.reserve(decision_id, RESERVED, [BUDGET]).granted
                status = int(self.headers.get("x-test-status") or 200)
                if status != 200:
                    answer, content_type = b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}', \
                        "application/json"
                elif body.get("stream"):
                    answer, content_type = samples.anthropic_sse(), "text/event-stream"
                else:
                    answer, content_type = samples.ANTHROPIC_JSON, "application/json"
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    store: Store
    provider: FakeAnthropic
    envoys: list[EnvoyProcess]  # [both workers], [worker 1 only], [worker 2 only], [Check 1, usage 2]

    def ask(self, envoy: EnvoyProcess, stream: bool = False, workspace: str = "ws-usage",
            status: int | None = None, team: str = "usage-e2e") -> tuple[int, bytes]:
        headers = {"x-llm-provider": "anthropic", "x-workspace-id": workspace, "x-team-id": team,
                   "x-api-key": "sk-ant-test-not-a-key", "anthropic-version": "2023-06-01"}
        if team == "usage-e2e":
            headers["x-test-reserve"] = "1"  # no budget in the policy file: the fake provider reserves
        if status is not None:
            headers["x-test-status"] = str(status)
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": "Say hello."}]}
        code, _, answer = envoy.request("POST", "/v1/messages", json.dumps(body).encode(), headers=headers)
        return code, answer

    def settled(self, budget: Budget = BUDGET) -> tuple[int, int]:
        """(used, reserved) of the budget's current day."""
        (u,) = self.store.usage([budget])
        return u.used, u.reserved


def start_filter(workdir: Path, config: Path, port: int) -> subprocess.Popen[bytes]:
    log = (workdir / "filter.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "filter", "serve", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 90
    for address in (f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"):
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("the filter did not start: " + (workdir / "filter.log").read_text()[-3000:])
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
    return proc


def stop_filter(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # `serve` forwards SIGTERM to its workers, which drain and settle what is queued
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_envoy(workdir: Path, name: str, provider: int, filters: list[int], usages: list[int]) -> EnvoyProcess:
    listen, admin = free_ports(1), free_ports(1)
    config = render_config(workdir / f"{name}.yaml", "--upstream", f"http://127.0.0.1:{provider}",
                           "--filter", ",".join(f"127.0.0.1:{p}" for p in filters),
                           "--usage", ",".join(f"127.0.0.1:{p}" for p in usages),
                           listen_port=listen, admin_port=admin)
    return EnvoyProcess(config, listen_port=listen, admin_port=admin, workdir=workdir).start()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"usage-e2e-{request.param}")
    redis_server: RedisServer | None = None
    if request.param == "redis":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed: run `make install` (it installs Debian's redis-server)")
        redis_server = RedisServer(binary, free_ports(1))
        redis_server.start()
        url = redis_server.url
    else:
        url = f"sqlite:///{workdir / 'store.db'}"
    port, usage = free_ports(2), free_ports(2)
    (workdir / "policy.yaml").write_text(
        f"teams:\n  budgeted: {{budgets: {{daily_tokens: {POLICY_BUDGET.limit}}}}}\n"
        f"  spender:\n    prices: {{'claude-*': {{input_per_mtok: {USD_PRICE[0]}, output_per_mtok: {USD_PRICE[1]}}}}}\n"
        f"    budgets: {{daily_usd: {USD_BUDGET.limit // 1_000_000}}}\n")
    config = workdir / "filter.yaml"
    config.write_text(f"""
listen: 127.0.0.1:{port}
workers: 2
metrics_port: 0
usage_listen: 127.0.0.1:{usage}
store: {{url: "{url}"}}
policy_file: policy.yaml
policy: {{trust_identity_headers: true}}
rate_limits: {{workspace_requests_per_minute: {RATE_LIMIT}}}
""")
    store = open_store(url)
    provider = FakeAnthropic(store)
    proc = start_filter(workdir, config, port)
    envoys: list[EnvoyProcess] = []
    try:
        envoys.append(start_envoy(workdir, "both", provider.port, [port, port + 1], [usage, usage + 1]))
        envoys.append(start_envoy(workdir, "first", provider.port, [port], [usage]))
        envoys.append(start_envoy(workdir, "second", provider.port, [port + 1], [usage + 1]))
        envoys.append(start_envoy(workdir, "cross", provider.port, [port], [usage + 1]))
        yield Stack(store, provider, envoys)
    finally:
        for envoy in envoys:
            envoy.stop()
        stop_filter(proc)
        provider.close()
        store.close()
        if redis_server is not None:
            redis_server.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_reservation_is_reconciled_to_the_reported_usage(stack: Stack, stream: bool) -> None:
    used_before, _ = stack.settled()
    code, answer = stack.ask(stack.envoys[0], stream=stream, workspace=f"ws-reconcile-{stream}")
    assert code == 200
    assert answer == (samples.anthropic_sse() if stream else samples.ANTHROPIC_JSON)  # passed on unchanged
    decision_id = stack.provider.decision_ids[-1]
    assert decision_id, "the filter names the decision in x-llm-filter-id"
    wait_until("the reservation is settled", lambda: stack.settled()[1] == 0, timeout=WAIT, interval=0.05)
    assert stack.settled()[0] - used_before == (SSE_TOTAL if stream else JSON_TOTAL)
    assert not stack.store.release(decision_id), "settled once: nothing open under that id any more"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_filters_own_budget_reservation_is_reconciled(stack: Stack, stream: bool) -> None:
    """The policy file gives team `budgeted` a daily budget: Check reserves prompt + max_tokens under the decision
    id, the usage observer charges what the provider reported instead."""
    used_before, _ = stack.settled(POLICY_BUDGET)
    code, _ = stack.ask(stack.envoys[0], stream=stream, workspace=f"ws-budget-{stream}", team="budgeted")
    assert code == 200
    wait_until("the budget's reservation is settled", lambda: stack.settled(POLICY_BUDGET)[1] == 0, timeout=WAIT, interval=0.05)
    assert stack.settled(POLICY_BUDGET)[0] - used_before == (SSE_TOTAL if stream else JSON_TOTAL)


def test_an_error_answer_releases_the_filters_own_reservation(stack: Stack) -> None:
    used_before, _ = stack.settled(POLICY_BUDGET)
    code, _ = stack.ask(stack.envoys[0], workspace="ws-budget-error", team="budgeted", status=500)
    assert code == 500
    wait_until("the budget's reservation is released", lambda: stack.settled(POLICY_BUDGET)[1] == 0, timeout=WAIT, interval=0.05)
    assert stack.settled(POLICY_BUDGET)[0] == used_before, "an error answer costs nothing"


def test_an_error_answer_releases_the_reservation(stack: Stack) -> None:
    used_before, _ = stack.settled()
    code, answer = stack.ask(stack.envoys[0], workspace="ws-error", status=529)
    assert code == 529 and b"overloaded_error" in answer
    wait_until("the reservation is released", lambda: stack.settled()[1] == 0, timeout=WAIT, interval=0.05)
    assert stack.settled()[0] == used_before, "an error answer costs nothing"


def test_rate_limit_is_one_limit_across_workers(stack: Stack) -> None:
    """Two Envoys, each calling a different filter worker, alternate: the workspace gets RATE_LIMIT requests in
    the minute between them, not RATE_LIMIT per worker."""
    if 60 - datetime.now().second < 10:  # a fresh minute window for the whole burst
        time.sleep(61 - datetime.now().second)
    first, second = stack.envoys[1], stack.envoys[2]
    codes = [stack.ask(envoy, workspace="ws-limited")[0] for envoy in [first, second] * (RATE_LIMIT // 2 + 1)]
    assert codes == [200] * RATE_LIMIT + [429] * 2
    code, answer = stack.ask(first, workspace="ws-limited")
    assert code == 429 and json.loads(answer)["error"]["type"] == "rate_limit_error"
    assert stack.ask(second, workspace="ws-other")[0] == 200  # another workspace is not held back


def test_a_usd_reservation_is_settled_by_the_other_worker_at_the_real_cost(stack: Stack) -> None:
    """Check runs in worker 1, which reserves the request's maximum cost under `<decision id>:usd`; the response
    is observed by worker 2, which never saw that Check: it settles at the reported usage's cost all the same."""
    used_before, _ = stack.settled(USD_BUDGET)
    code, _ = stack.ask(stack.envoys[3], workspace="ws-spend", team="spender")
    assert code == 200
    wait_until("the USD reservation is settled", lambda: stack.settled(USD_BUDGET)[1] == 0, timeout=WAIT, interval=0.05)
    assert stack.settled(USD_BUDGET)[0] - used_before == JSON_COST
