"""Usage from a provider response fed chunk by chunk, in bounded memory.

    parser = UsageParser("anthropic.messages", status=200, content_type="text/event-stream")
    for chunk in body: parser.feed(chunk)
    usage = parser.finish()          # complete=False when the stream was cut off

The framing comes from the content type (SSE, AWS event stream, JSON or a streamed JSON array; sniffed from
the first byte when the type says nothing), the reader from the API (`filter.formats.routes.Route.api`).
Chunks may split anywhere. Memory: one SSE event / event-stream message / depth-1 JSON item (each capped),
one batch of text for the token estimate, and the decompressor's window.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import brotli

from filter.usage.estimate import CountText, TextTokens
from filter.usage.eventstream import EventStreamDecoder, HeaderValue
from filter.usage.jsonstream import JsonSplitter
from filter.usage.model import Usage
from filter.usage.providers import READERS, Reader, Tally
from filter.usage.sse import SseDecoder

log = logging.getLogger(__name__)

MAX_ITEM_BYTES = 1024 * 1024  # one SSE event, event-stream message or top-level JSON member kept at most
MAX_DECODED_BYTES = 256 * 1024 * 1024  # decompressed bytes read at most (a compression bomb stops here)
_PIECE = 64 * 1024  # decompressed output handed on per step


class _Inflate:
    """Streaming content decoding: gzip, deflate (zlib or raw), br; output in bounded pieces."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        self._brotli: Any = None
        self._raw_tried = False
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(47)  # gzip or zlib header, detected
        elif encoding == "br":
            self._brotli = brotli.Decompressor()
        else:
            raise ValueError(f"content-encoding {encoding!r} is not read")

    def feed(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        if self._brotli is not None:
            out = self._brotli.process(data, output_buffer_limit=_PIECE)
            while True:
                if out:
                    sink(out)
                if self._brotli.can_accept_more_data() or self._brotli.is_finished():
                    return
                out = self._brotli.process(b"", output_buffer_limit=_PIECE)
        try:
            out = self._zlib.decompress(data, _PIECE)
        except zlib.error:
            if self.encoding != "deflate" or self._raw_tried:
                raise
            self._raw_tried = True  # "deflate" sent as raw deflate, as some servers do
            self._zlib = zlib.decompressobj(-15)
            out = self._zlib.decompress(data, _PIECE)
        self._raw_tried = True
        while True:
            if out:
                sink(out)
            tail = self._zlib.unconsumed_tail
            if not tail:
                return
            out = self._zlib.decompress(tail, _PIECE)


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name, "").strip()


