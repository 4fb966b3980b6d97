"""Provider responses shaped like recorded ones (ids shortened). Written here: no real provider is called."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any


def sse(*events: tuple[str | None, Any], crlf: bool = False) -> bytes:
    """An SSE body; each event (name or None, JSON value or raw string)."""
    eol = "\r\n" if crlf else "\n"
    out = []
    for name, data in events:
        lines = [] if name is None else [f"event: {name}"]
        lines.append("data: " + (data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)))
        out.append(eol.join(lines) + eol + eol)
    return "".join(out).encode()


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (prelude, CRCs) as Bedrock sends it."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(payload, separators=(",", ":")).encode())


# -- OpenAI chat completions

OPENAI_CHAT_JSON = json.dumps({
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?",
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_c7ca0ebaca",
}, indent=2).encode()


def _chat_chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None,
                choices: bool = True) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
                             "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb",
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                             if choices else []}
    if usage is not False:
        chunk["usage"] = usage
    return chunk


CHAT_TEXT = ["Hé", "llo", "! Wie", " kann ich 🤖", " helfen?"]


def openai_chat_sse(include_usage: bool) -> bytes:
    chunks = [_chat_chunk({"role": "assistant", "content": ""}, usage=None if include_usage else False)]
    chunks += [_chat_chunk({"content": t}, usage=None if include_usage else False) for t in CHAT_TEXT]
    chunks.append(_chat_chunk({}, finish="stop", usage=None if include_usage else False))
    if include_usage:
        chunks.append(_chat_chunk({}, usage={"prompt_tokens": 1210, "completion_tokens": 14, "total_tokens": 1224,
                                             "prompt_tokens_details": {"cached_tokens": 1024}},
                                  choices=False))
    return sse(*[(None, c) for c in chunks], (None, "[DONE]"))


# -- OpenAI Responses

RESPONSES_JSON = json.dumps({
    "id": "resp_67ccd2bed1ec8190", "object": "response", "created_at": 1741476542, "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [{"type": "message", "id": "msg_67ccd2bf17f0", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "In a peaceful grove beneath a silver moon...",
                             "annotations": []}]}],
    "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 87,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123},
}).encode()


def _response(status: str, usage: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1741290958, "status": status,
            "model": "gpt-4.1-2025-04-14", "output": [], "usage": usage}


RESPONSES_SSE = sse(
    ("response.created", {"type": "response.created", "sequence_number": 0, "response": _response("in_progress", None)}),
    ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
                                    "item": {"id": "msg_1", "type": "message", "status": "in_progress",
                                             "role": "assistant", "content": []}}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1",
                                    "output_index": 0, "content_index": 0, "delta": "Hi"}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1",
                                    "output_index": 0, "content_index": 0, "delta": " there!"}),
    ("response.completed", {"type": "response.completed", "sequence_number": 4, "response": _response(
        "completed", {"input_tokens": 37, "input_tokens_details": {"cached_tokens": 5}, "output_tokens": 11,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 48})}),
)

# -- Anthropic Messages

ANTHROPIC_JSON = json.dumps({
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}], "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 2095, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000,
              "output_tokens": 503, "service_tier": "standard"},
}).encode()


def anthropic_sse(with_delta_usage: bool = True) -> bytes:
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [],
            "model": "claude-opus-4-1-20250805", "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1800,
                      "output_tokens": 2}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Okay, let's check the weather"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": " for San Francisco, CA — ünïcödé:"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "ncisco, CA\"}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ]
    if with_delta_usage:
        events += [
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                               "usage": {"output_tokens": 89}}),
            ("message_stop", {"type": "message_stop"}),
        ]
    return sse(*events)


# -- Gemini

def _gemini(text: str, finish: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash",
            "responseId": "mJ9FaKOlGZm2nvgPk4TBqQw"}


GEMINI_FINAL_USAGE = {"promptTokenCount": 8, "candidatesTokenCount": 22, "totalTokenCount": 1046,
                      "cachedContentTokenCount": 4, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
                      "thoughtsTokenCount": 1016}
GEMINI_CHUNKS = [
    _gemini("The", None, {"promptTokenCount": 8, "totalTokenCount": 1000, "thoughtsTokenCount": 992}),
    _gemini(" sky is blue because of Rayleigh", None, {"promptTokenCount": 8, "candidatesTokenCount": 9,
                                                       "totalTokenCount": 1014, "thoughtsTokenCount": 997}),
    _gemini(" scattering.", "STOP", GEMINI_FINAL_USAGE),
]
GEMINI_JSON = json.dumps(_gemini("The sky is blue because of Rayleigh scattering.", "STOP", GEMINI_FINAL_USAGE),
                         indent=2).encode()
GEMINI_SSE = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in GEMINI_CHUNKS)
# streamGenerateContent without alt=sse: one JSON array, streamed element by element, pretty-printed
GEMINI_ARRAY = ("[" + ",\r\n".join(json.dumps(c, indent=2) for c in GEMINI_CHUNKS) + "]").encode()

# -- Bedrock

CONVERSE_JSON = json.dumps({
    "output": {"message": {"role": "assistant", "content": [{"text": "Here is a short poem about the sea."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 30, "outputTokens": 628, "totalTokens": 1158, "cacheReadInputTokens": 400,
              "cacheWriteInputTokens": 100},
    "metrics": {"latencyMs": 1275},
}).encode()


def converse_stream(with_metadata: bool = True) -> bytes:
    frames = [
        event("messageStart", {"p": "abcdefghijk", "role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Why did the"}, "p": "abcd"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " scarecrow win an award? ✨"},
                                    "p": "abcdefghijklmnopqrstuvwxyzABCDEF"}),
        event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopq"}),
        event("messageStop", {"p": "abcdefgh", "stopReason": "end_turn"}),
    ]
    if with_metadata:
        frames.append(event("metadata", {"metrics": {"latencyMs": 638}, "p": "abcdefghijklmnopqrstu",
                                         "usage": {"inputTokens": 19, "outputTokens": 21, "totalTokens": 40}}))
    return b"".join(frames)
