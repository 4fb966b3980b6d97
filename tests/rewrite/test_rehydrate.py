"""Responses rehydrated: the originals put back where the provider (faked here: canned response bytes) repeats a
placeholder, in JSON bodies, SSE streams and Bedrock event streams, however the stream is cut."""

from __future__ import annotations

import base64
import json
import struct

from botocore.eventstream import EventStreamBuffer

from filter.rewrite import rehydrator_for
from filter.rewrite.rehydrate import frame
from tests.rewrite.helpers import PLACEHOLDERS

EMAIL = "ravi.menon84@gmail.com"
ODD = 'pa"ss\\word\nline'  # a value that needs JSON escaping
P_EMAIL = PLACEHOLDERS.make("EMAIL", EMAIL)
P_ODD = PLACEHOLDERS.make("SECRET:generic-secret-assignment", ODD)
REPLACED = {P_EMAIL: EMAIL, P_ODD: ODD}


def run_chunks(content_type: str, data: bytes, cuts: list[int]) -> bytes:
    r = rehydrator_for(content_type, REPLACED)
    out, pos = [], 0
    for cut in [*cuts, len(data)]:
        out.append(r.feed(data[pos:cut]))
        pos = cut
    out.append(r.finish())
    return b"".join(out)


def test_json_body_split_at_every_point() -> None:
    body = json.dumps({"choices": [{"message": {"content": f"mail {P_EMAIL} pw {P_ODD}"}}]}).encode()
    expected = {"choices": [{"message": {"content": f"mail {EMAIL} pw {ODD}"}}]}
    for cut in range(len(body) + 1):
        assert json.loads(run_chunks("application/json", body, [cut])) == expected


def test_first_bytes_are_not_held_back() -> None:
    r = rehydrator_for("application/json", REPLACED)
    assert r.feed(b'{"a": "hello <EM') == b'{"a": "hello '
    assert r.feed(b"AIL") == b""
    assert r.feed(b"PLE>") == b"<EMAILPLE>"  # not a placeholder after all: sent as is
    assert r.finish() == b""


def sse(events: list[dict[str, object]]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def sse_events(data: bytes) -> list[dict[str, object]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.startswith("data: ") and block != "data: [DONE]":
            out.append(json.loads(block[6:]))
    return out


def openai_text(data: bytes) -> str:
    return "".join(str(e["choices"][0]["delta"].get("content") or "")  # type: ignore[index]
                   for e in sse_events(data) if e["choices"])  # type: ignore[index]


def test_openai_sse_placeholder_split_across_events_and_chunks() -> None:
    text = f"Write to {P_EMAIL} with {P_ODD}."
    pieces = [text[i: i + 3] for i in range(0, len(text), 3)]  # tokens cut placeholders anywhere
    events: list[dict[str, object]] = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    data = sse(events)
    for cut in range(0, len(data) + 1, 7):
        out = run_chunks("text/event-stream", data, [cut])
        assert openai_text(out) == f"Write to {EMAIL} with {ODD}."
        assert out.endswith(b"data: [DONE]\n\n")


def test_sse_every_split_point_of_one_event() -> None:
    data = sse([{"choices": [{"index": 0, "delta": {"content": f"a {P_EMAIL} b"}}]}])
    for cut in range(len(data) + 1):
        assert openai_text(run_chunks("text/event-stream", data, [cut])) == f"a {EMAIL} b"


def test_unfinished_placeholder_start_is_sent_before_the_next_event() -> None:
    data = sse([{"choices": [{"index": 0, "delta": {"content": "x <EMA"}}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])
    out = run_chunks("text/event-stream", data, [])
    assert openai_text(out) == "x <EMA"
    assert sse_events(out)[-1]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_anthropic_sse_text_and_tool_input_json() -> None:
    args = json.dumps({"to": P_ODD})
    events: list[dict[str, object]] = [{"type": "message_start", "message": {"content": []}}]
    for i in range(0, len(args), 5):
        events.append({"type": "content_block_delta", "index": 1,
                       "delta": {"type": "input_json_delta", "partial_json": args[i: i + 5]}})
    events.append({"type": "content_block_stop", "index": 1})
    data = b"".join(b"event: x\ndata: " + json.dumps(e).encode() + b"\n\n" for e in events)
    out = run_chunks("text/event-stream", data, [len(data) // 3])
    partial = "".join(e["delta"]["partial_json"] for e in sse_events(out.replace(b"event: x\n", b""))  # type: ignore[index]
                      if e["type"] == "content_block_delta")
    assert json.loads(partial) == {"to": ODD}  # the inner JSON is escaped for its own string
    assert out.count(b"event: x\n") == out.count(b"data: ")


def string_header(name: str, value: str) -> bytes:
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()


def decode_frames(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    """botocore's parser: it checks both CRCs and the lengths of every frame."""
    buf = EventStreamBuffer()
    buf.add_data(data)
    return [(m.headers, m.payload) for m in buf]


def test_bedrock_converse_stream_is_reframed() -> None:
    text = f"mail {P_EMAIL} now"
    headers = string_header(":event-type", "contentBlockDelta") + string_header(":message-type", "event")
    frames = [frame(headers, json.dumps({"contentBlockIndex": 0, "delta": {"text": text[i: i + 4]}, "p": "abc"}).encode())
              for i in range(0, len(text), 4)]
    stop = string_header(":event-type", "contentBlockStop") + string_header(":message-type", "event")
    frames.append(frame(stop, json.dumps({"contentBlockIndex": 0, "p": "ab"}).encode()))
    data = b"".join(frames)
    for cut in range(0, len(data) + 1, 11):
        out = decode_frames(run_chunks("application/vnd.amazon.eventstream", data, [cut]))
        joined = "".join(json.loads(p).get("delta", {}).get("text", "") for h, p in out)
        assert joined == f"mail {EMAIL} now"
        assert all(h[":message-type"] == "event" for h, _ in out)


def test_bedrock_invoke_stream_base64_chunks() -> None:
    text = f"pw {P_ODD}!"
    headers = string_header(":event-type", "chunk") + string_header(":message-type", "event")
    frames = []
    for i in range(0, len(text), 6):
        inner = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text[i: i + 6]}}
        frames.append(frame(headers, json.dumps({"bytes": base64.b64encode(json.dumps(inner).encode()).decode()}).encode()))
    frames.append(frame(headers, json.dumps({"bytes": base64.b64encode(
        json.dumps({"type": "content_block_stop", "index": 0}).encode()).decode()}).encode()))
    out = decode_frames(run_chunks("application/vnd.amazon.eventstream", b"".join(frames), [5, 40]))
    events = [json.loads(base64.b64decode(json.loads(p)["bytes"])) for _, p in out]
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == f"pw {ODD}!"


def test_gemini_json_array_stream() -> None:
    body = json.dumps([{"candidates": [{"content": {"parts": [{"text": f"hi {P_EMAIL}"}]}}]}]).encode()
    out = run_chunks("application/json", body, [len(body) // 2])
    assert json.loads(out)[0]["candidates"][0]["content"]["parts"][0]["text"] == f"hi {EMAIL}"


def test_nothing_replaced_passes_bytes_through() -> None:
    r = rehydrator_for("text/event-stream", {})
    assert r.feed(b"data: <EMA") == b"data: <EMA" and r.finish() == b""
