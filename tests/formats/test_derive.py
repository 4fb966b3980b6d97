"""Derived copies of text: decoded, normalised, base64 runs, joined text blocks, PDF text; each maps back."""

from __future__ import annotations

import base64
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter import shortcuts
from filter.formats import derive
from filter.formats.pdf import PDF_MAX_PAGES, pdf_text
from filter.model import Piece, TextSegment
from tests.formats.helpers import parsed, pdf_with_text, segments

RNG = random.Random(11)
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def aws_key_id() -> str:
    return "AKIA" + "".join(RNG.choice(BASE32) for _ in range(16))


def chat(content: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def derived_of(path: str, body: object, location: str) -> TextSegment:
    (seg,) = [s for s in parsed(path, body).segments if s.location == location]
    return seg


def original_span(seg: TextSegment, start: int, end: int) -> tuple[str, int, int]:
    """Where derived text[start:end] came from (one piece)."""
    assert seg.origin is not None
    (piece,) = [p for p in seg.origin.pieces if p.at <= start < p.at + p.length]
    return piece.location, piece.original(start - piece.at), _end(piece, end - piece.at)


def _end(piece: Piece, offset: int) -> int:
    return piece.original_end(offset)


def test_zero_width_and_format_characters_are_removed_with_offsets_into_the_original() -> None:
    key = aws_key_id()
    text = "id: " + "\u200b".join(key[:10]) + "\u00ad\ufeff\u2060" + key[10:] + " end"
    seg = derived_of("/v1/chat/completions", chat(text), "messages[0].content#normalized")
    assert seg.text == f"id: {key} end" and seg.decoded == "unicode"
    start = seg.text.index(key)
    loc, a, b = original_span(seg, start, start + len(key))
    assert loc == "messages[0].content" and text[a:b].replace("\u200b", "").startswith(key[:10])
    assert a == 4 and b == text.index(" end")


def test_full_width_and_other_compatibility_forms_are_folded() -> None:
    key = aws_key_id()
    wide = "".join(chr(ord(c) + 0xFEE0) for c in key)  # ＡＫＩＡ…
    text = f"ﬁle {wide}!"
    seg = derived_of("/v1/chat/completions", chat(text), "messages[0].content#normalized")
    assert seg.text == f"file {key}!"
    start = seg.text.index(key)
    assert original_span(seg, start, start + len(key)) == ("messages[0].content", text.index(wide), len(text) - 1)


def test_unicode_tag_characters_read_as_the_ascii_they_hide() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "token")
    seg = derived_of("/v1/chat/completions", chat(f"hi {hidden}"), "messages[0].content#normalized")
    assert seg.text == "hi token"


def test_plain_and_already_normal_text_gets_no_copy() -> None:
    found = segments(parsed("/v1/chat/completions", chat("naïve café — 日本語 🙂 plain")))
    assert [loc for loc in found if "#" in loc] == []


def test_percent_decoded_runs_map_each_character_back() -> None:
    text = "see https://h.example/cb?access_token=tok%5Fabc%2Fdef and 100% sure"
    seg = derived_of("/v1/chat/completions", chat(text), "messages[0].content#urldecoded")
    assert seg.text == "https://h.example/cb?access_token=tok_abc/def"
    start = seg.text.index("tok_abc")
    assert original_span(seg, start, start + len("tok_abc/def")) == (
        "messages[0].content",
        text.index("tok%5F"),
        text.index(" and"),
    )


def test_percent_encoded_utf8_maps_to_all_its_escapes() -> None:
    text = "q=%C3%A9t%C3%A9"
    seg = derived_of("/v1/chat/completions", chat(text), "messages[0].content#urldecoded")
    assert seg.text == "q=été"
    assert original_span(seg, 2, 5) == ("messages[0].content", 2, len(text))


def test_escaped_json_in_a_string_is_unescaped_in_place() -> None:
    inner = '{"DD_API_KEY":"\\u00354011f75ad58bc3059b0fe78a0765e8a","path":"~\\/.ssh\\/id_\\u0072sa","q":"\\""}'
    body = {"messages": [{"role": "tool", "tool_call_id": "c", "content": inner}]}
    seg = derived_of("/v1/chat/completions", body, "messages[0].content$#decoded")
    assert seg.text == '{"DD_API_KEY":"54011f75ad58bc3059b0fe78a0765e8a","path":"~/.ssh/id_rsa","q":"\\""}'
    start = seg.text.index("5401")
    loc, a, b = original_span(seg, start, start + 32)
    assert (loc, inner[a:b]) == ("messages[0].content", "\\u00354011f75ad58bc3059b0fe78a0765e8a")


