"""Where one Check's time goes: per-stage CPU-clock time at 1 KB, 32 KB and 512 KB, in-process and inside the
real grpc server.

Stages are timed by wrapping the functions the real code path calls (class methods and module globals; the
code is not changed), so the same wrappers time a servicer called directly and a `llm-content-filter serve`
process (started as `python -m tests.bench.stages serve ...`, which installs them first and writes its sums
to a file on SIGUSR1). Each wrapper costs ~1 µs. Stages nest: `evaluate` holds parse..decide, `Check` holds
everything the servicer does; "rest of X" is X minus its stages.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

STAGES = [  # (name, what it covers, parent)
    ("protobuf in", "CheckRequest bytes -> message (grpc does it before the handler)", ""),
    ("envelope", "message -> Envelope (headers, body copy)", "Check"),
    ("decompress", "size checks, Content-Encoding", "evaluate"),
    ("json", "UTF-8 decode, node count, json.loads, depth check", "evaluate"),
    ("walk", "decoder walks the document into segments", "evaluate"),
    ("roads", "path, query, header segments", "evaluate"),
    ("derive", "decoded / normalised / joined copies (Hyperscan pre-scan per segment)", "evaluate"),
    ("scan", "Ruleset.scan: encode, join, Hyperscan, confirm, judge", "evaluate"),
    ("redactor", "Redactor.build (masks for what is written out)", "evaluate"),
    ("tokens", "token count (cached per segment)", "evaluate"),
    ("decide", "policy.decide", "evaluate"),
    ("response", "Decision -> CheckResponse", "Check"),
    ("protobuf out", "CheckResponse -> bytes (grpc does it after the handler)", ""),
    ("telemetry", "OpenTelemetry counters and histogram", "Check"),
    ("audit", "audit line: build, JSON, write", "Check"),
]
SIZES = (1_000, 32_000, 512_000)


class Clock:
    """Sums of nanoseconds and counts per stage; wrappers on several threads add under one lock. `now`: wall clock
    by default; a single-threaded bench may read the thread's CPU clock instead (other tenants' load is left out)."""

    now = staticmethod(time.perf_counter_ns)

    def __init__(self) -> None:
        self.ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, ns: int) -> None:
        with self._lock:
            self.ns[name] = self.ns.get(name, 0) + ns
            self.calls[name] = self.calls.get(name, 0) + 1

    def reset(self) -> None:
        with self._lock:
            self.ns.clear()
            self.calls.clear()

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        t0 = self.now()
        try:
            yield
        finally:
            self.add(name, self.now() - t0)

    def per_call_us(self, n: int) -> dict[str, float]:
        return {k: v / n / 1000 for k, v in self.ns.items()}


CLOCK = Clock()


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = CLOCK.now()
        try:
            return fn(*args, **kwargs)
        finally:
            CLOCK.add(name, CLOCK.now() - t0)

    return wrapper


_INSTALLED: list[bool] = []


def install() -> None:
    """Wrap the stages of the real code path (module globals where they are looked up, class methods); once."""
    if _INSTALLED:
        return
    _INSTALLED.append(True)
    import filter.formats as formats
    import filter.pipeline as pipeline
    import filter.server.authz as authz
    from filter.audit import AuditLog
    from filter.redact import Redactor
    from filter.rules.engine import Ruleset
    from filter.telemetry import Telemetry
    from filter.tokens import TokenCounter

    authz.read_envelope = _timed("envelope", authz.read_envelope)
    authz.evaluate = _timed("evaluate", authz.evaluate)
    authz.to_check_response = _timed("response", authz.to_check_response)
    formats.decode_body = _timed("decompress", formats.decode_body)
    formats.load_json = _timed("json", formats.load_json)
    formats._decode = _timed("walk", formats._decode)
    formats.road_segments = _timed("roads", formats.road_segments)
    formats.derived = _timed("derive", formats.derived)
    pipeline.decide = _timed("decide", pipeline.decide)
    build = Redactor.build.__func__  # type: ignore[attr-defined]
    Redactor.build = classmethod(_timed("redactor", build))  # type: ignore[method-assign,assignment]
    Ruleset.scan = _timed("scan", Ruleset.scan)  # type: ignore[method-assign]
    TokenCounter.count = _timed("tokens", TokenCounter.count)  # type: ignore[method-assign]
    Telemetry.observe = _timed("telemetry", Telemetry.observe)  # type: ignore[method-assign]
    AuditLog.record = _timed("audit", AuditLog.record)  # type: ignore[method-assign]
    authz.AuthorizationServicer.Check = _timed("Check", authz.AuthorizationServicer.Check)


# -- inside the real server ---------------------------------------------------------------------------------
def serve_instrumented(argv: list[str]) -> int:
    """`python -m tests.bench.stages serve <serve args>`: the real `serve` with the stage wrappers installed.
    SIGUSR1 writes {"ns", "calls"} to $STAGES_OUT and resets the sums."""
    install()
    out = os.environ["STAGES_OUT"]

    def dump(_signum: int, _frame: object) -> None:
        data = json.dumps({"ns": CLOCK.ns, "calls": CLOCK.calls})
        CLOCK.reset()
        tmp = out + ".tmp"
        Path(tmp).write_text(data)
        os.replace(tmp, out)

    signal.signal(signal.SIGUSR1, dump)
    from filter.cli import main

    return main(argv)


# -- the measurement ----------------------------------------------------------------------------------------
class _Context:
    def time_remaining(self) -> float | None:
        return None


def _in_process(requests: dict[int, bytes], n: int) -> dict[int, dict[str, float]]:
    from envoy.service.auth.v3 import external_auth_pb2

    from filter.audit import AuditLog
    from filter.runtime import Runtime
    from filter.server.authz import AuthorizationServicer
    from filter.settings import load_settings
    from filter.telemetry import Telemetry
    from filter.tokens import TokenCounter, load_encoding

    settings = load_settings(None, env={**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key"})
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(str(Path(tmp) / "audit.jsonl"))
        servicer = AuthorizationServicer(Runtime(None, settings), TokenCounter(load_encoding(None)), audit,
                                         Telemetry())
        out: dict[int, dict[str, float]] = {}
        for size, data in requests.items():
            for _ in range(max(5, n // 10)):  # warm-up: caches, as an agent resending its history sees them
                servicer.Check(external_auth_pb2.CheckRequest.FromString(data), _Context())
            CLOCK.reset()
            for _ in range(n):
                with CLOCK.timing("protobuf in"):
                    request = external_auth_pb2.CheckRequest.FromString(data)
                response = servicer.Check(request, _Context())
                with CLOCK.timing("protobuf out"):
                    response.SerializeToString()
            out[size] = CLOCK.per_call_us(n)
    return out


def _in_server(requests: dict[int, bytes], n: int) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]]:
    """Stage times inside a real server process, and client-side p50 of it and of the trivial server."""
    import subprocess

    from tests.bench.procs import start_trivial
    from tests.support.ports import free_port
    from tests.support.processes import ROOT, stop, wait_grpc_ready

    fport, tport = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="bench-stages-")
    out_file = str(Path(tmp) / "stages.json")
    env = {**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key", "STAGES_OUT": out_file}
    cfg = Path(tmp) / "filter.yaml"
    cfg.write_text(f"audit: {{path: {tmp}/audit.jsonl}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.stages", "serve", "--config", str(cfg), "--listen",
                             f"127.0.0.1:{fport}", "--metrics-port", "0"], cwd=ROOT, env=env,
                            stderr=subprocess.DEVNULL)
    trivial = start_trivial(tport)
    stages: dict[int, dict[str, float]] = {}
    client: dict[int, dict[str, float]] = {}
    try:
        wait_grpc_ready(f"127.0.0.1:{fport}")
        opts = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(f"127.0.0.1:{fport}", options=opts) as fch, \
                grpc.insecure_channel(f"127.0.0.1:{tport}", options=opts) as tch:
            # The raw method (bytes in, bytes out): the client does not parse what it times.
            check = {name: ch.unary_unary("/envoy.service.auth.v3.Authorization/Check",
                                          request_serializer=None, response_deserializer=None)
                     for name, ch in (("filter", fch), ("trivial", tch))}
            for size, data in requests.items():
                for _ in range(max(5, n // 10)):
                    for call in check.values():
                        call(data)
                os.kill(proc.pid, signal.SIGUSR1)  # reset the server's sums after the warm-up
                _wait_file(out_file)
                Path(out_file).unlink()
                times: dict[str, list[float]] = {"filter": [], "trivial": []}
                for _ in range(n):
                    for name, call in check.items():
                        t0 = time.perf_counter_ns()
                        call(data)
                        times[name].append((time.perf_counter_ns() - t0) / 1000)
                os.kill(proc.pid, signal.SIGUSR1)
                _wait_file(out_file)
                raw = json.loads(Path(out_file).read_text())
                Path(out_file).unlink()
                stages[size] = {k: v / n / 1000 for k, v in raw["ns"].items()}
                client[size] = {name: statistics.median(v) for name, v in times.items()}
    finally:
        stop(proc)
        stop(trivial)
    return stages, client


def _wait_file(path: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"the instrumented server wrote no {path}")
        time.sleep(0.01)


def _requests() -> dict[int, bytes]:
    from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
    from tests.bench.corpus import chat_body
    from tests.support.envelopes import make_check_request

    ruleset = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"bench"))
    return {size: make_check_request(chat_body(ruleset, size)).SerializeToString() for size in SIZES}


def run(quick: bool = False) -> dict[str, Any]:
    """Print the per-stage table; returns the figures (for the summary)."""
    install()
    requests = _requests()
    n = 40 if quick else 200
    inproc = _in_process(requests, n)
    server, client = _in_server(requests, n)
    print(f"\n== Check stages (µs per Check, mean of {n}; in-process | inside the real grpc server) ==")
    print(f"   {'stage':<14}" + "".join(f"{f'{s // 1000} KB':>20}" for s in SIZES))
    rows = [name for name, _, _ in STAGES]
    for name in rows:
        cells = []
        for size in SIZES:
            a, b = inproc[size].get(name), server[size].get(name)
            cells.append(f"{_us(a):>9} |{_us(b):>8}")
        print(f"   {name:<14}" + "".join(f"{c:>20}" for c in cells))
    for total, parts in (("evaluate", [r for r, _, p in STAGES if p == "evaluate"]),
                         ("Check", [r for r, _, p in STAGES if p == "Check"] + ["evaluate"])):
        cells = []
        for size in SIZES:
            rest = [d.get(total, 0.0) - sum(d.get(p, 0.0) for p in parts) for d in (inproc[size], server[size])]
            cells.append(f"{_us(rest[0]):>9} |{_us(rest[1]):>8}")
        print(f"   {'rest of ' + total:<14}" + "".join(f"{c:>20}" for c in cells))
    for total in ("evaluate", "Check"):
        print(f"   {total + ' (all)':<14}" + "".join(
            f"{_us(inproc[s].get(total)):>9} |{_us(server[s].get(total)):>8}" for s in SIZES))
    print("   client-observed p50, sequential calls (µs): filter | trivial server | filter − trivial − Check")
    for size in SIZES:
        f, t = client[size]["filter"], client[size]["trivial"]
        print(f"   {size // 1000:>5} KB: {f:8.0f} | {t:8.0f} | {f - t - server[size].get('Check', 0):+8.0f}")
    return {"in_process": inproc, "in_server": server, "client": client}


def _us(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve_instrumented(sys.argv[1:]))
    run(quick="--quick" in sys.argv)
