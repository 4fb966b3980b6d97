"""Content-Encoding again: a rewritten body is compressed with the codings the client used."""

from __future__ import annotations

import gzip
import zlib

import brotli
import zstandard


def _deflate(data: bytes, raw: bool) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _raw_deflate(sent: bytes) -> bool:
    """The client sent raw deflate (no zlib header), as some do; decode_body accepts both."""
    return not (len(sent) >= 2 and sent[0] & 0x0F == 8 and (sent[0] << 8 | sent[1]) % 31 == 0)


def encode(data: bytes, codings: list[str], sent: bytes) -> bytes:
    """`data` with `codings` applied in order (as content_codings lists them). `sent` is the body as received:
    an outermost `deflate` keeps its framing (zlib or raw)."""
    for i, coding in enumerate(codings):
        if coding in ("gzip", "x-gzip"):
            data = gzip.compress(data, compresslevel=6, mtime=0)
        elif coding == "deflate":
            data = _deflate(data, raw=i == len(codings) - 1 and _raw_deflate(sent))
        elif coding == "br":
            data = brotli.compress(data)
        elif coding == "zstd":
            data = zstandard.ZstdCompressor().compress(data)
        else:  # content_codings refused anything else before
            raise ValueError(coding)
    return data
