"""Rehydration: the originals put back where the provider's response repeats a placeholder.

    rehydrator_for(content_type, replaced) -> feed(chunk) -> bytes ... finish() -> bytes

JSON bodies, Gemini's JSON-array stream and text: a streaming byte replace. Placeholders are ASCII without
JSON-special characters, so they appear verbatim inside JSON strings; the original is inserted JSON-escaped
(text bodies: as is). Only a tail that is the start of a known placeholder is held back, so the client's bytes
are not delayed beyond it.

SSE (`text/event-stream`: OpenAI, Anthropic, Gemini `alt=sse`) and Bedrock event streams: each event is read
whole (a client cannot use half an event anyway) and its text deltas are followed per stream (choice, content
block, candidate part): a placeholder the model wrote over several events (`<EMA` + `IL_1a2b` + `3c4d>`) is
restored in the event that completes it, the start held back from the earlier ones. An event is re-serialised
only when it changed; a held-back start that never completes is sent in a copy of the event that held it. In
JSON-text deltas (tool-call `arguments`, `partial_json`, tool `input`) the original is escaped for the inner
JSON string as well.

Not supported: placeholders the provider escaped (`\\u003c`), or split into different fields.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

from filter.rewrite.errors import RewriteError
from filter.rewrite.jsontext import escape

_DELTA_KEYS = frozenset(
    {"content", "text", "arguments", "partial_json", "thinking", "delta", "refusal", "reasoning_content",
     "reasoning", "input", "summary"}
)
_JSON_TEXT_KEYS = frozenset({"arguments", "partial_json", "input"})
_FINAL_KEYS = ("finish_reason", "finishReason", "stop_reason", "stopReason")


class Rehydrator(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


def rehydrator_for(content_type: str, replaced: Mapping[str, str]) -> Rehydrator:
    """The rehydrator for a response of `content_type`; with nothing replaced, one that passes bytes through."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not replaced:
        return _Passthrough()
    if media == "text/event-stream":
        return SseRehydrator(replaced)
    if media == "application/vnd.amazon.eventstream":
        return EventStreamRehydrator(replaced)
    if "json" in media:
        return TextRehydrator(replaced, json_escape=True)
    return TextRehydrator(replaced, json_escape=False)


class _Passthrough:
    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


class _Restorer:
    """Finds known placeholders in text, and the start of one at a text's end."""

    def __init__(self, replaced: Mapping[str, str]) -> None:
        self.replaced = dict(replaced)
        self.pattern = re.compile("|".join(re.escape(p) for p in sorted(replaced, key=len, reverse=True)))
        self.bytes_pattern = re.compile(self.pattern.pattern.encode())
        self.longest = max(len(p) for p in replaced)
        self.prefixes = frozenset(p[:i] for p in replaced for i in range(1, len(p)))

    def held(self, text: str) -> int:
        """Where the tail that could start a placeholder begins (len(text) when none)."""
        at = text.rfind("<", max(0, len(text) - self.longest))
        return at if at >= 0 and text[at:] in self.prefixes else len(text)

    def restore(self, text: str, levels: int) -> str:
        """`levels`: 0 plain text, 1 inside a JSON string, 2 inside JSON text inside a JSON string."""
        if "<" not in text:
            return text

        def value(m: re.Match[str]) -> str:
            out = self.replaced[m.group()]
            for _ in range(levels):
                out = escape(out)
            return out

        return self.pattern.sub(value, text)


class TextRehydrator:
    """A byte stream (a JSON body, a JSON-array stream, text): placeholders replaced wherever they appear."""

    def __init__(self, replaced: Mapping[str, str], *, json_escape: bool) -> None:
        self._r = _Restorer(replaced)
        self._escape = json_escape
        self._buf = b""
        self._values = {p.encode(): (escape(v) if json_escape else v).encode("utf-8", "surrogatepass")
                        for p, v in replaced.items()}

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk
        at = buf.rfind(b"<", max(0, len(buf) - self._r.longest))
        hold = len(buf)
        if at >= 0 and buf[at:].decode("ascii", "replace") in self._r.prefixes:
            hold = at
        self._buf = buf[hold:]
        return self._sub(buf[:hold])

    def finish(self) -> bytes:
        out, self._buf = self._sub(self._buf), b""
        return out

    def _sub(self, data: bytes) -> bytes:
        if b"<" not in data:
            return data
        return self._r.bytes_pattern.sub(lambda m: self._values[m.group()], data)


