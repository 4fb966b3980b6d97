"""Resource exhaustion end to end: real Envoy (rendered from envoy/envoy.yaml) and the real filter server with its
shipped defaults, in front of the fake provider (the only fake: real LLM providers cannot be reached from here).

Hostile bodies near Envoy's 16 MiB limit are sent several at once while a client keeps sending clean requests.
The filter must answer the hostile ones (413 work_limit_exceeded, or 503 overloaded / deadline_exceeded when
it is busy), keep serving the clean ones, and stay far below the pod's 2 GiB memory limit.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc

from tests.support.envelopes import make_check_request
from tests.support.processes import cpu_seconds, peak_rss

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess

pytestmark = pytest.mark.e2e

GIB = 1024**3
PATH = "/v1/chat/completions"
HEADERS = {"x-llm-provider": "openai"}
CLEAN = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Rename foo to bar in app.py."}]})


def tiny_strings(target_bytes: int) -> bytes:
    """~target_bytes of JSON holding millions of one-letter strings: cheap to send, dear to parse."""
    head = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x":["a"'
    return head + b',"a"' * ((target_bytes - len(head) - 2) // 4) + b"]}"


def long_prompt(target_bytes: int) -> bytes:
    """~target_bytes of ordinary conversation text: the most a legitimate client can make the filter scan."""
    line = "def handler(event):\n    return {'status': 200, 'body': event['body']}  # ok\n"
    text = line * (target_bytes // len(line) // 8)
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i in range(8)]
    return json.dumps({"model": "gpt-4o", "messages": messages}).encode()


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    seconds: float


def send(gateway: EnvoyProcess, body: bytes, timeout: float = 30.0) -> Answer:
    started = time.monotonic()
    try:
        status, headers, _ = gateway.request("POST", PATH, body, HEADERS, timeout=timeout)
    except OSError:  # timed out or reset: the test counts it as unanswered
        return Answer(0, "no answer", time.monotonic() - started)
    reason = headers.get("x-llm-filter-reason") or headers.get("x-llm-filter-decision", "")
    return Answer(status, reason, time.monotonic() - started)


class CleanTraffic:
    """One client sending small clean requests back to back while the test runs."""

    def __init__(self, gateway: EnvoyProcess) -> None:
        self.gateway = gateway
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.answers.append(send(self.gateway, CLEAN.encode(), timeout=10.0))

    def __enter__(self) -> CleanTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider) -> Iterator[
        tuple[FilterProcess, EnvoyProcess]]:
    workdir = tmp_path_factory.mktemp("exhaustion")
    with FilterProcess(workdir) as flt:  # shipped defaults: the bounds under test are the ones users get
        envoy = start_envoy(workdir, "--upstream", fake_provider_server.url, "--filter", flt.address)
        try:
            yield flt, envoy
        finally:
            envoy.stop()


def check_directly(address: str, bodies: list[bytes], deadline: float) -> list[tuple[int, str]]:
    """Send CheckRequests straight to the filter, all at once, as Envoy would (raw_body, a gRPC deadline).
    Returns (HTTP status of the deny, reason) per body; (0, gRPC status) when there was no answer."""
    options = [("grpc.max_send_message_length", 32 * 2**20), ("grpc.max_receive_message_length", 32 * 2**20)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)

        def one(body: bytes) -> tuple[int, str]:
            try:
                resp = stub.Check(make_check_request(body, path=PATH, headers=HEADERS), timeout=deadline)
            except grpc.RpcError as e:
                return 0, e.code().name
            headers = {h.header.key: h.header.value for h in resp.denied_response.headers}
            return resp.denied_response.status.code, headers.get("x-llm-filter-reason", "allow")

        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            return list(pool.map(one, bodies))


def test_hostile_bodies_are_refused_while_clean_traffic_flows_and_memory_stays_bounded(
    stack: tuple[FilterProcess, EnvoyProcess], fake_provider: FakeProvider
) -> None:
    flt, gateway = stack
    assert send(gateway, CLEAN.encode()).status == 200
    hostile = tiny_strings(15_600_000)  # 3.9 million strings
    big = long_prompt(15 * 1024 * 1024)
    with CleanTraffic(gateway) as clean:
        time.sleep(1.0)
        # Through Envoy: four bodies of tiny strings at once.
        with ThreadPoolExecutor(max_workers=4) as pool:
            wave1 = list(pool.map(lambda b: send(gateway, b), [hostile] * 4))
        # Straight at the filter (more than Envoy's own heap bound lets through at once): 50 bodies at the
        # 16 MiB limit, tiny strings and long prompts mixed, with Envoy's 2 s deadline.
        wave2 = check_directly(flt.address, [hostile, big] * 25, deadline=20.0)
        time.sleep(1.0)
    peak = peak_rss(flt.pid)
    clean_ok = [a for a in clean.answers if a.status == 200]
    slow = sorted(a.seconds for a in clean_ok)
    through_envoy = [(a.status, a.reason, round(a.seconds, 1)) for a in wave1]
    summary = (f"filter peak RSS {peak / 2**20:.0f} MiB; through Envoy {through_envoy}; "
               f"direct {sorted(Counter(wave2).items())}; clean {len(clean_ok)}/{len(clean.answers)} ok, p50 "
               f"{slow[len(slow) // 2]:.2f}s p90 {slow[int(len(slow) * 0.9)]:.2f}s max {slow[-1]:.2f}s")
    print(summary)

    # (c) every hostile body is answered and refused.
    for a in wave1:
        assert (a.status, a.reason) in {(413, "work_limit_exceeded"), (503, "overloaded")}, summary
        assert a.seconds < 10.0, summary  # uploading 15.6 MB through Envoy included
    refused = {"work_limit_exceeded", "prompt_too_large", "overloaded", "deadline_exceeded"}
    assert all(status >= 400 and reason in refused for status, reason in wave2), summary
    # (b) clean requests keep completing, each within a couple of seconds.
    assert len(clean.answers) >= 10 and len(clean_ok) >= 0.9 * len(clean.answers), summary
    assert slow[int(len(slow) * 0.9)] < 2.0, summary
    # (a) far below the pod's 2 GiB limit.
    assert peak < 1 * GIB, summary
    assert not any(r.body in (hostile, big) for r in fake_provider.requests)  # nothing refused went through


def test_body_of_key_shaped_strings_stops_at_the_deadline_instead_of_burning_minutes(
    stack: tuple[FilterProcess, EnvoyProcess], fake_provider: FakeProvider
) -> None:
    # 700 000 AWS-key-shaped candidates in one message: each needs confirming in Python, minutes of CPU in all.
    text = " ".join(f"AKIAZ5XQ3HR2LMNPQ7T{i % 10}" for i in range(700_000))
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}).encode()
    flt, gateway = stack
    before_cpu, before_lines = cpu_seconds(flt.pid), len(flt.audit())
    answer = send(gateway, body)
    deadline = time.monotonic() + 15
    while len(flt.audit()) == before_lines and time.monotonic() < deadline:
        time.sleep(0.1)  # the filter writes its audit line once it has stopped
    spent = cpu_seconds(flt.pid) - before_cpu
    lines = flt.audit()[before_lines:]
    summary = f"client {answer}; filter CPU {spent:.1f}s; audit {[(a['status'], a['reason'], a['latency_ms']) for a in lines]}"
    print(summary)
    assert answer.status in (413, 503) and answer.seconds < 10, summary  # Envoy's 2 s timeout, or the filter's
    assert [a["reason"] for a in lines] in (["deadline_exceeded"], ["work_limit_exceeded"]), summary
    assert spent < 8, summary  # ~2-3 s of work, not the minutes the rule scan alone would take
    assert not fake_provider.requests
