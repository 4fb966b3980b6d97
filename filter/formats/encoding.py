"""Content-Encoding: streamed decompression with size and ratio caps."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

from filter.errors import BodyTooLarge, MalformedRequest, UnsupportedEncoding
from filter.formats.limits import DecodeLimits
from filter.model import Envelope

_IN = 64 * 1024  # compressed bytes fed per step
_OUT = 256 * 1024  # decompressed bytes produced per step
_RATIO_FLOOR = 1024 * 1024  # the ratio cap applies once this much has come out
_MAX_LAYERS = 4
_ZSTD_MAX_RATIO = 32 * 1024  # worst case of one zstd input byte (RLE block), bounds each step
_ZSTD_MAX_WINDOW = 1 << 25
_GZIP_MAGIC = b"\x1f\x8b"


class _Sink:
    """Collects decompressed chunks and stops as soon as a cap is passed."""

    __slots__ = ("name", "received", "limits", "size", "parts")

    def __init__(self, name: str, received: int, limits: DecodeLimits) -> None:
        self.name = name
        self.received = max(received, 1)
        self.limits = limits
        self.size = 0
        self.parts: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limits.max_decompressed_bytes:
            raise BodyTooLarge(
                f"decompressed ({self.name}) request body exceeds the limit of "
                f"{self.limits.max_decompressed_bytes} bytes"
            )
        if self.size > _RATIO_FLOOR and self.size > self.limits.max_compression_ratio * self.received:
            raise BodyTooLarge(
                f"request body ({self.name}) expands more than {self.limits.max_compression_ratio}:1 "
                f"({self.received} bytes received); refusing a likely decompression bomb"
            )
        if chunk:
            self.parts.append(chunk)

    def remaining(self) -> int:
        cap = min(
            self.limits.max_decompressed_bytes, max(_RATIO_FLOOR, self.limits.max_compression_ratio * self.received)
        )
        return max(cap - self.size, 0) + 1

    def result(self) -> bytes:
        return b"".join(self.parts)


def _corrupt(name: str, what: str = "corrupt or truncated") -> MalformedRequest:
    return MalformedRequest(f"request body is not valid {name} data ({what})")


def _inflate_one(view: memoryview, start: int, wbits: int, sink: _Sink) -> int:
    """Inflate one zlib/gzip/raw stream starting at `start`; return the offset just past it."""
    d = zlib.decompressobj(wbits)
    pos, n = start, len(view)
    while not d.eof:
        if d.unconsumed_tail:
            out = d.decompress(d.unconsumed_tail, _OUT)
        elif pos < n:
            out = d.decompress(view[pos : pos + _IN], _OUT)
            pos = min(pos + _IN, n)
        else:
            out = d.decompress(b"", _OUT)
            if not out:
                raise _corrupt(sink.name, "truncated")
        sink.add(out)
    return pos - len(d.unused_data)


def _inflate(data: bytes, wbits: int, sink: _Sink, *, members: bool) -> None:
    view = memoryview(data)
    end = _inflate_one(view, 0, wbits, sink)
    while end < len(view):
        rest = view[end:]
        if members and rest[:2] == _GZIP_MAGIC:
            end = _inflate_one(view, end, wbits, sink)
        elif not bytes(rest).strip(b"\x00"):
            return  # zero padding after the last member, as gzip(1) accepts
        else:
            raise _corrupt(sink.name, "unexpected data after the compressed stream")


def _gzip(data: bytes, sink: _Sink) -> None:
    _inflate(data, 16 + zlib.MAX_WBITS, sink, members=True)


def _deflate(data: bytes, sink: _Sink) -> None:
    """HTTP `deflate` is zlib-wrapped; some clients send raw deflate, so both are accepted."""
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    if zlib_header:
        try:
            _inflate(data, zlib.MAX_WBITS, sink, members=False)
            return
        except (zlib.error, MalformedRequest):
            sink.size, sink.parts = 0, []
    _inflate(data, -zlib.MAX_WBITS, sink, members=False)


def _brotli(data: bytes, sink: _Sink) -> None:
    d = brotli.Decompressor()
    sink.add(d.process(data, output_buffer_limit=_OUT))
    while not d.is_finished():
        out = d.process(b"", output_buffer_limit=_OUT)
        if not out:
            raise _corrupt(sink.name, "truncated")
        sink.add(out)


def _zstd(data: bytes, sink: _Sink) -> None:
    """Frames are decoded one after another; each step's input is sized so its worst case fits the caps."""
    dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    view = memoryview(data)
    pos, n = 0, len(view)
    while pos < n:
        obj = dctx.decompressobj()
        while not obj.eof:
            if pos >= n:
                raise _corrupt(sink.name, "truncated")
            step = max(64, min(_IN, sink.remaining() // _ZSTD_MAX_RATIO))
            sink.add(obj.decompress(view[pos : pos + step]))
            pos = min(pos + step, n)
        pos -= len(obj.unused_data)


_DECODERS: dict[str, Callable[[bytes, _Sink], None]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
_CODEC_ERRORS: tuple[type[Exception], ...] = (zlib.error, brotli.error, zstandard.ZstdError)


def _safe_name(coding: str) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in coding[:40])
    return shown + ("..." if len(coding) > 40 else "")


def content_codings(header: str) -> list[str]:
    """Codings in the order they were applied; `identity` and blanks dropped; unknown -> 415."""
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for c in codings:
        if c not in _DECODERS:
            raise UnsupportedEncoding(
                f"unsupported Content-Encoding {_safe_name(c)!r}; supported: gzip, deflate, br, zstd"
            )
    if len(codings) > _MAX_LAYERS:
        raise UnsupportedEncoding(f"{len(codings)} stacked Content-Encodings; at most {_MAX_LAYERS} are accepted")
    return codings


def check_size(envelope: Envelope, limits: DecodeLimits) -> None:
    """Partial (flagged by Envoy, or shorter than its Content-Length) or oversized bodies -> 413."""
    partial_header = envelope.headers.get("x-envoy-auth-partial-body", "").strip().lower() == "true"
    declared = envelope.headers.get("content-length", "").strip()
    short = declared.isascii() and declared.isdigit() and len(declared) < 20 and int(declared) > len(envelope.body)
    if envelope.partial or partial_header or short:
        raise BodyTooLarge(
            "request body was truncated by the proxy (partial body); the filter must see the whole body "
            f"(the limit is {limits.max_body_bytes} bytes)"
        )
    if len(envelope.body) > limits.max_body_bytes:
        raise BodyTooLarge(f"request body is {len(envelope.body)} bytes; the limit is {limits.max_body_bytes} bytes")


def decode_body(envelope: Envelope, limits: DecodeLimits) -> bytes:
    """The body as the provider will read it: size-checked and decompressed (last coding first)."""
    check_size(envelope, limits)
    body = envelope.body
    codings = content_codings(envelope.content_encoding)
    for coding in reversed(codings):
        if not body:
            break
        sink = _Sink(coding, len(envelope.body), limits)
        try:
            _DECODERS[coding](body, sink)
        except _CODEC_ERRORS:
            raise _corrupt(coding) from None
        body = sink.result()
    return body


CODINGS = frozenset({"gzip", "deflate", "br", "zstd"})


def decompress(data: bytes, coding: str, limits: DecodeLimits, name: str) -> bytes:
    """One buffer compressed with `coding` (one of CODINGS) under the same caps as a Content-Encoding layer;
    `name` says what it was in errors (e.g. "gRPC frame 2 (gzip)")."""
    sink = _Sink(name, len(data), limits)
    try:
        _DECODERS[coding](data, sink)
    except _CODEC_ERRORS:
        raise _corrupt(name) from None
    return sink.result()
