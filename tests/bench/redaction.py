"""What redaction costs the agent: real Envoy + the real filter (personal data redacted), measured side by side.

One filter (`block_pii: false`, so an e-mail address is redacted; workspace `rehydrating` has `rehydrate: true`)
and one Envoy in front of a local fake provider (no real provider is called):

1. A JSON chat request of 1 KB and 32 KB, clean (allow: Check only, the rewriter is skipped) and with one e-mail
   address in its last turn (rewrite: Check, then the body's second trip through the rewriter, re-scanned once
   rewritten): end-to-end time at the agent.
2. A streamed answer (Anthropic SSE, STREAM_EVENTS events, one chunk per event; every tenth delta repeats the
   request's placeholder), for a request with an address: rewritten only vs rewritten and rehydrated (each chunk
   through the rewriter): time to the first body byte and total.

Sequential requests on one keep-alive connection; the order rotates every round; medians (and p90).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from tests.bench.corpus import chat_body
from tests.bench.usage_observer import start_envoy, summary, timed
from tests.support.ports import free_port
from tests.support.processes import ROOT, stop, wait_grpc_ready
from tests.usage import samples

STREAM_EVENTS = 200
EMAIL = "maria.schmidt@gmail.com"
PLACEHOLDER = re.compile(rb"<EMAIL_[0-9a-f]{8}>")
ANTHROPIC = {"x-api-key": "placeholder-credential", "anthropic-version": "2023-06-01",
             "content-type": "application/json"}


class Provider:
    """/v1/messages streams STREAM_EVENTS deltas (every tenth repeats the request's placeholder, if any); anything
    else gets a small chat JSON."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                if not self.path.startswith("/v1/messages"):
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(samples.OPENAI_CHAT_JSON)))
                    self.end_headers()
                    self.wfile.write(samples.OPENAI_CHAT_JSON)
                    return
                found = PLACEHOLDER.search(body)
                echo = found.group(0).decode() if found else "the customer"
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for event in _events(echo):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _events(echo: str) -> list[bytes]:
    start = {"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant",
                                                   "content": [], "model": "claude-bench", "stop_reason": None,
                                                   "usage": {"input_tokens": 20, "output_tokens": 1}}}
    events = [samples.sse(("message_start", start))]
    for i in range(STREAM_EVENTS):
        text = f" wrote to {echo}" if i % 10 == 0 else f" word{i} and more"
        events.append(samples.sse(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                           "delta": {"type": "text_delta", "text": text}})))
    events.append(samples.sse(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                                 "usage": {"output_tokens": STREAM_EVENTS * 4}})))
    events.append(samples.sse(("message_stop", {"type": "message_stop"})))
    return events


def with_address(body: bytes) -> bytes:
    """The same chat with one e-mail address in its last turn."""
    doc = json.loads(body)
    doc["messages"][-1]["content"] += f"\nThe report goes to {EMAIL}."
    return json.dumps(doc).encode()


def start_filter(workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, rewriter = free_port(), free_port()
    (workdir / "policy.yaml").write_text("workspaces:\n  rehydrating: {rehydrate: true}\n")
    config = workdir / "filter.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nworkers: 1\nmetrics_port: 0\n"
                      f"policy: {{trust_identity_headers: true, block_pii: false}}\n"
                      f"policy_file: {workdir / 'policy.yaml'}\nrewriter_listen: 127.0.0.1:{rewriter}\n")
    err = (workdir / "filter.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "filter", "serve", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key"})
    err.close()
    try:
        wait_grpc_ready(f"127.0.0.1:{port}", timeout=90)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"filter did not start: {(workdir / 'filter.log').read_text()[-2000:]}") from None
    return proc, port, rewriter


