"""gRPC Check latency on a clean 256 KB multi-turn body: the real filter vs a trivial OK server.

Two filter figures: the body sent again and again (an agent resending its history: the filter's per-segment
caches answer most of it) and a body the filter has not seen (every message text differs from every earlier
call's, so nothing is reused). The target is held against the second."""

from __future__ import annotations

import json
import statistics
import time

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from google.rpc import code_pb2

from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from tests.bench.corpus import chat_body
from tests.bench.procs import start_trivial
from tests.support.envelopes import make_check_request
from tests.support.ports import free_port
from tests.support.processes import start_filter, stop


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def fresh(body: bytes, n: int) -> bytes:
    """`body` with every message text made new (a marker of `n` in front), as the filter has not seen it."""
    doc = json.loads(body)
    for m in doc["messages"]:
        m["content"] = f"[{n}] " + m["content"]
    return json.dumps(doc).encode()


def run(quick: bool = False, size: int = 256_000) -> None:
    ruleset = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"bench"))
    body = chat_body(ruleset, size)
    request = make_check_request(body)
    fport, tport = free_port(), free_port()
    t0 = time.perf_counter()
    real = start_filter(fport)
    startup_s = time.perf_counter() - t0
    trivial = start_trivial(tport)
    n = 100 if quick else 400
    try:
        opts = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(f"127.0.0.1:{fport}", options=opts) as fch, \
                grpc.insecure_channel(f"127.0.0.1:{tport}", options=opts) as tch:
            stubs = {"filter": external_auth_pb2_grpc.AuthorizationStub(fch),
                     "trivial": external_auth_pb2_grpc.AuthorizationStub(tch)}
            first = stubs["filter"].Check(request)
            assert first.status.code == code_pb2.OK, first.denied_response.body
            for stub in stubs.values():  # warm-up: connections, caches (agents resend the same history)
                for _ in range(20):
                    stub.Check(request)
            times: dict[str, list[float]] = {"filter": [], "first sight": [], "trivial": []}
            for i in range(n):
                new = make_check_request(fresh(body, i))
                for name, stub, req in (("filter", stubs["filter"], request), ("first sight", stubs["filter"], new),
                                        ("trivial", stubs["trivial"], new)):
                    t0 = time.perf_counter()
                    stub.Check(req)
                    times[name].append((time.perf_counter() - t0) * 1000)
    finally:
        stop(real)
        stop(trivial)
    print(f"\n== gRPC Check latency, clean {len(body) / 1000:.0f} KB multi-turn body, {n} calls each, interleaved ==")
    print(f"   {'server':>22} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    labels = {"filter": "filter, body resent", "first sight": "filter, new body", "trivial": "trivial"}
    for name, values in times.items():
        print(f"   {labels[name]:>22} {pct(values, 0.5):8.2f} {pct(values, 0.99):8.2f} {statistics.mean(values):8.2f}")
    trivial = pct(times["trivial"], 0.5)
    ratio = pct(times["first sight"], 0.5) / trivial
    print(f"   filter / trivial p50, new body: {ratio:.2f}x  (target <= 2.5x: {'MET' if ratio <= 2.5 else 'NOT MET'})")
    print(f"   filter / trivial p50, body resent: {pct(times['filter'], 0.5) / trivial:.2f}x")
    print(f"   filter start-up (process start to gRPC health SERVING): {startup_s:.2f} s")
