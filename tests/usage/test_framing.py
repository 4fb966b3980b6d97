"""SSE and JSON splitting: any values, any line endings, any chunking give back exactly what was sent."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from filter.usage.jsonstream import JsonSplitter
from filter.usage.sse import SseDecoder

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(json_values, max_size=6), cuts=cut_points, indent=st.sampled_from([None, 1]),
       ascii_only=st.booleans())
def test_array_elements_come_back_one_by_one(values: list[Any], cuts: list[int], indent: int | None,
                                            ascii_only: bool) -> None:
    got: list[tuple[Any, bool]] = []
    dropped: list[int] = []
    splitter = JsonSplitter(lambda v, element: got.append((v, element)), dropped.append, 1 << 20)
    for piece in chunked(json.dumps(values, indent=indent, ensure_ascii=ascii_only).encode(), cuts):
        splitter.feed(piece)
    splitter.finish()
    assert got == [(v, True) for v in values] and not dropped


@settings(max_examples=200, deadline=None)
@given(members=st.dictionaries(st.text(max_size=10), json_values, max_size=6), cuts=cut_points,
       repeat=st.integers(min_value=1, max_value=3))
def test_objects_come_back_whole_also_as_json_lines(members: dict[str, Any], cuts: list[int], repeat: int) -> None:
    got: list[tuple[Any, bool]] = []
    splitter = JsonSplitter(lambda v, element: got.append((v, element)), lambda n: None, 1 << 20)
    for piece in chunked(b"\n".join([json.dumps(members, ensure_ascii=False).encode()] * repeat), cuts):
        splitter.feed(piece)
    splitter.finish()
    assert got == [(members, False)] * repeat


line_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.sampled_from(["", "message_delta", "x"]), st.lists(line_text, min_size=1,
                                                                                       max_size=3)), max_size=5),
       eol=st.sampled_from(["\n", "\r\n", "\r"]), cuts=cut_points)
def test_sse_events_come_back_for_any_line_ending(events: list[tuple[str, list[str]]], eol: str,
                                                 cuts: list[int]) -> None:
    text = ": keep-alive" + eol
    for name, lines in events:
        if name:
            text += f"event: {name}{eol}"
        text += "".join(f"data: {line}{eol}" for line in lines) + eol
    got: list[tuple[str, bytes]] = []
    decoder = SseDecoder(lambda name, data: got.append((name, data)), lambda n: None, 1 << 20)
    for piece in chunked(text.encode(), cuts):
        decoder.feed(piece)
    decoder.finish()
    assert got == [(name, "\n".join(lines).encode()) for name, lines in events]