def run(quick: bool = False, rounds: int | None = None) -> bool:
    """Prints the comparison; False when a request failed or a value reached the provider."""
    rounds = rounds or (2 if quick else 5)
    per_round = 10 if quick else 40
    workdir = Path(tempfile.mkdtemp(prefix="bench-redaction-"))
    ruleset = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"bench"))
    clean = {label: chat_body(ruleset, size) for label, size in (("1 KB", 1_000), ("32 KB", 32_000))}
    bodies = {(label, kind): body if kind == "allow" else with_address(body)
              for label, body in clean.items() for kind in ("allow", "rewrite")}
    stream_request = json.dumps({"model": "claude-bench", "max_tokens": 1024, "stream": True, "messages": [
        {"role": "user", "content": f"Tell {EMAIL} a story."}]}).encode()
    provider = Provider()
    proc: subprocess.Popen[bytes] | None = None
    envoy = None
    ok = True
    try:
        proc, port, rewriter = start_filter(workdir)
        envoy = start_envoy(workdir, "redaction", "--upstream", provider.url, "--filter", f"127.0.0.1:{port}",
                            "--rewriter", f"127.0.0.1:{rewriter}", "--no-usage")
        conn = http.client.HTTPConnection("127.0.0.1", envoy.listen_port, timeout=30)
        chat_headers = {"content-type": "application/json", "authorization": "Bearer placeholder"}
        streams = {"rewrite only": {**ANTHROPIC, "x-workspace-id": "plain"},
                   "rehydrated": {**ANTHROPIC, "x-workspace-id": "rehydrating"}}
        e2e: dict[tuple[str, str], list[float]] = {k: [] for k in bodies}
        ttfb: dict[str, list[float]] = {k: [] for k in streams}
        total: dict[str, list[float]] = {k: [] for k in streams}
        for _ in range(5):  # warm up
            for body in bodies.values():
                timed(conn, "/openai/v1/chat/completions", body, chat_headers)
            for headers in streams.values():
                timed(conn, "/anthropic/v1/messages", stream_request, headers)
        for r in range(rounds):
            order = list(bodies) if r % 2 == 0 else list(bodies)[::-1]
            for key in order:
                for _ in range(per_round):
                    e2e[key].append(timed(conn, "/openai/v1/chat/completions", bodies[key], chat_headers)[1])
            for name in (list(streams) if r % 2 == 0 else list(streams)[::-1]):
                for _ in range(per_round):
                    first, last = timed(conn, "/anthropic/v1/messages", stream_request, streams[name])
                    ttfb[name].append(first)
                    total[name].append(last)
        # correctness: the rehydrated stream spells the address, the other one only its placeholder
        conn.request("POST", "/anthropic/v1/messages", body=stream_request, headers=streams["rehydrated"])
        back = conn.getresponse().read()
        conn.request("POST", "/anthropic/v1/messages", body=stream_request, headers=streams["rewrite only"])
        kept = conn.getresponse().read()
        if EMAIL.encode() not in back or EMAIL.encode() in kept or not PLACEHOLDER.search(kept):
            print("   !! rehydration did not put the address back (or the provider saw it)")
            ok = False
        print(f"\n== redaction through Envoy ({rounds} rounds x {per_round} requests, sequential, medians)")
        for label in clean:
            allow, rewrite = e2e[(label, "allow")], e2e[(label, "rewrite")]
            print(f"   {label:6} JSON chat: allow {summary(allow)} | rewrite {summary(rewrite)} | "
                  f"{statistics.median(rewrite) - statistics.median(allow):+.2f} ms")
        print(f"   streamed answer: Anthropic SSE, {STREAM_EVENTS + 3} events, every tenth delta with a placeholder")
        for name in streams:
            print(f"   {name:13} first byte {summary(ttfb[name])} | total {summary(total[name])}")
        added = [statistics.median(v["rehydrated"]) - statistics.median(v["rewrite only"]) for v in (ttfb, total)]
        print(f"   rehydration adds {added[0]:+.2f} ms to the first byte, {added[1]:+.2f} ms to the total (medians)")
    except (RuntimeError, OSError) as e:
        print(f"   !! redaction bench failed: {e} (logs in {workdir})")
        ok = False
    finally:
        if envoy is not None:
            envoy.stop()
        if proc is not None:
            stop(proc)
        provider.close()
    return ok


if __name__ == "__main__":
    sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
