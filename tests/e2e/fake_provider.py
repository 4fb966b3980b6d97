"""A fake LLM provider for end-to-end tests through real Envoy.

This is the only fake of an outside party in the end-to-end tests: real providers cannot be
reached from here. It listens on plain HTTP/1.1 (127.0.0.1, a free port), records every
request that reaches it (method, path, headers, body bytes) and answers 200 with a small
provider-shaped JSON body that includes a `usage` object (Anthropic-, Gemini-, Bedrock- or
OpenAI-shaped, chosen by path). Tests use `requests` to prove what did, or did not, leave the
gateway. A request with `x-fake-echo: 1` gets the text of its last message back as the answer (Anthropic and
OpenAI chat shapes): what the provider read, e.g. placeholders, and what rehydration makes of it.

    with FakeProvider() as provider:
        ...render envoy with --upstream provider.url ...
        assert provider.requests == []
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


def last_text(body: bytes) -> str:
    """The text of the last message of an Anthropic or OpenAI chat body ("" if there is none)."""
    try:
        messages = json.loads(body).get("messages") or []
        content = messages[-1].get("content", "")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def response_for(path: str, text: str = "ok") -> dict[str, Any]:
    """A minimal successful answer in the shape of the provider that `path` belongs to."""
    if path.startswith("/v1/messages"):
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": "claude-fake",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 3},
        }
    if ":generateContent" in path or ":streamGenerateContent" in path or ":countTokens" in path:
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15},
            "usage": {"prompt_tokens": 12, "completion_tokens": 3},
        }
    if path.startswith("/model/"):
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
        }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "gpt-fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's upstream connection pool expects
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.server.owner._record(RecordedRequest(self.command, self.path, headers, body))
        text = last_text(body) if "x-fake-echo" in headers else "ok"
        payload = json.dumps(response_for(self.path.split("?", 1)[0], text)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeProvider


class FakeProvider:
    """Threaded HTTP server on 127.0.0.1 that records requests. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.e2e.fake_provider --port 8080`: serve until Ctrl-C, one line per request received."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="A fake LLM provider (plain HTTP) for the local stack.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--show-text", action="store_true", help="also print each request's last message text")
    args = parser.parse_args(argv)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a background job)
        signal.signal(sig, lambda *_: done.set())
    with FakeProvider(args.host, args.port) as provider:
        print(f"fake provider on {provider.url}: answers 200 to everything, records what reached it", flush=True)
        seen = 0
        while not done.wait(0.1):
            received = provider.requests
            for r in received[seen:]:
                decision = r.headers.get("x-llm-filter-decision", "-")
                workspace = r.headers.get("x-workspace-id", "-")
                region = r.headers.get("x-llm-upstream-region", "-")
                print(f"{r.method} {r.path} host={r.headers.get('host')} bytes={len(r.body)} "
                      f"x-llm-filter-decision={decision} x-workspace-id={workspace} region={region}", flush=True)
                if args.show_text:
                    keys = [f"{k}: {r.headers[k]}" for k in ("authorization", "x-api-key") if k in r.headers]
                    print(f"  text: {last_text(r.body)[:300]}  {'  '.join(keys)}", flush=True)
            seen = len(received)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