# -- events ----------------------------------------------------------------------------------------------
class _Stitcher:
    """Text deltas of JSON events, followed per stream; placeholders completed across events are restored."""

    def __init__(self, restorer: _Restorer) -> None:
        self._r = restorer
        self._pending: dict[tuple[Any, ...], tuple[str, dict[str, Any], list[Any], Any]] = {}

    def process(self, event: Any, carrier: Any) -> list[tuple[Any, Any, bool]]:
        """Events to emit for `event`: flushed starts first, then the event ((event, carrier, changed))."""
        if not isinstance(event, dict):
            return [*self.flush(), (event, carrier, False)]
        out: list[tuple[Any, Any, bool]] = []
        deltas = list(_strings(event))
        stream_keys = {_stream_key(event, path) for path, _ in deltas if _is_delta(path)}
        for key in [k for k in self._pending if k not in stream_keys]:
            out.append(self._synthetic(key))
        final = any(_final(event, k) for k in _FINAL_KEYS)
        changed = False
        for path, value in deltas:
            key = _stream_key(event, path)
            text = value
            if _is_delta(path) and key in self._pending:
                text = self._pending.pop(key)[0] + text
            hold = len(text) if final or not _is_delta(path) else self._r.held(text)
            new = self._r.restore(text[:hold], _json_text(event, path))  # json.dumps escapes the outer level
            if hold < len(text):
                self._pending[key] = (text[hold:], event, path, carrier)
            if new != value:
                _set(event, path, new)
                changed = True
        out.append((event, carrier, changed))
        return out

    def flush(self) -> list[tuple[Any, Any, bool]]:
        return [self._synthetic(key) for key in list(self._pending)]

    def _synthetic(self, key: tuple[Any, ...]) -> tuple[Any, Any, bool]:
        """A copy of the event that held a start back, carrying only that start (it never became a placeholder)."""
        tail, event, path, carrier = self._pending.pop(key)
        clone = copy.deepcopy(event)
        for p, _ in list(_strings(clone)):
            if _is_delta(p):
                _set(clone, p, "")
        _set(clone, path, tail)
        return clone, carrier, True


def _strings(node: Any, path: list[Any] | None = None) -> list[tuple[list[Any], str]]:
    out: list[tuple[list[Any], str]] = []
    stack: list[tuple[Any, list[Any]]] = [(node, path or [])]
    while stack:
        n, p = stack.pop()
        if isinstance(n, str):
            out.append((p, n))
        elif isinstance(n, dict):
            stack += [(v, [*p, k]) for k, v in reversed(list(n.items()))]
        elif isinstance(n, list):
            stack += [(v, [*p, i]) for i, v in reversed(list(enumerate(n)))]
    return out


def _is_delta(path: list[Any]) -> bool:
    return bool(path) and isinstance(path[-1], str) and path[-1] in _DELTA_KEYS


def _json_text(event: dict[str, Any], path: list[Any]) -> int:
    last = path[-1] if path else None
    if last in _JSON_TEXT_KEYS:
        return 1
    kind = event.get("type")
    return 1 if last == "delta" and isinstance(kind, str) and "arguments" in kind else 0


def _stream_key(event: dict[str, Any], path: list[Any]) -> tuple[Any, ...]:
    """The path, with list positions replaced by the element's own `index` (interleaved choices) and the
    event's top-level indices (content blocks, output items)."""
    parts: list[Any] = [(k, v) for k, v in sorted(event.items())
                        if isinstance(v, int) and not isinstance(v, bool) and k.lower().endswith("index")]
    node: Any = event
    for step in path:
        child = node[step]
        if isinstance(step, int) and isinstance(child, dict) and isinstance(child.get("index"), int):
            parts.append(("index", child["index"]))
        else:
            parts.append(step)
        node = child
    return tuple(parts)


def _final(node: Any, key: str) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n.get(key) is not None:
                return True
            stack += n.values()
        elif isinstance(n, list):
            stack += n
    return False


def _set(node: Any, path: list[Any], value: str) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _dump(event: Any) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


