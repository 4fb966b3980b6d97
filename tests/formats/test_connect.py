"""Cursor and Codeium: Connect / gRPC / gRPC-web protobuf without a published schema, walked by wire format.

Request bodies here are built with a few lines of protobuf wire encoding (and one by the protobuf library itself);
the real clients' schemas are not published, so these stand in for them.
"""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from google.protobuf import struct_pb2

from filter.errors import MalformedRequest, RequestError, UnsupportedEncoding
from filter.model import Verdict
from tests.formats.helpers import aws_key_id, decide, parsed, segments

CURSOR = "/cursor/aiserver.v1.ChatService/StreamUnifiedChatWithTools"
CODEIUM = "/codeium/exa.api_server_pb.ApiServerService/GetCompletions"
PROTO = {"content-type": "application/proto"}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (string, bytes or message)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def num(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def envelope(message: bytes, flags: int = 0) -> bytes:
    return bytes([flags]) + len(message).to_bytes(4, "big") + message


def chat(text: str) -> bytes:
    """A chat request shaped like the clients' (conversation turns, model, a version number, a file)."""
    turn = ld(1, text) + num(2, 1) + ld(13, "bubble-1f2e")
    file = ld(1, "src/app.py") + ld(2, "def main():\n    return 0\n")
    return ld(2, turn) + ld(2, ld(1, "earlier turn") + num(2, 2)) + ld(5, ld(1, "claude-4-sonnet")) + num(7, 3) + ld(9, file)


CHAT_SEGMENTS = {
    "message.2[0].1": "Rename the helper",
    "message.2[0].13": "bubble-1f2e",
    "message.2[1].1": "earlier turn",
    "message.5.1": "claude-4-sonnet",
    "message.9.1": "src/app.py",
    "message.9.2": "def main():\n    return 0\n",
}


@pytest.mark.parametrize(("path", "provider"), [(CURSOR, "cursor"), (CODEIUM, "codeium")])
def test_unary_protobuf_every_string_at_its_field_path(path: str, provider: str) -> None:
    result = parsed(path, chat("Rename the helper"), PROTO)
    assert (result.provider, result.api, result.model, result.stream) == (provider, "connect", None, False)
    assert segments(result) == CHAT_SEGMENTS


def test_a_message_written_by_the_protobuf_library_is_walked_the_same_way() -> None:
    value = struct_pb2.Struct()
    value.update({"prompt": "fix the flaky test", "files": ["a.py", "b.py"]})
    found = segments(parsed(CODEIUM, value.SerializeToString(), PROTO))
    # Struct: field 1 holds map entries (1: key, 2: Value); a Value's field 3 is a string, 6 a list of Values.
    assert sorted(found.values()) == sorted(["prompt", "fix the flaky test", "files", "a.py", "b.py"])
    (prompt,) = [loc for loc, text in found.items() if text == "fix the flaky test"]
    assert prompt in ("message.1[0].2.3", "message.1[1].2.3")


@pytest.mark.parametrize("content_type", ["application/connect+proto", "application/grpc-web+proto",
                                          "application/grpc", "application/grpc+proto"])  # fmt: skip
def test_enveloped_streams_are_read_message_by_message(content_type: str) -> None:
    body = envelope(chat("Rename the helper")) + envelope(ld(1, "second message"))
    result = parsed(CURSOR, body, {"content-type": content_type})
    assert result.stream is True
    found = segments(result)
    assert found["frames[0].2[0].1"] == "Rename the helper"
    assert found["frames[1].1"] == "second message"


@pytest.mark.parametrize(
    ("content_type", "coding_header", "coding", "compress"),
    [
        ("application/connect+proto", "connect-content-encoding", "gzip", gzip.compress),
        ("application/grpc-web+proto", "grpc-encoding", "gzip", gzip.compress),
        ("application/grpc", "grpc-encoding", "deflate", __import__("zlib").compress),
    ],
)
def test_compressed_envelopes_are_decompressed(content_type: str, coding_header: str, coding: str,
                                               compress: object) -> None:  # fmt: skip
    packed = compress(ld(1, "inside the compressed message"))  # type: ignore[operator]
    body = envelope(packed, flags=1) + envelope(ld(1, "plain one"))
    found = segments(parsed(CURSOR, body, {"content-type": content_type, coding_header: coding}))
    assert found["frames[0].1"] == "inside the compressed message"
    assert found["frames[1].1"] == "plain one"


def test_grpc_web_text_is_base64_of_envelopes_chunk_by_chunk() -> None:
    body = base64.b64encode(envelope(ld(1, "first"))) + base64.b64encode(envelope(ld(1, "second!")))
    found = segments(parsed(CURSOR, body, {"content-type": "application/grpc-web-text"}))
    assert found == {"frames[0].1": "first", "frames[1].1": "second!"}


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        (envelope(gzip.compress(ld(1, "x")), 1), {"content-type": "application/grpc-web+proto",
                                                  "grpc-encoding": "snappy"}, UnsupportedEncoding),
        (envelope(gzip.compress(ld(1, "x")), 1), {"content-type": "application/grpc-web+proto"}, MalformedRequest),
        (envelope(b"not gzip at all", 1), {"content-type": "application/grpc", "grpc-encoding": "gzip"},
         MalformedRequest),
        (envelope(ld(1, "x"))[:-1], {"content-type": "application/connect+proto"}, MalformedRequest),
        (b"\x00\x00\x00", {"content-type": "application/grpc"}, MalformedRequest),
        (b"!!not base64!!", {"content-type": "application/grpc-web-text"}, MalformedRequest),
        (b'{"prompt": ', {"content-type": "application/json"}, MalformedRequest),
    ],
    ids=["unknown-coding", "compressed-without-coding", "corrupt-gzip", "truncated-envelope", "truncated-header",
         "bad-base64", "bad-json"],
)  # fmt: skip
def test_what_cannot_be_read_is_refused(body: bytes, headers: dict[str, str], error: type[RequestError]) -> None:
    with pytest.raises(error):
        parsed(CURSOR, body, headers)


