"""Start-up to SERVING (cold: empty rule cache; warm), idle and peak memory (the growing conversation: conversation.py).

Each figure is printed next to its target. Memory is the worker's RSS (/proc): idle after start-up, and the
peak (VmHWM) while serving one 16 MiB body, given above idle as a multiple of the body.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc

from tests.support.envelopes import make_check_request
from tests.support.ports import free_port
from tests.support.processes import peak_rss, start_filter, stop

TARGET_WARM_S = 1.5
TARGET_IDLE_MIB = 100
TARGET_PEAK_X = 4.0  # peak above idle, in bodies
BIG = 16 * 1024 * 1024 - 64 * 1024  # under max_body_bytes with the gRPC framing


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _start(cache: str) -> tuple[float, int, int]:
    """(seconds to SERVING, idle RSS, peak RSS above idle while serving a 16 MiB body)."""
    port = free_port()
    t0 = time.perf_counter()
    proc = start_filter(port, env={"LLM_FILTER_CACHE_DIR": cache})
    took = time.perf_counter() - t0
    try:
        time.sleep(0.5)
        idle = _rss(proc.pid)
        text = "def f(x):\n    return x + 1\n" * (BIG // 29)
        body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text[: BIG - 100]}]})
        opts = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
            external_auth_pb2_grpc.AuthorizationStub(ch).Check(make_check_request(body), timeout=60)
        peak = peak_rss(proc.pid) - idle
    finally:
        stop(proc)
    return took, idle, peak


def run(quick: bool = False) -> None:
    print("\n== Start-up and memory ==")
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        cold, idle, peak = _start(cache)
        warm = [_start(cache) for _ in range(1 if quick else 3)]
    warm_s = statistics.median(w[0] for w in warm)
    idle_mib = statistics.median(w[1] for w in warm) / 2**20
    peak_x = statistics.median(w[2] for w in warm) / BIG
    print(f"   start-up to SERVING, warm rule cache: {warm_s:.2f} s (target <= {TARGET_WARM_S} s): "
          f"{'MET' if warm_s <= TARGET_WARM_S else 'NOT MET'}; cold (empty cache, compiles): {cold:.2f} s")
    print(f"   idle worker RSS: {idle_mib:.0f} MiB (target <= {TARGET_IDLE_MIB} MiB): "
          f"{'MET' if idle_mib <= TARGET_IDLE_MIB else 'NOT MET'}")
    peak_mib = statistics.median(w[1] + w[2] for w in warm) / 2**20  # a lower idle also lowers the peak
    print(f"   peak RSS serving a 16 MiB body: {peak_x:.1f}x the body above idle (target <= {TARGET_PEAK_X}x): "
          f"{'MET' if peak_x <= TARGET_PEAK_X else 'NOT MET'}; {peak_mib:.0f} MiB in all")
