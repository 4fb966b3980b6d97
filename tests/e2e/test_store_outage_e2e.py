"""The budget store going away mid-traffic, end to end: real Envoy (rendered from envoy/envoy.yaml) -> the real
filter with two worker processes sharing a real redis-server -> the fake provider (real providers cannot be
called from tests).

Client threads send requests the whole time. While Redis is down the filter cannot reserve the tokens a request
may spend, so it fails closed: 503 `store_unavailable` in the provider's error shape with `retry-after`, and not
one request reaches the provider. Redis started again on the same port (empty: no persistence) -> both workers
reconnect on their own and admit requests again within a few seconds, with no restart of Envoy or the filter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.envoy_harness import REPO, EnvoyProcess
from tests.e2e.fake_provider import FakeProvider
from tests.store.stores import RedisServer
from tests.support.ports import free_ports
from tests.support.processes import stop, wait_grpc_ready
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

CLIENTS = 4
RECOVERY_SECONDS = 5.0  # a user retrying after `retry-after` is served again well within this
BODY = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Summarise the change log in two lines."}]}).encode()
HEADERS = {"x-llm-provider": "anthropic", "x-agent-id": "steady-bot", "x-api-key": "sk-ant-test-not-a-key",
           "anthropic-version": "2023-06-01"}
# Every agent has a token budget far above what this test spends: each request reserves in the store.
POLICY = "default:\n  providers: [anthropic]\nagents:\n  \"*\": {budgets: {daily_tokens: 100000000}}\n"


@dataclass(frozen=True)
class Answer:
    client: int
    started: float  # time.monotonic() when the request was sent
    ended: float
    status: int
    headers: dict[str, str]
    body: bytes


class Traffic:
    """CLIENTS threads, each sending BODY through Envoy one request after another until stopped."""

    def __init__(self, envoy: EnvoyProcess) -> None:
        self.envoy = envoy
        self._lock = threading.Lock()
        self._answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def _run(self, client: int) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            status, headers, body = self.envoy.request("POST", "/v1/messages", BODY, headers=HEADERS, timeout=10)
            with self._lock:
                self._answers.append(Answer(client, started, time.monotonic(), status, headers, body))

    @property
    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in self.answers if a.started > moment]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


@pytest.fixture()
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: run `make install` (it installs Debian's redis-server)")
    server = RedisServer(binary, free_ports(1))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def filter_workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[int]:
    """`serve --workers 2` on ports P and P+1, both using the redis-server as their store; yields P."""
    port = free_ports(2)
    (tmp_path / "policy.yaml").write_text(POLICY)
    config = tmp_path / "filter.yaml"
    config.write_text(f'listen: 127.0.0.1:{port}\nworkers: 2\nmetrics_port: 0\npolicy_file: policy.yaml\n'
                      f'store: {{url: "{redis_server.url}", timeout_seconds: 1}}\n')
    log = (tmp_path / "filter.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "filter", "serve", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    log.close()
    try:
        for address in (f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"):
            try:
                wait_grpc_ready(address, timeout=90)
            except TimeoutError:
                raise AssertionError("the filter did not start: " + (tmp_path / "filter.log").read_text()[-3000:]) \
                    from None
        yield port
    finally:
        stop(proc)


def test_redis_down_mid_traffic_fails_closed_and_recovers_when_it_is_back(
        redis_server: RedisServer, filter_workers: int, fake_provider: FakeProvider,
        envoy_factory: Callable[..., EnvoyProcess]) -> None:
    port = filter_workers
    envoy = envoy_factory("--upstream", fake_provider.url, "--filter", f"127.0.0.1:{port},127.0.0.1:{port + 1}")
    with Traffic(envoy) as traffic:
        wait_until("requests are admitted while Redis is up",
                   lambda: sum(a.status == 200 for a in traffic.answers) >= 10, timeout=20, interval=0.05)

        redis_server.kill()
        killed = time.monotonic()
        # Each client sends one request at a time: once every client has an answer to a request sent after the
        # kill, no request admitted before it is still on its way to the provider.
        wait_until("every client is answered during the outage",
                   lambda: {a.client for a in traffic.since(killed)} == set(range(CLIENTS)), timeout=20,
                   interval=0.05)
        reached = len(fake_provider.requests)
        wait_until("a few dozen requests are answered during the outage",
                   lambda: len(traffic.since(killed)) >= 40 and time.monotonic() - killed > 1.5, timeout=20,
                   interval=0.05)
        assert len(fake_provider.requests) == reached, "a request reached the provider while Redis was down"

        restarting = time.monotonic()
        redis_server.start()  # same port, empty
        up = time.monotonic()
        wait_until("requests are admitted again after Redis is back",
                   lambda: any(a.status == 200 for a in traffic.since(up)), timeout=RECOVERY_SECONDS, interval=0.05)
        recovered = time.monotonic()
        wait_until("a few more answers after recovery",
                   lambda: len(traffic.since(recovered)) >= 2 * CLIENTS, timeout=20, interval=0.05)

    answers = traffic.answers
    outage = [a for a in answers if a.started > killed and a.ended < restarting]
    assert len(outage) >= 40
    for answer in outage:
        assert answer.status == 503, (answer.status, answer.body[:300])
        assert answer.headers["x-llm-filter-reason"] == "store_unavailable"
        assert int(answer.headers["retry-after"]) >= 1
        error = json.loads(answer.body)  # Anthropic's error shape: a client SDK reads it as an API error
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
        assert "cannot check token budgets" in error["error"]["message"]
    # Both workers failed closed (decision ids start with a per-process prefix).
    assert len({a.headers["x-llm-filter-id"][:12] for a in outage}) == 2
    refused_ids = {a.headers["x-llm-filter-id"] for a in outage}
    assert not refused_ids & {r.headers.get("x-llm-filter-id") for r in fake_provider.requests}
    # After recovery every request is admitted again, and the provider saw exactly the admitted requests.
    assert all(a.status == 200 for a in answers if a.started > recovered), \
        sorted({a.status for a in answers if a.started > recovered})
    assert len(fake_provider.requests) == sum(a.status == 200 for a in answers)
