"""Limits, each a clear 4xx: size, partial body, decompression bombs, malformed JSON, depth."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from filter.errors import BodyTooLarge, MalformedRequest, RequestError
from filter.formats import DecodeLimits, decode_body, parse
from filter.formats.jsonload import depth_exceeds
from filter.model import Envelope
from tests.formats.helpers import envelope, parsed, segments

SECRET = "AKIAQWERTYUIOPASDFGH"


def test_oversize_body_is_413_with_count_and_limit() -> None:
    limits = DecodeLimits(max_body_bytes=100)
    with pytest.raises(BodyTooLarge) as err:
        parse(envelope("/v1/messages", b"x" * 101), limits)
    assert err.value.http_status == 413
    assert "101" in err.value.message and "100" in err.value.message
    parse(envelope("/v1/messages", b" " * 100), limits)  # at the limit is fine


def test_partial_body_is_413() -> None:
    with pytest.raises(BodyTooLarge, match="truncated"):
        parse(Envelope("POST", "/v1/messages", {}, b"{}", partial=True))
    with pytest.raises(BodyTooLarge, match="truncated"):
        parse(Envelope("POST", "/v1/messages", {"x-envoy-auth-partial-body": "true"}, b"{}"))
    with pytest.raises(BodyTooLarge, match="truncated"):
        parse(Envelope("POST", "/v1/messages", {"content-length": "3"}, b"{}"))
    for length in ("2", "1", "", "abc", "²", "9" * 5000):
        parse(Envelope("POST", "/v1/messages", {"content-length": length, "x-envoy-auth-partial-body": "0"}, b"{}"))


BOMB = b"\0" * (8 * 1024 * 1024)
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor(level=19).compress(d),
}


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_bomb_by_ratio_is_413(coding: str) -> None:
    data = COMPRESS[coding](BOMB)
    with pytest.raises(BodyTooLarge, match="200:1"):
        decode_body(Envelope("POST", "/v1/messages", {"content-encoding": coding}, data), DecodeLimits())


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_decompressed_cap_is_413(coding: str) -> None:
    limits = DecodeLimits(max_decompressed_bytes=1000, max_compression_ratio=10**6)
    data = COMPRESS[coding](json.dumps({"t": "x" * 5000}).encode())
    with pytest.raises(BodyTooLarge, match="1000 bytes"):
        decode_body(Envelope("POST", "/v1/messages", {"content-encoding": coding}, data), limits)


def test_stacked_bomb_is_413() -> None:
    data = brotli.compress(gzip.compress(BOMB * 4))
    with pytest.raises(BodyTooLarge):
        decode_body(Envelope("POST", "/", {"content-encoding": "gzip, br"}, data), DecodeLimits())


def test_small_outputs_are_not_held_to_the_ratio() -> None:
    data = gzip.compress(b" " * 500_000)  # ratio ~500:1 but only 0.5 MB out
    assert len(decode_body(Envelope("POST", "/", {"content-encoding": "gzip"}, data), DecodeLimits())) == 500_000


MALFORMED = [
    (b'{"messages": [{"role": "user", "content": "' + SECRET.encode() + b'"}', 65),  # end of input
    (b'{"messages": "' + SECRET.encode() + b'\n"}', 34),
    (b'{"messages": [' + SECRET.encode() + b"]}", 14),
    (b'{"model": "\xc3\xa9\xc3\xa9", "k": ' + SECRET.encode() + b"}", 23),  # bytes, not characters
    (b'{"a": 1,}' + SECRET.encode(), 8),
    (b"[" + SECRET.encode(), 1),
]


@pytest.mark.parametrize(("body", "offset"), MALFORMED)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1beta/models/g:generateContent"])
def test_malformed_json_is_400_naming_the_offset_not_the_body(body: bytes, offset: int, path: str) -> None:
    with pytest.raises(MalformedRequest) as err:
        parse(envelope(path, body))
    message = err.value.message
    assert err.value.http_status == 400
    assert f"byte offset {offset}" in message
    assert SECRET not in message and SECRET[:8] not in message
    assert "messages" not in message and "role" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_non_utf8_json_is_400() -> None:
    with pytest.raises(MalformedRequest, match="UTF-8.*byte offset 13"):
        parse(envelope("/v1/messages", b'{"messages": \xff"x"}'))
    with pytest.raises(MalformedRequest, match="UTF-8"):
        parse(envelope("/v1/messages", '{"messages": []}'.encode("utf-16")))


def test_duplicate_keys_are_400() -> None:
    with pytest.raises(MalformedRequest, match="duplicate key"):
        parsed("/v1/messages", b'{"messages": [], "messages": [{"role": "user", "content": "x"}]}')


def test_duplicate_keys_inside_tool_arguments_are_all_scanned() -> None:
    args = '{"k": "first", "k": "second"}'
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": args}}]}]}
    found = segments(parsed("/v1/chat/completions", body))
    inner = {v for k, v in found.items() if "arguments$" in k and "#keys" not in k}
    assert inner == {"first", "second"}


def test_huge_integer_is_400() -> None:
    with pytest.raises(MalformedRequest, match="number"):
        parsed("/v1/messages", b'{"max_tokens": ' + b"9" * 5000 + b"}")


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
@pytest.mark.parametrize("path", ["/v1/messages", "/unknown", "/v1beta/models/g:generateContent"])
def test_depth_10000_is_400_not_recursion_error(opener: str, closer: str, path: str) -> None:
    body = (opener * 10_000 + "1" + closer * 10_000).encode()
    with pytest.raises(MalformedRequest, match="deeper than 64"):
        parse(envelope(path, body))


def test_depth_unbalanced_deep_is_still_a_request_error() -> None:
    for body in (b"[" * 10_000, b"]" * 10 + b"[" * 10_000, b'{"a":' * 10_000):
        with pytest.raises(MalformedRequest):
            parse(envelope("/v1/messages", body))


def test_depth_limit_is_exact() -> None:
    limits = DecodeLimits(max_json_depth=5)
    ok = '{"messages": [[[["x"]]]]}'  # depth 5
    assert segments(parse(envelope("/v1/messages", ok), limits))["messages[0][0][0][0]"] == "x"
    with pytest.raises(MalformedRequest, match="deeper than 5"):
        parse(envelope("/v1/messages", '{"messages": [[[[["x"]]]]]}'), limits)


def test_brackets_and_escapes_inside_strings_do_not_count() -> None:
    text = "[" * 5000 + '\\"{{{' + "\\\\" + "]]"
    body = json.dumps({"messages": [{"role": "user", "content": text}]})
    assert segments(parsed("/v1/messages", body))["messages[0].content"] == text


def test_deep_json_inside_a_tool_argument_is_400() -> None:
    args = "[" * 100 + "]" * 100
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": args}}]}]}
    with pytest.raises(MalformedRequest, match="deeper than 64"):
        parsed("/v1/chat/completions", body)


def test_base64_text_document_over_limit_is_413() -> None:
    data = base64.b64encode(b"a" * 3000).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": data}}
                ],
            }
        ]
    }
    with pytest.raises(BodyTooLarge, match="base64 text document"):
        parsed("/v1/messages", body, limits=DecodeLimits(max_base64_document_bytes=1000))
    assert parsed("/v1/messages", body, limits=DecodeLimits(max_base64_document_bytes=4000)).segments


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("[]", 1, False),
        ("[[]]", 1, True),
        ('{"a": {"b": []}}', 3, False),
        ('{"a": {"b": []}}', 2, True),
        ('["[[[[", "]]]]"]', 1, False),
        ('["\\\\", ["\\""]]', 2, False),
        ('["\\\\", ["\\""]]', 1, True),
        ("[[[", 1, False),  # unbalanced: left to the parser
        ("", 1, False),
    ],
)
def test_depth_prescan(text: str, limit: int, expected: bool) -> None:
    assert depth_exceeds(text.encode(), limit) is expected


def test_request_errors_are_the_only_errors() -> None:
    assert issubclass(MalformedRequest, RequestError) and issubclass(BodyTooLarge, RequestError)


def test_large_documents_of_unknown_type_are_sniffed() -> None:
    limits = DecodeLimits(max_base64_document_bytes=1000)

    def body(raw: bytes) -> dict[str, object]:
        doc = {"format": "docx", "name": "d", "source": {"bytes": base64.b64encode(raw).decode()}}
        return {"messages": [{"role": "user", "content": [{"document": doc}]}]}

    with pytest.raises(BodyTooLarge, match="base64 text document"):
        parsed("/model/m/converse", body("é text ".encode() * 400), limits=limits)
    result = parsed("/model/m/converse", body(b"PK\x03\x04\x00\x00" + bytes(3000)), limits=limits)
    assert result.image_count == 1
