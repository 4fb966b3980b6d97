"""A fake LLM provider for every API the usage observer reads (real providers cannot be called from tests).

It answers with the recorded-shape bodies of tests/usage/samples.py, whose usage numbers are known: OpenAI chat
(JSON; SSE with or without `stream_options.include_usage`), OpenAI Responses (JSON, SSE), Anthropic Messages
(JSON, SSE), Gemini (`generateContent`, `streamGenerateContent?alt=sse`), Bedrock Converse (JSON) and
ConverseStream (AWS event stream). Streamed answers go out in HTTP/1.1 chunks, one event per chunk, as providers
send them. `x-test-status: N` answers that error status instead. Each answer's bytes are kept by the decision id
Envoy forwarded in `x-llm-filter-id`, so a test can compare them with what its client received.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.usage import samples

SSE = "text/event-stream"
EVENT_STREAM = "application/vnd.amazon.eventstream"
JSON = "application/json"
ERROR = b'{"error":{"message":"The server is overloaded.","type":"server_error","code":null}}'


def _sse_events(body: bytes) -> list[bytes]:
    """An SSE body cut after each blank line: one chunk per event."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in body else b"\n\n"
    return [part + sep for part in body.split(sep) if part]


def _frames(body: bytes) -> list[bytes]:
    """An AWS event stream cut into its messages (each starts with its 4-byte big-endian total length)."""
    out, at = [], 0
    while at < len(body):
        size = int.from_bytes(body[at:at + 4], "big")
        out.append(body[at:at + size])
        at += size
    return out


def answer_for(path: str, request: dict[str, Any]) -> tuple[str, list[bytes]]:
    """(content type, body chunks) the provider sends for `path` (as the provider sees it) and request body."""
    stream = bool(request.get("stream"))
    if path.startswith("/v1/chat/completions"):
        if not stream:
            return JSON, [samples.OPENAI_CHAT_JSON]
        include = bool((request.get("stream_options") or {}).get("include_usage"))
        return SSE, _sse_events(samples.openai_chat_sse(include))
    if path.startswith("/v1/responses"):
        return (SSE, _sse_events(samples.RESPONSES_SSE)) if stream else (JSON, [samples.RESPONSES_JSON])
    if path.startswith("/v1/messages"):
        return (SSE, _sse_events(samples.anthropic_sse())) if stream else (JSON, [samples.ANTHROPIC_JSON])
    if ":streamGenerateContent" in path:
        return SSE, _sse_events(samples.GEMINI_SSE)
    if ":generateContent" in path:
        return JSON, [samples.GEMINI_JSON]
    if path.endswith("/converse-stream"):
        return EVENT_STREAM, _frames(samples.converse_stream())
    if path.endswith("/converse"):
        return JSON, [samples.CONVERSE_JSON]
    raise ValueError(f"no fake answer for {path}")


class FakeUsageProvider:
    """The fake provider on 127.0.0.1:`port`; `sent[decision id]` is the body it answered that request with."""

    def __init__(self) -> None:
        self.sent: dict[str, bytes] = {}
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_POST(self) -> None:  # noqa: N802 (http.server name)
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                fake.paths.append(self.path)
                status = int(self.headers.get("x-test-status") or 200)
                if status != 200:
                    content_type, chunks = JSON, [ERROR]
                else:
                    content_type, chunks = answer_for(self.path, json.loads(raw or b"{}"))
                fake.sent[self.headers.get("x-llm-filter-id", "")] = b"".join(chunks)
                self.send_response(status)
                self.send_header("content-type", content_type)
                if len(chunks) == 1:
                    self.send_header("content-length", str(len(chunks[0])))
                    self.end_headers()
                    self.wfile.write(chunks[0])
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