class UsageParser:
    """Reads one response. `feed` and `finish` never raise: a malformed body gives an estimate, not an error."""

    def __init__(self, api: str, *, status: int = 200, content_type: str = "", content_encoding: str = "",
                 headers: Mapping[str, str] | None = None, count_text: CountText | None = None,
                 prompt_tokens: int | None = None, count_only: bool = False,
                 max_item_bytes: int = MAX_ITEM_BYTES) -> None:
        """`api`: Route.api ("openai.chat", ...); `headers`: response headers, lower-case names (Bedrock
        InvokeModel reports usage there); `count_text`: token counter for the estimate (tiktoken's
        encode_ordinary length); `prompt_tokens`: the filter's own prompt count, the input estimate when the
        provider's is missing; `count_only`: a token-counting call (free, no usage)."""
        self.api = api
        self.status = status
        self._reader: Reader | None = READERS.get(api)
        self._tally = Tally(TextTokens(count_text))
        self._prompt_tokens = prompt_tokens
        self._count_only = count_only
        self._max = max_item_bytes
        self._body_bytes = 0
        self._decoded_bytes = 0
        self._framing: SseDecoder | JsonSplitter | EventStreamDecoder | None = None
        self._dropped = False  # the rest of the body is not read (bad encoding, over the decoded limit)
        self._inflate: _Inflate | None = None
        media = content_type.split(";", 1)[0].strip().lower()
        self._media = media
        encoding = content_encoding.strip().lower()
        if encoding and encoding != "identity":
            try:
                self._inflate = _Inflate(encoding)
            except ValueError:
                log.warning("response content-encoding %r not read; usage will be estimated", encoding)
                self._dropped = True
        if self.ignored:
            return
        if headers is not None and api == "bedrock.invoke":
            self._invoke_headers(headers)

    @property
    def ignored(self) -> bool:
        """Errors (the caller releases the reservation) and token-counting calls have no usage."""
        return self.status >= 400 or self.status < 100 or self._count_only

    @property
    def model(self) -> str | None:
        return self._tally.model

    @property
    def buffered(self) -> int:
        """Bytes (or characters) held between chunks: bounded whatever the body's size."""
        held = self._tally.text.buffered_chars
        if self._framing is not None:
            held += self._framing.buffered
        return held

    def feed(self, chunk: bytes) -> None:
        if self.ignored or not chunk:
            return
        self._body_bytes += len(chunk)
        if self._dropped:
            self._tally.text.add_unparsed(len(chunk))
            return
        try:
            if self._inflate is not None:
                self._inflate.feed(chunk, self._decoded)
            else:
                self._decoded(chunk)
        except Exception:  # a body that cannot be read must not lose the response: it is estimated
            log.warning("%s response body could not be read; usage will be estimated", self.api, exc_info=True)
            self._dropped = True
            self._tally.text.add_unparsed(len(chunk))

    def finish(self, complete: bool = True) -> Usage | None:
        """The usage: None for an error status (the caller releases its reservation), zero for a
        token-counting call, `estimated` when the body carried no final usage. `complete`: the body ended
        normally (False: cut off, the stream was cancelled); the estimate is the same either way."""
        if self.status >= 400 or self.status < 100:
            return None
        if self._count_only:
            return Usage(0, 0)
        try:
            if self._framing is not None and not self._dropped:
                self._framing.finish()
        except Exception:
            log.warning("%s response end could not be read", self.api, exc_info=True)
        tally = self._tally
        if tally.final:
            return Usage(tally.input_tokens or 0, tally.output_tokens or 0, tally.cache_read_tokens,
                         tally.cache_write_tokens, estimated=False)
        # The provider's last partial count is a floor (Anthropic's message_start, Gemini's running counts).
        estimated_output = max(tally.output_tokens or 0, tally.text.tokens())
        input_tokens = tally.input_tokens if tally.input_tokens is not None else (self._prompt_tokens or 0)
        return Usage(input_tokens, estimated_output, tally.cache_read_tokens, tally.cache_write_tokens,
                     estimated=True)

    # -- internals

    def _decoded(self, data: bytes) -> None:
        self._decoded_bytes += len(data)
        if self._decoded_bytes > MAX_DECODED_BYTES:
            if not self._dropped:
                log.warning("%s response decodes past %d bytes; the rest is estimated", self.api, MAX_DECODED_BYTES)
            self._dropped = True
            self._tally.text.add_unparsed(len(data))
            return
        if self._framing is None:
            self._framing = self._choose_framing(data)
        self._framing.feed(data)

    def _choose_framing(self, first: bytes) -> SseDecoder | JsonSplitter | EventStreamDecoder:
        media = self._media
        if media == "text/event-stream":
            return SseDecoder(self._on_sse, self._tally.text.add_unparsed, self._max)
        if media == "application/vnd.amazon.eventstream":
            return EventStreamDecoder(self._on_frame, self._tally.text.add_unparsed, self._max)
        if "json" in media:
            return JsonSplitter(self._on_json, self._tally.text.add_unparsed, self._max)
        # No or an unhelpful content type: the first byte tells.
        lead = first.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
        if lead in (b"{", b"["):
            return JsonSplitter(self._on_json, self._tally.text.add_unparsed, self._max)
        if lead in (b"d", b"e", b":", b"i", b"r"):  # data: event: comment id: retry:
            return SseDecoder(self._on_sse, self._tally.text.add_unparsed, self._max)
        return EventStreamDecoder(self._on_frame, self._tally.text.add_unparsed, self._max)

    def _read(self, value: Any, streamed: bool) -> None:
        if self._reader is None:
            return
        try:
            self._reader(value, self._tally, streamed)
        except Exception:
            log.warning("%s response part could not be read", self.api, exc_info=True)

    def _on_json(self, value: Any, element: bool) -> None:
        self._read(value, element)

    def _on_sse(self, event: str, data: bytes) -> None:
        if data.strip() == b"[DONE]":
            return
        try:
            value = json.loads(data)
        except ValueError:
            self._tally.text.add_unparsed(len(data))
            return
        self._read(value, True)

    def _on_frame(self, headers: dict[str, HeaderValue], payload: bytes) -> None:
        if headers.get(":message-type", "event") != "event":
            log.info("%s stream sent %s %s", self.api, headers.get(":message-type"), headers.get(":exception-type"))
            return
        try:
            value = json.loads(payload) if payload else {}
        except ValueError:
            self._tally.text.add_unparsed(len(payload))
            return
        if headers.get(":event-type") == "chunk" and isinstance(value, dict) and isinstance(value.get("bytes"), str):
            # InvokeModelWithResponseStream: the model's own event, base64-encoded JSON
            try:
                value = json.loads(base64.b64decode(value["bytes"], validate=True))
            except (ValueError, binascii.Error):
                self._tally.text.add_unparsed(len(payload))
                return
        self._read(value, True)

    def _invoke_headers(self, headers: Mapping[str, str]) -> None:
        try:
            inputs = int(_header(headers, "x-amzn-bedrock-input-token-count"))
            outputs = int(_header(headers, "x-amzn-bedrock-output-token-count"))
        except ValueError:
            return
        read = _header(headers, "x-amzn-bedrock-cache-read-input-token-count")
        write = _header(headers, "x-amzn-bedrock-cache-write-input-token-count")
        tally = self._tally
        tally.cache_read_tokens = int(read) if read.isdigit() else 0
        tally.cache_write_tokens = int(write) if write.isdigit() else 0
        tally.input_tokens = max(0, inputs) + tally.cache_read_tokens + tally.cache_write_tokens
        tally.output_tokens = max(0, outputs)
        tally.final = True