def test_bytes_that_are_neither_text_nor_a_message_are_scanned_as_printable_runs() -> None:
    blob = b"\x00\xff\xfe" + b"embedded note: rotate keys" + b"\x01\x02ab\x03" + "überall grün".encode()
    found = segments(parsed(CURSOR, ld(1, "prompt") + ld(4, blob), PROTO))
    assert found == {"message.1": "prompt", "message.4@3": "embedded note: rotate keys",
                     "message.4@34": "überall grün"}  # fmt: skip


def test_a_body_that_is_not_protobuf_is_scanned_as_printable_runs() -> None:
    body = b"\xff\xfeGARBAGE header\x00\x00then some text here\x07"
    found = segments(parsed(CODEIUM, body, PROTO))
    assert found == {"message@2": "GARBAGE header", "message@18": "then some text here"}


@pytest.mark.parametrize("content_type", ["application/json", "application/connect+json"])
def test_json_messages_are_scanned_string_by_string(content_type: str) -> None:
    doc = json.dumps({"conversation": [{"text": "hello"}], "modelName": "gpt-5"}).encode()
    framed = content_type.startswith("application/connect+")
    result = parsed(CURSOR, envelope(doc) if framed else doc, {"content-type": content_type})
    root = "frames[0]$" if framed else "message$"
    found = segments(result)
    assert found[f"{root}.conversation[0].text"] == "hello"
    assert found[f"{root}.modelName"] == "gpt-5"


def test_credentials_header_is_the_providers_other_headers_are_scanned() -> None:
    headers = {**PROTO, "authorization": "Bearer eyJhbGciOi.x.y", "x-cursor-client-version": "1.4.2"}
    found = segments(parsed(CURSOR, ld(1, "hi there"), headers), roads=True)
    assert {k for k in found if k.startswith("headers")} == {"headers.x-cursor-client-version"}


def _deny_location(path: str, body: bytes, headers: dict[str, str]) -> set[str]:
    decision = decide(path, body, headers)
    assert decision.verdict is Verdict.DENY, (decision.reason, decision.findings)
    assert decision.reason == "secret_detected"
    return {f.location for f in decision.findings if f.rule_id == "aws-access-key-id"}


KEY = aws_key_id(31)


@pytest.mark.parametrize(
    ("body", "headers", "location"),
    [
        (chat(f"deploy with {KEY}"), PROTO, "message.2[0].1"),
        (envelope(gzip.compress(ld(1, f"key {KEY}")), 1) + envelope(ld(1, "x")),
         {"content-type": "application/connect+proto", "connect-content-encoding": "gzip"}, "frames[0].1"),
        (base64.b64encode(envelope(ld(3, ld(1, f"key {KEY}")))), {"content-type": "application/grpc-web-text"},
         "frames[0].3.1"),
        (ld(4, b"\x00\xff" + f"key {KEY}".encode() + b"\x00"), PROTO, "message.4@2"),
        (json.dumps({"prompt": f"key {KEY}"}).encode(), {"content-type": "application/json"}, "message$.prompt"),
    ],
    ids=["protobuf-string", "gzip-envelope", "grpc-web-text", "bytes-run", "json"],
)  # fmt: skip
def test_a_secret_anywhere_in_a_protobuf_request_is_denied(body: bytes, headers: dict[str, str],
                                                            location: str) -> None:  # fmt: skip
    assert _deny_location(CURSOR, body, headers) == {location}


def test_a_message_whose_bytes_all_look_like_text_is_also_walked_as_a_message() -> None:
    """Field 4 with a 65-byte string is `"A` + the string: printable, so read as text, where the length byte `A`
    runs into the value; its fields are walked too, so the value is seen on its own."""
    inner = f"{KEY} is the deploy key, rotate it after release".ljust(65, ".").encode()
    assert len(inner) == 65
    assert _deny_location(CODEIUM, ld(1, ld(4, inner)), PROTO) >= {"message.1.4"}


def test_a_refused_body_is_a_4xx_decision() -> None:
    decision = decide(CURSOR, envelope(b"\x00" * 10, 1), {"content-type": "application/grpc", "grpc-encoding": "snappy"})
    assert decision.verdict is Verdict.DENY
    assert decision.http_status == 415


def test_a_message_of_countless_tiny_fields_is_a_work_limit_not_a_long_wait() -> None:
    from filter.errors import WorkLimitExceeded
    from filter.formats import DecodeLimits

    body = num(1, 1) * 2000
    with pytest.raises(WorkLimitExceeded):
        parsed(CURSOR, body, PROTO, DecodeLimits(max_json_nodes=1000))
