"""A fake LLM provider whose answers the official SDKs parse, streams included.

Real providers cannot be reached from here, so this stands in for them behind real Envoy. Unlike
tests/e2e/fake_provider.py (one small JSON body for everything) it answers each provider's API the way
that provider does, so `anthropic`, `openai`, `google-genai` and `boto3` read the answer without error:

| request (path as it reaches the provider, Envoy has stripped any gateway prefix) | answer |
|---|---|
| `/v1/messages`, `"stream": true` | Anthropic SSE: message_start ... message_stop |
| `/v1/messages` | Anthropic message JSON |
| `.../chat/completions`, `"stream": true` | OpenAI SSE chat.completion.chunk lines, then `data: [DONE]` |
| `.../chat/completions` | OpenAI chat.completion JSON |
| `...:streamGenerateContent?alt=sse` | Gemini SSE, one GenerateContentResponse per event |
| `...:generateContent` | Gemini GenerateContentResponse JSON |
| `/model/{id}/converse-stream` | Bedrock ConverseStream in AWS event-stream framing (binary, CRC-checked) |
| `/model/{id}/converse` | Bedrock Converse JSON |

Streams are sent with chunked transfer encoding, one event per chunk, as the providers do. Every request
that reaches it is recorded (tests prove what did, or did not, leave the gateway).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.recording import OwnedServer, RecordingServer

from ..fake_provider import RecordedRequest

REPLY = "Hello from the fake provider."
USAGE_IN, USAGE_OUT = 12, 6


# --- Anthropic ----------------------------------------------------------------------------------


def anthropic_message(text: str = REPLY) -> dict[str, Any]:
    return {
        "id": "msg_fake01",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
    }


def anthropic_events(message: dict[str, Any]) -> Iterator[bytes]:
    """The SSE events the Messages API streams for `message` (text and tool_use blocks)."""
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}
    yield sse({"type": "message_start", "message": start}, event="message_start")
    for index, block in enumerate(message["content"]):
        first: dict[str, Any]
        if block["type"] == "text":
            first, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:  # tool_use: the input arrives as JSON text
            first = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield sse({"type": "content_block_start", "index": index, "content_block": first}, event="content_block_start")
        yield sse({"type": "content_block_delta", "index": index, "delta": delta}, event="content_block_delta")
        yield sse({"type": "content_block_stop", "index": index}, event="content_block_stop")
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield sse({"type": "message_delta", "delta": stop, "usage": {"output_tokens": USAGE_OUT}}, event="message_delta")
    yield sse({"type": "message_stop"}, event="message_stop")


# --- OpenAI -------------------------------------------------------------------------------------


def openai_completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake01",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop",
                     "logprobs": None}],  # fmt: skip
        "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT},
    }


def openai_chunks() -> Iterator[bytes]:
    base = {"id": "chatcmpl-fake01", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-fake"}
    deltas = [({"role": "assistant", "content": ""}, None), ({"content": REPLY}, None), ({}, "stop")]
    for delta, finish in deltas:
        yield sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})
    yield b"data: [DONE]\n\n"


# --- Gemini -------------------------------------------------------------------------------------


def gemini_response(text: str = REPLY, finish: str | None = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": USAGE_IN, "candidatesTokenCount": USAGE_OUT, "totalTokenCount": USAGE_IN + USAGE_OUT}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-fake"}


def gemini_events() -> Iterator[bytes]:
    head, tail = REPLY[:6], REPLY[6:]
    yield sse(gemini_response(head, finish=None))
    yield sse(gemini_response(tail))


# --- Bedrock ------------------------------------------------------------------------------------


def bedrock_converse() -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": REPLY}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": USAGE_IN, "outputTokens": USAGE_OUT, "totalTokens": USAGE_IN + USAGE_OUT},
        "metrics": {"latencyMs": 1},
    }


def _event_header(name: str, value: str) -> bytes:
    key, val = name.encode(), value.encode()
    return bytes([len(key)]) + key + b"\x07" + struct.pack(">H", len(val)) + val  # 7 = string


def event_stream_message(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message: prelude (total, headers length, CRC32), headers, payload, CRC32."""
    headers = (_event_header(":event-type", event_type) + _event_header(":content-type", "application/json")
               + _event_header(":message-type", "event"))  # fmt: skip
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def bedrock_events() -> Iterator[bytes]:
    yield event_stream_message("messageStart", {"role": "assistant"})
    yield event_stream_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": REPLY}})
    yield event_stream_message("contentBlockStop", {"contentBlockIndex": 0})
    yield event_stream_message("messageStop", {"stopReason": "end_turn"})
    usage = {"inputTokens": USAGE_IN, "outputTokens": USAGE_OUT, "totalTokens": USAGE_IN + USAGE_OUT}
    yield event_stream_message("metadata", {"usage": usage, "metrics": {"latencyMs": 1}})


# --- the server ---------------------------------------------------------------------------------


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


SSE = "text/event-stream"
EVENT_STREAM = "application/vnd.amazon.eventstream"


def answer(path: str, body: bytes) -> tuple[str, dict[str, Any] | Iterator[bytes]]:
    """(content-type, JSON document or stream of chunks) for a request to `path` (query included)."""
    route = path.split("?", 1)[0]
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = {}
    stream = isinstance(doc, dict) and doc.get("stream") is True
    if route.endswith("/v1/messages"):
        return (SSE, anthropic_events(anthropic_message())) if stream else ("application/json", anthropic_message())
    if route.endswith("/chat/completions"):
        return (SSE, openai_chunks()) if stream else ("application/json", openai_completion())
    if ":streamGenerateContent" in route:
        return SSE, gemini_events()
    if ":generateContent" in route:
        return "application/json", gemini_response()
    if route.endswith("/converse-stream"):
        return EVENT_STREAM, bedrock_events()
    if route.endswith("/converse"):
        return "application/json", bedrock_converse()
    return "application/json", {"error": {"type": "not_found", "message": f"the fake provider has no {route}"}}


class ProviderHandler(BaseHTTPRequestHandler):
    """Records the request, then writes what `self.server.owner.answer` returns."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as Envoy's upstream pool expects
    server: OwnedServer

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(self.command, self.path, headers, body)
        self.server.owner.record(request)
        content_type, payload = self.server.owner.answer(request)
        self.send_response(200)
        self.send_header("content-type", content_type)
        if isinstance(payload, dict):
            data = json.dumps(payload).encode()
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in payload:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    do_POST = do_GET = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class SdkProvider(RecordingServer[RecordedRequest]):
    """Threaded HTTP server on 127.0.0.1 (a free port) that records requests. Use as a context manager.

    Subclasses change the answers by overriding `answer` (tests/agent/ scripts whole conversations).
    """

    thread_name = "sdk-provider"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ProviderHandler, host, port)

    def answer(self, request: RecordedRequest) -> tuple[str, dict[str, Any] | Iterator[bytes]]:
        return answer(request.path, request.body)

