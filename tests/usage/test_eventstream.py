"""AWS event-stream decoding: frames checked against botocore's decoder, CRC mismatches, oversized messages."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from filter.usage import Usage, UsageParser
from filter.usage.eventstream import EventStreamDecoder, HeaderValue
from tests.usage import samples

EVENTSTREAM = "application/vnd.amazon.eventstream"


def decode(data: bytes, pieces: int = 1, max_bytes: int = 1 << 20) -> tuple[list[tuple[dict[str, HeaderValue], bytes]],
                                                                          int, EventStreamDecoder]:
    messages: list[tuple[dict[str, HeaderValue], bytes]] = []
    dropped = [0]

    def on_dropped(n: int) -> None:
        dropped[0] += n

    decoder = EventStreamDecoder(lambda h, p: messages.append((h, p)), on_dropped, max_bytes)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        decoder.feed(data[i : i + step])
    decoder.finish()
    return messages, dropped[0], decoder


def test_sample_frames_are_valid_for_botocore() -> None:
    """The frames the tests build are the real format: botocore's own decoder reads them."""
    eventstream = pytest.importorskip("botocore.eventstream")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(samples.converse_stream())
    events = [m.to_response_dict() for m in buffer]
    assert [e["headers"][":event-type"] for e in events] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert ours_equal_botocore(samples.converse_stream())


def ours_equal_botocore(data: bytes) -> bool:
    eventstream = pytest.importorskip("botocore.eventstream")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    theirs = [(m.to_response_dict()["headers"], m.to_response_dict()["body"]) for m in buffer]
    ours, dropped, _ = decode(data, pieces=7)
    return dropped == 0 and ours == theirs


def _typed_header(name: str, kind: int, raw: bytes) -> bytes:
    return bytes([len(name)]) + name.encode() + bytes([kind]) + raw


def test_every_header_value_type() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    head = b"".join([
        _typed_header("t", 0, b""), _typed_header("f", 1, b""), _typed_header("b", 2, struct.pack(">b", -3)),
        _typed_header("s", 3, struct.pack(">h", -300)), _typed_header("i", 4, struct.pack(">i", 70000)),
        _typed_header("l", 5, struct.pack(">q", 1 << 40)), _typed_header("y", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
        _typed_header("str", 7, struct.pack(">H", 4) + "héj".encode()),
        _typed_header("ts", 8, struct.pack(">q", 1_700_000_000_000)), _typed_header("u", 9, ident.bytes),
    ])
    total = 12 + len(head) + 2 + 4
    prelude = struct.pack(">II", total, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + b"{}"
    message += struct.pack(">I", zlib.crc32(message))
    [(headers, payload)], dropped, _ = decode(message, pieces=len(message))
    assert dropped == 0 and payload == b"{}"
    assert headers == {"t": True, "f": False, "b": -3, "s": -300, "i": 70000, "l": 1 << 40, "y": b"\x00\x01\x02",
                       "str": "héj", "ts": 1_700_000_000_000, "u": ident.bytes}


def test_message_crc_mismatch_drops_that_message_only() -> None:
    frames = [samples.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"part {i} "}})
              for i in range(3)]
    damaged = bytearray(frames[1])
    damaged[-10] ^= 0x01  # a payload byte: the message CRC no longer matches
    messages, dropped, decoder = decode(frames[0] + bytes(damaged) + frames[2], pieces=5)
    assert [p for _, p in messages] == [b'{"contentBlockIndex":0,"delta":{"text":"part 0 "}}',
                                        b'{"contentBlockIndex":0,"delta":{"text":"part 2 "}}']
    assert dropped == len(frames[1]) and not decoder.broken


def test_damaged_metadata_frame_leaves_an_estimate() -> None:
    body = bytearray(samples.converse_stream())
    body[-8] ^= 0xFF  # inside the metadata message's payload
    parser = UsageParser("bedrock.converse", content_type=EVENTSTREAM, prompt_tokens=19)
    parser.feed(bytes(body))
    usage = parser.finish()
    assert usage is not None and usage.estimated
    assert usage.input_tokens == 19 and usage.output_tokens > 0  # from the deltas that did check out


def test_prelude_crc_mismatch_stops_reading_without_raising() -> None:
    good = samples.converse_stream()
    first = samples.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ok"}})
    broken = bytearray(first)
    broken[9] ^= 0x01  # the prelude CRC
    messages, dropped, decoder = decode(first + bytes(broken) + good, pieces=3)
    assert len(messages) == 1 and decoder.broken and dropped == len(broken) + len(good)
    parser = UsageParser("bedrock.converse", content_type=EVENTSTREAM)
    parser.feed(first + bytes(broken) + good)
    usage = parser.finish()
    assert usage is not None and usage.estimated and usage.output_tokens > 0


@pytest.mark.parametrize("lengths", [(8, 4), (15, 0), (40, 30)])
def test_impossible_lengths_stop_reading(lengths: tuple[int, int]) -> None:
    prelude = struct.pack(">II", *lengths)
    data = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 40
    messages, dropped, decoder = decode(data)
    assert messages == [] and decoder.broken and dropped == len(data)


def test_oversized_message_is_passed_over_not_buffered() -> None:
    big = samples.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 5000}})
    after = samples.event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}})
    decoder_messages, dropped, decoder = decode(big + after, pieces=40, max_bytes=1024)
    assert dropped == len(big) and decoder.buffered == 0
    assert [h[":event-type"] for h, _ in decoder_messages] == ["metadata"]
    parser = UsageParser("bedrock.converse", content_type=EVENTSTREAM, max_item_bytes=1024)
    for i in range(0, len(big + after), 100):
        parser.feed((big + after)[i : i + 100])
        assert parser.buffered <= 1024
    assert parser.finish() == Usage(1, 2)


def test_exception_message_is_not_usage() -> None:
    exception = samples.frame({":message-type": "exception", ":exception-type": "throttlingException",
                               ":content-type": "application/json"}, b'{"message":"Too many tokens"}')
    parser = UsageParser("bedrock.converse", content_type=EVENTSTREAM, prompt_tokens=5)
    parser.feed(samples.event("messageStart", {"role": "assistant"}) + exception)
    assert parser.finish(complete=False) == Usage(5, 0, estimated=True)