def test_base64_runs_that_decode_to_text_are_scanned_whole_run() -> None:
    key = aws_key_id()
    encoded = base64.b64encode(f"aws_access_key_id = {key}\n".encode()).decode()
    text = f"decode this: {encoded} thanks"
    seg = derived_of("/v1/chat/completions", chat(text), "messages[0].content#base64")
    assert seg.text == f"aws_access_key_id = {key}\n" and seg.decoded == "base64"
    assert original_span(seg, 20, 40) == ("messages[0].content", text.index(encoded), text.index(" thanks"))


def test_base64_url_safe_and_after_an_equals_sign() -> None:
    encoded = base64.urlsafe_b64encode(b"the password is hunter2-hunter2??>>").decode().rstrip("=")
    seg = derived_of("/v1/chat/completions", chat(f"X={encoded}"), "messages[0].content#base64")
    assert seg.text == "the password is hunter2-hunter2??>>"


@pytest.mark.parametrize(
    "text",
    [
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # hex: binary when decoded
        "def some_rather_long_function_name_here(): pass",  # identifiers
        "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 4).decode(),  # binary
        "short " + base64.b64encode(b"hello").decode(),  # shorter than the minimum run
    ],
)
def test_base64_looking_runs_that_are_not_text_get_no_copy(text: str) -> None:
    assert "messages[0].content#base64" not in segments(parsed("/v1/chat/completions", chat(text)))


def test_base64_decoding_is_bounded_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(derive, "BASE64_MAX_RUNS", 2)
    runs = " ".join(base64.b64encode(f"note number {i} of many".encode()).decode() for i in range(5))
    seg = derived_of("/v1/chat/completions", chat(runs), "messages[0].content#base64")
    assert seg.text == "note number 0 of many\nnote number 1 of many"


def test_adjacent_text_blocks_are_joined_across_their_boundary() -> None:
    blocks = [{"type": "text", "text": "a" * 20_000}, {"type": "text", "text": "bc"}, {"type": "text", "text": "d"}]
    body = {"messages": [{"role": "user", "content": [*blocks, {"type": "image", "source": {}}, {"type": "text", "text": "e"}]}]}
    result = parsed("/v1/messages", body)
    seg = segments(result)["messages[0].content#joined"]
    assert seg == "a" * derive.JOIN_WINDOW + "bcd"  # a long block gives only its window; the image breaks the run
    (joined,) = [s for s in result.segments if s.location == "messages[0].content#joined"]
    assert joined.origin is not None and joined.origin.across
    assert [(p.location, p.start, p.end) for p in joined.origin.pieces] == [
        ("messages[0].content[0].text", 20_000 - derive.JOIN_WINDOW, 20_000),
        ("messages[0].content[1].text", 0, 2),
        ("messages[0].content[2].text", 0, 1),
    ]


@pytest.mark.parametrize(
    ("path", "body", "run"),
    [
        ("/v1/chat/completions", chat([{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]), "messages[0].content"),
        ("/v1beta/models/g:generateContent", {"contents": [{"parts": [{"text": "x"}, {"text": "y"}]}]}, "contents[0].parts"),
        ("/model/m/converse", {"messages": [{"role": "user", "content": [{"text": "x"}, {"text": "y"}]}]}, "messages[0].content"),
        ("/v1/messages", {"system": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}, "system"),
    ],
)
def test_every_format_joins_its_text_blocks(path: str, body: object, run: str) -> None:
    assert segments(parsed(path, body))[f"{run}#joined"] == "xy"


def test_long_middle_block_contributes_both_ends_only() -> None:
    seg = derive.joined("c", [TextSegment("a", "x"), TextSegment("b", "m" * 40_000), TextSegment("d", "y")])
    assert seg is not None and seg.text == "x" + "m" * derive.JOIN_WINDOW + "\n\x00\n" + "m" * derive.JOIN_WINDOW + "y"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        (
            "/v1/messages",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "{pdf}"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].source.data",
        ),
        (
            "/v1/chat/completions",
            chat([{"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,{pdf}"}}]),
            "messages[0].content[0].file.file_data",
        ),
        (
            "/v1beta/models/g:generateContent",
            {"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "{pdf}"}}]}]},
            "contents[0].parts[0].inlineData.data",
        ),
        (
            "/model/m/converse",
            {
                "messages": [
                    {"role": "user", "content": [{"document": {"format": "pdf", "name": "r", "source": {"bytes": "{pdf}"}}}]}
                ]
            },
            "messages[0].content[0].document.source.bytes",
        ),
        (
            "/v1/messages",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "base64", "media_type": "application/octet-stream", "data": "{pdf}"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].source.data",
        ),
    ],
)
def test_pdf_text_is_scanned_and_the_pdf_counted(path: str, body: object, location: str) -> None:
    pdf = b64(pdf_with_text("Quarterly report", "AWS key AKIAEXAMPLEPAGE2"))
    result = parsed(path, json.loads(json.dumps(body).replace("{pdf}", pdf)))
    (seg,) = [s for s in result.segments if s.location == location]
    assert seg.text == "Quarterly report\n\nAWS key AKIAEXAMPLEPAGE2" and seg.decoded == "pdf"
    assert result.image_count == 1


