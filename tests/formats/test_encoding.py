"""Content-Encoding: gzip, deflate (zlib and raw), br, zstd, stacked; unknown -> 415; corrupt -> 400."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from filter.errors import MalformedRequest, UnsupportedEncoding
from filter.formats import DecodeLimits, decode_body, parse
from filter.model import Envelope

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "compressed hello " * 50}]}).encode()
LIMITS = DecodeLimits()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


def env(body: bytes, encoding: str, path: str = "/v1/messages") -> Envelope:
    return Envelope("POST", path, {"content-type": "application/json", "content-encoding": encoding}, body)


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_each_coding(coding: str) -> None:
    assert decode_body(env(COMPRESS[coding](BODY), coding), LIMITS) == BODY


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("deflate", raw_deflate(BODY)),
        ("GZIP", gzip.compress(BODY)),
        (" gzip ", gzip.compress(BODY)),
        ("identity", BODY),
        ("", BODY),
        ("identity, gzip", gzip.compress(BODY)),
        ("gzip", gzip.compress(BODY[:100]) + gzip.compress(BODY[100:])),  # multi-member
        ("gzip", gzip.compress(BODY) + bytes(16)),  # zero padding after the member
        ("zstd", zstandard.ZstdCompressor().compress(BODY[:100]) + zstandard.ZstdCompressor().compress(BODY[100:])),
        ("zstd", zstandard.ZstdCompressor(write_content_size=False).compress(BODY)),
    ],
    ids=[
        "raw-deflate",
        "upper",
        "spaces",
        "identity",
        "none",
        "identity-gzip",
        "gzip-members",
        "gzip-padding",
        "zstd-frames",
        "zstd-no-size",
    ],
)
def test_variants(encoding: str, data: bytes) -> None:
    assert decode_body(env(data, encoding), LIMITS) == BODY


@pytest.mark.parametrize(
    ("header", "layers"),
    [
        ("gzip, br", ["gzip", "br"]),
        ("br,zstd", ["br", "zstd"]),
        ("deflate, gzip, zstd", ["deflate", "gzip", "zstd"]),
        ("gzip, gzip", ["gzip", "gzip"]),
    ],
)
def test_stacked_codings_decoded_last_first(header: str, layers: list[str]) -> None:
    data = BODY
    for coding in layers:  # applied in header order
        data = COMPRESS[coding](data)
    assert decode_body(env(data, header), LIMITS) == BODY


def test_parse_sees_through_compression() -> None:
    result = parse(env(brotli.compress(gzip.compress(BODY)), "gzip, br"))
    assert result.api == "anthropic.messages"
    assert result.segments[0].text.startswith("compressed hello")


@pytest.mark.parametrize("coding", ["compress", "x-compress", "lz4", "snappy", "gzip;q=1", "br, exotic"])
def test_unknown_coding_is_415_naming_it(coding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as err:
        decode_body(env(b"xx", coding), LIMITS)
    assert err.value.http_status == 415
    shown = coding.split(", ")[-1]
    assert shown in err.value.message


def test_unknown_coding_name_is_shortened_and_sanitised() -> None:
    with pytest.raises(UnsupportedEncoding) as err:
        decode_body(env(b"x", "A" * 100 + "\x00"), LIMITS)
    assert len(err.value.message) < 150 and "\x00" not in err.value.message


def test_too_many_layers_is_415() -> None:
    with pytest.raises(UnsupportedEncoding):
        decode_body(env(b"x", ", ".join(["gzip"] * 5)), LIMITS)


def test_empty_body_with_a_coding_is_empty() -> None:
    assert decode_body(env(b"", "gzip"), LIMITS) == b""


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", b"definitely not gzip"),
        ("gzip", gzip.compress(BODY)[:-12]),  # truncated
        ("gzip", gzip.compress(BODY) + b"trailing garbage"),
        ("deflate", b"\x00\x01\x02 not deflate"),
        ("deflate", zlib.compress(BODY)[:-6]),
        ("deflate", zlib.compress(BODY) + b"more"),
        ("br", b"not brotli at all"),
        ("br", brotli.compress(BODY)[:-4]),
        ("br", brotli.compress(BODY) + b"junk"),
        ("zstd", b"not zstd"),
        ("zstd", zstandard.ZstdCompressor().compress(BODY)[:-5]),
        ("zstd", zstandard.ZstdCompressor().compress(BODY) + b"junk"),
    ],
)
def test_corrupt_data_is_400(coding: str, data: bytes) -> None:
    with pytest.raises(MalformedRequest) as err:
        decode_body(env(data, coding), LIMITS)
    assert err.value.http_status == 400
    assert coding in err.value.message
