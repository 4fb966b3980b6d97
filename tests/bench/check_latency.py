"""gRPC Check latency on a clean 256 KB multi-turn body: the real filter vs a trivial OK server."""

from __future__ import annotations

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
            times: dict[str, list[float]] = {"filter": [], "trivial": []}
            for _ in range(n):
                for name, stub in stubs.items():
                    t0 = time.perf_counter()
                    stub.Check(request)
                    times[name].append((time.perf_counter() - t0) * 1000)
    finally:
        stop(real)
        stop(trivial)
    print(f"\n== gRPC Check latency, clean {len(body) / 1000:.0f} KB multi-turn body, {n} calls each, interleaved ==")
    print(f"   {'server':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in times.items():
        print(f"   {name:>8} {pct(values, 0.5):8.2f} {pct(values, 0.99):8.2f} {statistics.mean(values):8.2f}")
    ratio = pct(times["filter"], 0.5) / pct(times["trivial"], 0.5)
    print(f"   filter / trivial p50: {ratio:.2f}x  (target <= 2.5x: {'MET' if ratio <= 2.5 else 'NOT MET'})")
    print(f"   filter start-up (process start to gRPC health SERVING): {startup_s:.2f} s")