# -- SSE -------------------------------------------------------------------------------------------------
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class SseRehydrator:
    """`text/event-stream`: JSON `data:` of each event through the stitcher; other lines as sent."""

    def __init__(self, replaced: Mapping[str, str]) -> None:
        self._r = _Restorer(replaced)
        self._stitch = _Stitcher(self._r)
        self._buf = b""
        self._text = TextRehydrator(replaced, json_escape=False)

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out: list[bytes] = []
        while (m := _EVENT_END.search(self._buf)) is not None:
            raw, self._buf = self._buf[: m.end()], self._buf[m.end() :]
            out.append(self._event(raw, m.group()))
        return b"".join(out)

    def finish(self) -> bytes:
        tail, self._buf = self._buf, b""
        out = [self._emit(e, c) for e, c, _ in self._stitch.flush()]
        if tail:
            out.append(self._text.feed(tail) + self._text.finish())
        return b"".join(out)

    def _event(self, raw: bytes, end: bytes) -> bytes:
        body = raw[: -len(end)]
        lines = re.split(rb"\r\n|\n|\r", body)
        data = [ln[5:].removeprefix(b" ") for ln in lines if ln.startswith(b"data:")]
        other = [ln for ln in lines if not ln.startswith(b"data:")]
        try:
            event = json.loads(b"\n".join(data)) if data else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            flushed = [self._emit(e, c) for e, c, _ in self._stitch.flush()]
            return b"".join(flushed) + self._text.feed(raw) + self._text.finish()
        out: list[bytes] = []
        for e, (carrier, eol), changed in self._stitch.process(event, (other, end)):
            out.append(self._emit(e, (carrier, eol)) if changed else raw)
        return b"".join(out)

    @staticmethod
    def _emit(event: Any, carrier: tuple[list[bytes], bytes]) -> bytes:
        other, end = carrier
        nl = end[: len(end) // 2]
        lines = [*[ln for ln in other if ln], b"data: " + _dump(event).encode("utf-8", "surrogatepass")]
        return nl.join(lines) + end


# -- Bedrock event streams --------------------------------------------------------------------------------
_PRELUDE = struct.Struct(">III")


class EventStreamRehydrator:
    """`application/vnd.amazon.eventstream`: each frame's JSON payload through the stitcher, re-framed with
    new lengths and CRCs. InvokeModelWithResponseStream payloads carry the model's own event, base64 in `bytes`."""

    def __init__(self, replaced: Mapping[str, str]) -> None:
        self._r = _Restorer(replaced)
        self._stitch = _Stitcher(self._r)
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out: list[bytes] = []
        while len(self._buf) >= 12:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buf)
            if zlib.crc32(self._buf[:8]) != prelude_crc or total < 16 + headers_len:
                raise RewriteError("event stream frame with a bad prelude")
            if len(self._buf) < total:
                break
            frame, self._buf = self._buf[:total], self._buf[total:]
            if zlib.crc32(frame[:-4]) != struct.unpack(">I", frame[-4:])[0]:
                raise RewriteError("event stream frame with a bad message CRC")
            out.append(self._frame(frame, headers_len))
        return b"".join(out)

    def finish(self) -> bytes:
        out = b"".join(self._emit(e, c) for e, c, _ in self._stitch.flush())
        if self._buf:
            raise RewriteError("event stream ended inside a frame")
        return out

    def _frame(self, frame: bytes, headers_len: int) -> bytes:
        headers = frame[12 : 12 + headers_len]
        payload = frame[12 + headers_len : -4]
        try:
            outer = json.loads(payload)
        except ValueError:
            return frame
        inner: Any = None
        if isinstance(outer, dict) and isinstance(outer.get("bytes"), str):
            try:
                inner = json.loads(base64.b64decode(outer["bytes"], validate=True))
            except (binascii.Error, ValueError):
                inner = None
        wrapped = inner is not None
        out: list[bytes] = []
        for e, carrier, changed in self._stitch.process(inner if wrapped else outer, (headers, outer if wrapped else None)):
            out.append(self._emit(e, carrier) if changed else frame)
        return b"".join(out)

    @staticmethod
    def _emit(event: Any, carrier: tuple[bytes, Any]) -> bytes:
        headers, wrapper = carrier
        body = _dump(event).encode("utf-8", "surrogatepass")
        if wrapper is not None:
            outer = dict(wrapper)
            outer["bytes"] = base64.b64encode(body).decode("ascii")
            body = _dump(outer).encode()
        return frame(headers, body)


def frame(headers: bytes, payload: bytes) -> bytes:
    """One event stream message: prelude (lengths and their CRC), headers, payload, CRC of all before it."""
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))

