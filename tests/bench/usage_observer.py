"""What reading usage off responses costs the agent: real Envoy + the real filter, measured side by side.

Three Envoys run at once against one local fake provider (no real provider is called), each measured in turn with
the order rotated every round, so the noise of this shared machine hits them alike:

    observer     ext_authz -> filter (no store); ext_proc usage observer on (`--usage`)
    no_usage     the same filter; Envoy rendered with `--no-usage` (no ext_proc)
    budgets      ext_authz -> a second filter with a SQLite store and a policy file whose token budget covers the
                 request: Check reserves, the observer reconciles (ext_proc on)

    no_usage_b   a second Envoy like no_usage: the difference between the two is this machine's noise floor
    null         ext_proc on, but to a processor that reads the messages and does nothing (null_processor.py):
                 what Envoy's ext_proc filter costs by itself

1. A streamed answer (Anthropic SSE, STREAM_EVENTS events, sent in one chunk per event): time to the first body
   byte and total time at the agent, observer vs no_usage; requests back to back and 50 ms apart from a provider
   that answers at once (the observer's work then competes for the same two cores as Envoy, the fake provider and
   the client), and from a provider paced like a fast real one (first byte after FIRST_BYTE_S, EVENT_GAP_S between
   events; still faster than a model writes).
2. A JSON chat request of 1 KB and 32 KB: end-to-end time, budgets (SQLite) vs observer (no budgets).

Sequential requests on one keep-alive connection per Envoy; medians (and p90) per scenario over all rounds.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from filter.store import Budget, Window, open_store
from tests.bench.corpus import chat_body
from tests.e2e.envoy_harness import EnvoyProcess, render_config
from tests.support.ports import free_port
from tests.support.processes import ROOT, stop, wait_grpc_ready
from tests.usage import samples

STREAM_EVENTS = 200
# Requests back to back, and paced: the observer parses the previous answer after the agent has it, in the process
# that also answers the next Check; a pause between requests shows the cost without that overlap.
GAPS = (0.0, 0.05)
GAP_NAMES = {0.0: "back-to-back", 0.05: "50 ms apart"}
FIRST_BYTE_S = 0.05  # a paced provider's time to its first byte, and its pause between events
EVENT_GAP_S = 0.005
PACED = "x-bench-paced"  # request header: the fake provider paces this answer
BUDGET = Budget("team:bench", Window.DAY, 10**12)
IDENTITY = {"x-workspace-id": "ws-bench", "x-team-id": "bench"}
ANTHROPIC = {"x-api-key": "placeholder-credential", "anthropic-version": "2023-06-01",
             "content-type": "application/json"}


def stream_body() -> list[bytes]:
    """An Anthropic message stream: message_start, STREAM_EVENTS text deltas, message_delta (usage), stop."""
    start = {"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant",
                                                   "content": [], "model": "claude-bench", "stop_reason": None,
                                                   "usage": {"input_tokens": 20, "output_tokens": 1}}}
    events = [samples.sse(("message_start", start))]
    events += [samples.sse(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": f" word{i} and more"}}))
               for i in range(STREAM_EVENTS)]
    events.append(samples.sse(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                                 "usage": {"output_tokens": STREAM_EVENTS * 4}})))
    events.append(samples.sse(("message_stop", {"type": "message_stop"})))
    return events


class Provider:
    """Fake provider: /v1/messages streams `stream_body()` chunk by chunk; anything else gets a small chat JSON."""

    def __init__(self) -> None:
        events = stream_body()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_POST(self) -> None:  # noqa: N802 (http.server name)
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                if self.path.startswith("/v1/messages"):
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    paced = PACED in self.headers
                    if paced:
                        time.sleep(FIRST_BYTE_S)
                    for event in events:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        if paced:
                            time.sleep(EVENT_GAP_S)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(samples.OPENAI_CHAT_JSON)))
                self.end_headers()
                self.wfile.write(samples.OPENAI_CHAT_JSON)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_filter(workdir: Path, name: str, extra: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """`serve` with a usage_listen port and `extra` config lines; (process, Check port, usage port)."""
    port, usage = free_port(), free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nworkers: 1\nmetrics_port: 0\nusage_listen: 127.0.0.1:{usage}\n"
                      f"policy: {{trust_identity_headers: true}}\n{extra}")
    err = (workdir / f"{name}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "filter", "serve", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    try:
        wait_grpc_ready(f"127.0.0.1:{port}", timeout=90)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"filter {name} did not start: {(workdir / f'{name}.log').read_text()[-2000:]}") from None
    return proc, port, usage


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def start_envoy(workdir: Path, name: str, *args: str) -> EnvoyProcess:
    listen, admin = free_port(), free_port()
    config = render_config(workdir / f"envoy-{name}.yaml", *args, "--no-ratelimit", listen_port=listen,
                           admin_port=admin)
    return EnvoyProcess(config, listen_port=listen, admin_port=admin, workdir=workdir, concurrency=2).start()


def timed(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, float]:
    """(ms to the first body byte, ms to the last) for one request on a kept-alive connection."""
    started = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    first = resp.read(1)
    ttfb = time.perf_counter() - started
    rest = resp.read()
    total = time.perf_counter() - started
    if resp.status != 200 or not first or not rest:
        raise RuntimeError(f"{path}: status {resp.status}")
    return ttfb * 1000, total * 1000


def summary(values: list[float]) -> str:
    """p50 and p90 of latencies in ms, for the bench's tables."""
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered):6.2f} ms  p90 {ordered[int(len(ordered) * 0.9) - 1]:6.2f} ms"