def test_unreadable_pdf_is_counted_not_an_error() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": b64(b"%PDF-1.7 truncated garbage")},
                    }
                ],
            }
        ]
    }
    result = parsed("/v1/messages", body)
    assert result.image_count == 1 and "messages[0].content[0].source.data" not in segments(result)


def test_pdf_pages_are_bounded() -> None:
    found = pdf_text(pdf_with_text(*[f"page {i}" for i in range(PDF_MAX_PAGES + 3)]))
    assert found is not None and not found.complete
    assert f"page {PDF_MAX_PAGES - 1}" in found.text and f"page {PDF_MAX_PAGES}" not in found.text


_PARTS = st.sampled_from(
    [
        "AKIA",
        "%41",
        "%C3%A9",
        "%",
        "\u200b",
        "\ufeff",
        "ＡＫＩＡ",
        "ﬁ",
        "\U000e0041",
        "é",
        "e\u0301",
        " ",
        "\n",
        "QUtJQVRFU1RLRVk=",
        base64.b64encode(b"some plain text here!!").decode(),
        "\\u0041",
        "\\/",
        "\ud800",
        "+",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PARTS, st.text(max_size=8)), max_size=40))
def test_derived_copies_always_map_into_their_original(parts: list[str]) -> None:
    text = "".join(parts)
    originals = {"a": TextSegment("a", text), "b": TextSegment("b", text[::-1])}
    copies = derive.derived(list(originals.values()), [("r", list(originals.values()))])
    unescaped = derive.json_unescaped(originals["a"])
    for seg in [*copies, *([unescaped] if unescaped else [])]:
        assert seg.origin is not None and seg.origin.pieces
        for piece in seg.origin.pieces:
            original = originals[piece.location].text
            assert 0 <= piece.start <= piece.end <= len(original)
            assert piece.at + piece.length <= len(seg.text)
            for d in range(piece.length):
                assert piece.start <= piece.original(d) < max(piece.end, piece.start + 1)
                assert piece.original(d) < piece.original_end(d + 1) <= piece.end


def test_pdf_reading_stops_when_the_checks_time_is_up() -> None:
    import time

    from filter.errors import DeadlineExceeded
    from filter.formats.limits import DecodeLimits, work_budget

    with pytest.raises(DeadlineExceeded), work_budget(DecodeLimits(), deadline=time.monotonic() - 1):
        pdf_text(pdf_with_text("page"))


# -- tool-output triggers: the gated pass finds exactly what the plain trigger patterns find ------------------
_TRIGGER_PIECES = ["1", "12", "1234567", "12345678", ":", "-", "→", "\t", " ", "\n", "\v", "\r", "\x1b[", "a", "Z",
                   ".", "/", "_", "src/app.py", "@@ -1,2 +3,4 @@", '"source":', "x", "2024-12-05", "10:30:00"]


def _plain_triggers(data: bytes) -> set[int]:
    with shortcuts.plain():
        return derive.tool_triggers(data)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_TRIGGER_PIECES), max_size=40))
def test_gated_tool_triggers_equal_the_plain_triggers(pieces: list[str]) -> None:
    data = "".join(pieces).encode()
    assert derive.tool_triggers(data) == _plain_triggers(data)


@pytest.mark.parametrize("text, numbered", [
    ("     1→import os\n     2→import sys\n", True),            # a file-read tool's line numbers
    ("  10\tfoo\n  11\tbar\n", True),                          # cat -n
    ("src/app.py:12:    token = load()\n", True),              # grep -n
    ("src/app.py-12-    context line\n", True),                # grep -C context line
    ("12:first\n13-second\n", True),                           # grep -n on one file
    ("released 2024-12-05, see CHANGES\n", False),             # a date: the gate fires, the trigger does not
    ("    x = a[1:2:3]\n", False),                             # a slice
    ("at 10:30:00 the job ran\n", False),                      # a time after a word and a space
    ("total\t12\n", False),                                    # a tab after a word
])  # fmt: skip
def test_numbered_output_is_recognised_and_its_look_alikes_are_not(text: str, numbered: bool) -> None:
    ids = derive.tool_triggers(text.encode())
    assert (derive._NUMBERED_ID in ids) is numbered
    assert ids == _plain_triggers(text.encode())


@pytest.mark.parametrize("size", [1, 15, 16, 40, 99, 100, 300])
def test_a_two_byte_trigger_at_the_very_end_of_a_short_text_is_found(size: int) -> None:
    # Hyperscan's small-buffer path once missed a two-byte literal ending exactly at the end (16-99 bytes).
    text = ("1:a " * size)[:size].encode() + b"\x1b["
    assert derive.tool_triggers(text) == {3} == _plain_triggers(text)
