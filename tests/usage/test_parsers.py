"""Usage read from provider-shaped responses (tests/usage/samples.py), fed whole and split anywhere."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable

import brotli
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.tokens import TokenCounter, load_encoding
from filter.usage import Usage, UsageParser
from tests.usage import samples

SSE = "text/event-stream"
JSON = "application/json"
EVENTSTREAM = "application/vnd.amazon.eventstream"

# (name, api, content type, body, expected usage, expected model)
CASES: list[tuple[str, str, str, bytes, Usage, str | None]] = [
    ("openai-chat-json", "openai.chat", "application/json; charset=utf-8", samples.OPENAI_CHAT_JSON,
     Usage(19, 10), "gpt-4.1-2025-04-14"),
    ("openai-chat-sse", "openai.chat", SSE, samples.openai_chat_sse(include_usage=True),
     Usage(1210, 14, cache_read_tokens=1024), "gpt-4o-mini-2024-07-18"),
    ("responses-json", "openai.responses", JSON, samples.RESPONSES_JSON, Usage(36, 87), "gpt-4.1-2025-04-14"),
    ("responses-sse", "openai.responses", SSE, samples.RESPONSES_SSE, Usage(37, 11, cache_read_tokens=5),
     "gpt-4.1-2025-04-14"),
    ("anthropic-json", "anthropic.messages", JSON, samples.ANTHROPIC_JSON,
     Usage(2095 + 2000 + 100, 503, cache_read_tokens=2000, cache_write_tokens=100), "claude-sonnet-4-5-20250929"),
    ("anthropic-sse", "anthropic.messages", SSE, samples.anthropic_sse(),
     Usage(472 + 1800, 89, cache_read_tokens=1800), "claude-opus-4-1-20250805"),
    ("gemini-json", "gemini.generate_content", JSON, samples.GEMINI_JSON,
     Usage(8, 22 + 1016, cache_read_tokens=4), "gemini-2.5-flash"),
    ("gemini-sse", "gemini.generate_content", SSE, samples.GEMINI_SSE,
     Usage(8, 22 + 1016, cache_read_tokens=4), "gemini-2.5-flash"),
    ("gemini-array", "gemini.generate_content", JSON, samples.GEMINI_ARRAY,
     Usage(8, 22 + 1016, cache_read_tokens=4), "gemini-2.5-flash"),
    ("converse-json", "bedrock.converse", JSON, samples.CONVERSE_JSON,
     Usage(30 + 400 + 100, 628, cache_read_tokens=400, cache_write_tokens=100), None),
    ("converse-stream", "bedrock.converse", EVENTSTREAM, samples.converse_stream(), Usage(19, 21), None),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def encoding() -> tiktoken.Encoding:
    return load_encoding()


def read(api: str, content_type: str, chunks: Iterable[bytes], **kwargs: object) -> UsageParser:
    parser = UsageParser(api, status=200, content_type=content_type, **kwargs)  # type: ignore[arg-type]
    for chunk in chunks:
        parser.feed(chunk)
    return parser


def split(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [body[a:b] for a, b in zip(points, points[1:], strict=False)]


@pytest.mark.parametrize(("name", "api", "content_type", "body", "expected", "model"), CASES, ids=IDS)
def test_usage_from_whole_body(name: str, api: str, content_type: str, body: bytes, expected: Usage,
                               model: str | None) -> None:
    parser = read(api, content_type, [body])
    assert parser.finish() == expected
    assert parser.model == model


@pytest.mark.parametrize(("name", "api", "content_type", "body", "expected", "model"), CASES, ids=IDS)
def test_usage_same_at_every_split_position(name: str, api: str, content_type: str, body: bytes,
                                            expected: Usage, model: str | None) -> None:
    for cut in range(1, len(body)):
        assert read(api, content_type, [body[:cut], body[cut:]]).finish() == expected, f"split at {cut}"
    one_by_one = read(api, content_type, [body[i : i + 1] for i in range(len(body))])
    assert one_by_one.finish() == expected
    assert one_by_one.model == model


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=40))
def test_usage_same_for_any_chunking(case: tuple[str, str, str, bytes, Usage, str | None], cuts: list[int]) -> None:
    _, api, content_type, body, expected, _ = case
    assert read(api, content_type, split(body, cuts)).finish() == expected


def test_crlf_line_endings_split_between_cr_and_lf() -> None:
    body = samples.sse(*[(None, c) for c in [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
    ]], crlf=True)
    cuts = [i + 1 for i in range(len(body)) if body[i : i + 1] == b"\r"]
    assert read("anthropic.messages", SSE, split(body, cuts)).finish() == Usage(5, 7)


def test_no_content_type_is_sniffed() -> None:
    assert read("openai.chat", "", [samples.OPENAI_CHAT_JSON]).finish() == Usage(19, 10)
    assert read("anthropic.messages", "", [samples.anthropic_sse()]).finish() == CASES[5][4]
    assert read("bedrock.converse", "application/octet-stream", [samples.converse_stream()]).finish() == Usage(19, 21)


# -- estimates


def test_openai_stream_without_include_usage_is_estimated_from_the_text(encoding: tiktoken.Encoding) -> None:
    body = samples.openai_chat_sse(include_usage=False)
    parser = read("openai.chat", SSE, split(body, range(0, len(body), 7)),
                  count_text=TokenCounter(encoding).count_text, prompt_tokens=1234)
    usage = parser.finish()
    expected_output = len(encoding.encode_ordinary("".join(samples.CHAT_TEXT)))
    assert usage == Usage(1234, expected_output, estimated=True)
    assert expected_output > 0


def test_estimate_without_encoding_still_counts_text() -> None:
    usage = read("openai.chat", SSE, [samples.openai_chat_sse(include_usage=False)]).finish()
    assert usage is not None and usage.estimated and usage.output_tokens > 0 and usage.input_tokens == 0


def test_anthropic_stream_cut_off_keeps_reported_input_and_estimates_output(encoding: tiktoken.Encoding) -> None:
    body = samples.anthropic_sse(with_delta_usage=False)
    parser = read("anthropic.messages", SSE, [body], count_text=TokenCounter(encoding).count_text,
                  prompt_tokens=99_999)
    usage = parser.finish(complete=False)
    assert usage is not None and usage.estimated
    assert (usage.input_tokens, usage.cache_read_tokens) == (472 + 1800, 1800)  # the provider's, not the hint
    text = "Okay, let's check the weather for San Francisco, CA — ünïcödé:" + '{"location": "San Francisco, CA"}'
    assert usage.output_tokens == len(encoding.encode_ordinary(text))


def test_gemini_stream_cut_before_the_last_chunk_is_estimated() -> None:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in samples.GEMINI_CHUNKS[:2])
    usage = read("gemini.generate_content", SSE, [body]).finish(complete=False)
    assert usage is not None and usage.estimated
    assert usage.input_tokens == 8 and usage.output_tokens >= 9 + 997  # the last reported count is a floor


def test_converse_stream_without_metadata_is_estimated() -> None:
    usage = read("bedrock.converse", EVENTSTREAM, [samples.converse_stream(with_metadata=False)],
                 prompt_tokens=20).finish(complete=False)
    assert usage is not None and usage.estimated and usage.input_tokens == 20 and usage.output_tokens > 0


def test_long_stream_is_counted_in_bounded_memory(encoding: tiktoken.Encoding) -> None:
    words = ["alpha ", "beta ", "gamma\n", "δέλτα ", "🙂 "]
    chunk = b"".join(
        b"data: " + json.dumps(samples._chat_chunk({"content": w * 50}, usage=False)).encode() + b"\n\n" for w in words
    )
    parser = UsageParser("openai.chat", content_type=SSE, count_text=TokenCounter(encoding).count_text)
    for i in range(2000):  # ~3 MB of events, each fed split in two
        parser.feed(chunk[: 100 + i % 50])
        parser.feed(chunk[100 + i % 50 :])
        assert parser.buffered < 64 * 1024
    usage = parser.finish()
    exact = len(encoding.encode_ordinary("".join(w * 50 for w in words) * 2000))
    assert usage is not None and usage.estimated
    assert abs(usage.output_tokens - exact) <= exact // 100  # batch cuts at whitespace: within 1 %


def test_oversized_line_and_member_are_dropped_not_buffered() -> None:
    parser = UsageParser("openai.chat", content_type=SSE, max_item_bytes=4096)
    parser.feed(b"data: " + b"x" * 3000)
    for _ in range(100):
        parser.feed(b"y" * 1000)
        assert parser.buffered <= 4096
    parser.feed(b"\n\n" + samples.sse((None, {"usage": {"prompt_tokens": 3, "completion_tokens": 4}})))
    assert parser.finish() == Usage(3, 4)

    big = json.dumps({"choices": [{"message": {"content": "z" * 20_000}}], "model": "m",
                      "usage": {"prompt_tokens": 1, "completion_tokens": 5000}}).encode()
    parser = UsageParser("openai.chat", content_type=JSON, max_item_bytes=4096)
    for i in range(0, len(big), 512):
        parser.feed(big[i : i + 512])
        assert parser.buffered <= 4096
    assert parser.finish() == Usage(1, 5000)
    assert parser.model == "m"


# -- statuses, counting calls, encodings, malformed bodies


@pytest.mark.parametrize("status", [400, 401, 429, 500, 529])
def test_error_status_has_no_usage(status: int) -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    parser = UsageParser("anthropic.messages", status=status, content_type=JSON)
    parser.feed(body)
    assert parser.finish() is None


def test_token_counting_call_costs_nothing() -> None:
    parser = UsageParser("anthropic.messages", content_type=JSON, count_only=True)
    parser.feed(b'{"input_tokens": 2095}')
    assert parser.finish() == Usage(0, 0)


@pytest.mark.parametrize("encoding_name", ["gzip", "deflate", "br"])
def test_compressed_bodies_are_read(encoding_name: str) -> None:
    body = samples.anthropic_sse()
    compress: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress,
                                                     "br": brotli.compress}
    packed = compress[encoding_name](body)
    parser = read("anthropic.messages", SSE, split(packed, range(0, len(packed), 13)), content_encoding=encoding_name)
    assert parser.finish() == CASES[5][4]


def test_raw_deflate_is_read() -> None:
    packer = zlib.compressobj(wbits=-15)
    packed = packer.compress(samples.OPENAI_CHAT_JSON) + packer.flush()
    assert read("openai.chat", JSON, [packed[:10], packed[10:]], content_encoding="deflate").finish() == Usage(19, 10)


def test_unknown_encoding_is_estimated_from_its_size() -> None:
    usage = read("openai.chat", JSON, [b"\x28\xb5\x2f\xfd" + b"\x00" * 400], content_encoding="zstd",
                 prompt_tokens=7).finish()
    assert usage == Usage(7, 101, estimated=True)


@pytest.mark.parametrize("body", [
    b"<html><body>502 Bad Gateway</body></html>",
    b"data: {not json\n\ndata: [1,2\n\n",
    b'{"usage": {"prompt_tokens": "many", "completion_tokens": -3}, "choices": 7}',
    b'[[[[{"usage": null}]]]]]]]]}}}',
    b"\xff\xfe\x00garbage\x00" * 50,
    b'{"choices": [{"delta": {"content": "\\',
])
def test_malformed_bodies_are_estimated_never_raise(body: bytes) -> None:
    for content_type in (JSON, SSE, EVENTSTREAM, ""):
        for api in ("openai.chat", "anthropic.messages", "gemini.generate_content", "bedrock.converse", "x.unknown"):
            parser = read(api, content_type, split(body, [3, 17]))
            usage = parser.finish(complete=False)
            assert usage is not None and usage.estimated


def test_bedrock_invoke_usage_from_headers() -> None:
    headers = {"x-amzn-bedrock-input-token-count": "120", "x-amzn-bedrock-output-token-count": "34"}
    parser = UsageParser("bedrock.invoke", content_type=JSON, headers=headers)
    parser.feed(b'{"generation": "text", "stop_reason": "stop"}')
    assert parser.finish() == Usage(120, 34)


def test_bedrock_invoke_stream_reads_invocation_metrics() -> None:
    import base64

    def chunk(payload: dict[str, object]) -> bytes:
        encoded = base64.b64encode(json.dumps(payload).encode()).decode()
        return samples.frame({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
                             json.dumps({"bytes": encoded}).encode())

    body = chunk({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})
    body += chunk({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 11, "outputTokenCount": 3, "invocationLatency": 500, "firstByteLatency": 300}})
    assert read("bedrock.invoke", EVENTSTREAM, split(body, [5, 40, 90])).finish() == Usage(11, 3)


def test_highly_compressed_body_is_read_to_its_end() -> None:
    """5 MB of keep-alive comment compressed to a few KB, fed at once: the events after it still count."""
    packed = gzip.compress(b": " + b"a" * 5_000_000 + b"\n" + samples.anthropic_sse(), 9)
    parser = read("anthropic.messages", SSE, [packed], content_encoding="gzip")
    assert parser.finish() == CASES[5][4]
    assert parser.buffered <= 1 << 20


def test_object_with_endless_members_stays_bounded() -> None:
    parser = UsageParser("openai.chat", content_type=JSON, max_item_bytes=4096)
    parser.feed(b'{"usage": {"prompt_tokens": 2, "completion_tokens": 3}')
    for i in range(5000):
        parser.feed(b', "k%d": "%s"' % (i, b"v" * 20))
        assert parser.buffered <= 3 * 4096
    parser.feed(b"}")
    assert parser.finish() == Usage(2, 3)