def run(quick: bool = False, rounds: int | None = None) -> bool:
    """Prints the comparison; False when a request failed or the budget was not charged."""
    rounds = rounds or (2 if quick else 5)
    per_round = 10 if quick else 40
    workdir = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    ruleset = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"bench"))
    bodies = {"1 KB": chat_body(ruleset, 1_000), "32 KB": chat_body(ruleset, 32_000)}
    stream_request = json.dumps({"model": "claude-bench", "max_tokens": 1024, "stream": True,
                                 "messages": [{"role": "user", "content": "Tell me a story."}]}).encode()
    store_url = f"sqlite:///{workdir / 'store.db'}"
    (workdir / "policy.yaml").write_text(f"teams:\n  bench: {{budgets: {{daily_tokens: {BUDGET.limit}}}}}\n")
    provider = Provider()
    procs: list[subprocess.Popen[bytes]] = []
    envoys: dict[str, EnvoyProcess] = {}
    ok = True
    try:
        plain, plain_port, plain_usage = start_filter(workdir, "filter", "")
        procs.append(plain)
        budgeted, budget_port, budget_usage = start_filter(
            workdir, "filter-budgets", f'store: {{url: "{store_url}"}}\npolicy_file: {workdir / "policy.yaml"}\n')
        procs.append(budgeted)
        up = ("--upstream", provider.url)
        envoys["observer"] = start_envoy(workdir, "observer", *up, "--filter", f"127.0.0.1:{plain_port}",
                                         "--usage", f"127.0.0.1:{plain_usage}")
        envoys["no_usage"] = start_envoy(workdir, "no-usage", *up, "--filter", f"127.0.0.1:{plain_port}",
                                         "--no-usage")
        null_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.bench.null_processor", str(null_port)], cwd=ROOT))
        wait_port(null_port)
        envoys["null"] = start_envoy(workdir, "null", *up, "--filter", f"127.0.0.1:{plain_port}",
                                     "--usage", f"127.0.0.1:{null_port}")
        envoys["no_usage_b"] = start_envoy(workdir, "no-usage-b", *up, "--filter", f"127.0.0.1:{plain_port}",
                                           "--no-usage")
        envoys["budgets"] = start_envoy(workdir, "budgets", *up, "--filter", f"127.0.0.1:{budget_port}",
                                        "--usage", f"127.0.0.1:{budget_usage}")
        conns = {name: http.client.HTTPConnection("127.0.0.1", e.listen_port, timeout=30) for name, e in envoys.items()}
        kinds = [*GAPS, "paced"]  # instant provider with each gap, then the paced provider back to back
        names = ("no_usage", "no_usage_b", "null", "observer")
        streams = [(name, kind) for kind in kinds for name in names]
        ttfb: dict[tuple[str, float | str], list[float]] = {k: [] for k in streams}
        total: dict[tuple[str, float | str], list[float]] = {k: [] for k in streams}
        paced_headers = {**ANTHROPIC, **IDENTITY, PACED: "1"}
        e2e: dict[tuple[str, str], list[float]] = {(s, b): [] for s in ("observer", "budgets") for b in bodies}
        stream_headers = {**ANTHROPIC, **IDENTITY}
        chat_headers = {"content-type": "application/json", "authorization": "Bearer placeholder", **IDENTITY}
        for name in envoys:  # warm up: connections, caches, the filter's first scans
            for _ in range(5):
                timed(conns[name], "/anthropic/v1/messages", stream_request, stream_headers)
        for r in range(rounds):
            for name, kind in streams if r % 2 == 0 else streams[::-1]:
                paced = kind == "paced"
                for _ in range(per_round // 4 if paced else per_round):
                    first, last = timed(conns[name], "/anthropic/v1/messages", stream_request,
                                        paced_headers if paced else stream_headers)
                    ttfb[(name, kind)].append(first)
                    total[(name, kind)].append(last)
                    time.sleep(0.0 if paced else float(kind))
            for label, body in bodies.items():
                for name in (["observer", "budgets"] if r % 2 == 0 else ["budgets", "observer"]):
                    for _ in range(per_round):
                        e2e[(name, label)].append(
                            timed(conns[name], "/openai/v1/chat/completions", body, chat_headers)[1])
        print(f"\n== usage observer and budgets, through Envoy ({rounds} rounds x {per_round} requests, "
              "sequential, medians)")
        print(f"   streamed answer: Anthropic SSE, {STREAM_EVENTS + 3} events, "
              f"{sum(len(e) for e in stream_body()) // 1024} KB")
        label = {**GAP_NAMES, "paced": f"paced provider ({FIRST_BYTE_S * 1000:.0f} ms to first byte, "
                                               f"{EVENT_GAP_S * 1000:.0f} ms between events)"}
        for name, kind in streams:
            print(f"   {name:10} {str(kind)[:13]:13} first byte {summary(ttfb[(name, kind)])} | "
                  f"total {summary(total[(name, kind)])}")
        def added(v: dict[tuple[str, float | str], list[float]], kind: float | str, a: str) -> float:
            return statistics.median(v[(a, kind)]) - statistics.median(v[("no_usage", kind)])

        for kind in kinds:
            print(f"   {label[kind]}: observer adds {added(ttfb, kind, 'observer'):+.2f} ms to the first byte, "
                  f"{added(total, kind, 'observer'):+.2f} ms to the total; a do-nothing processor "
                  f"{added(ttfb, kind, 'null'):+.2f} / {added(total, kind, 'null'):+.2f} ms; "
                  "noise floor (no_usage_b vs no_usage) "
                  f"{added(ttfb, kind, 'no_usage_b'):+.2f} / {added(total, kind, 'no_usage_b'):+.2f} ms (medians)")
        for label in bodies:
            on, off = e2e[("budgets", label)], e2e[("observer", label)]
            print(f"   {label:6} request, JSON answer: budgets off {summary(off)} | budgets on (SQLite) "
                  f"{summary(on)} | {statistics.median(on) - statistics.median(off):+.2f} ms")
        time.sleep(1)  # the last settlements
        store = open_store(store_url)
        try:
            (usage,) = store.usage([BUDGET])
        finally:
            store.close()
        expected = 29 * sum(len(v) for (name, _), v in e2e.items() if name == "budgets")
        if usage.used < expected:  # the stream warm-up requests add more; JSON answers report 29 each
            print(f"   !! budget charged {usage.used} tokens, expected at least {expected}")
            ok = False
        else:
            print(f"   budget charged {usage.used} tokens, {usage.reserved} still reserved")
    except (RuntimeError, OSError) as e:
        print(f"   !! usage bench failed: {e} (logs in {workdir})")
        ok = False
    finally:
        for envoy in envoys.values():
            envoy.stop()
        for proc in procs:
            stop(proc)
        provider.close()
    return ok


if __name__ == "__main__":
    sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
