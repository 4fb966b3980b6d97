"""Request bodies parse to the same values, and are refused with the same 400s, whichever JSON parser reads them:
orjson where it agrees with `json`, `json` for what only it reads or words (filter.formats.jsonload)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter import shortcuts
from filter.errors import RequestError
from filter.formats.jsonload import UNSURE, charge_json, fast_loads, load_json
from filter.formats.limits import DecodeLimits

LIMITS = DecodeLimits()


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (1 is not 1.0; -0.0 is not 0.0; key order counts)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def parsed(data: bytes) -> tuple[str, Any]:
    try:
        return "value", load_json(data, LIMITS)
    except RequestError as e:
        return type(e).__name__, str(e)


def both_ways(data: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    fast = parsed(data)
    with shortcuts.plain():
        plain = parsed(data)
    return fast, plain


def assert_same(data: bytes) -> tuple[str, Any]:
    fast, plain = both_ways(data)
    assert fast[0] == plain[0] and (same(fast[1], plain[1]) if fast[0] == "value" else fast[1] == plain[1])
    return fast


DEEP = 65  # one level over the default limit of 64
CASES = {
    "duplicate key": b'{"a": 1, "a": 2}',
    "duplicate key, nested": b'{"m": [{"role": "user", "role": "system"}]}',
    "duplicate key hidden by \\u0022 quotes": b'{"a": 1, "a": "\\u0022\\u0022"}',
    "duplicate key spelled with an escape": b'{"a": 1, "\\u0061": 2}',
    "same key in different objects": b'[{"a": 1}, {"a": 2}]',
    "escaped quotes and backslashes": b'{"a\\"b": "c\\\\\\"d\\\\", "e": "\\u0022"}',
    "integer beyond 64 bits": b'{"n": 18446744073709551616, "m": -9223372036854775809}',
    "largest 64-bit integers": b"[18446744073709551615, -9223372036854775808]",
    "integer of 300 digits": b"[" + b"7" * 300 + b"]",
    "integer over the digit limit": b"[" + b"7" * 4301 + b"]",
    "float as large as a big integer": b"[1e19, -1e19, 9.3e18]",
    "float overflow": b'{"t": 1e400}',
    "float underflow": b"[1e-400, -0.0, -0]",
    "NaN and Infinity": b"[NaN, Infinity, -Infinity]",
    "lone high surrogate": b'{"c": "\\ud800 text"}',
    "lone low surrogate": b'{"c": "\\udc00"}',
    "surrogate pair": b'{"c": "\\ud83d\\ude00"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"a": 1}',
    "JSON whitespace": b' \t\r\n{"a" \n:\t[1 ,2]\r} \n',
    "form feed": b'\x0c{"a": 1}',
    "no-break space": b'\xc2\xa0{"a": 1}',
    "invalid UTF-8": b'{"a": "\xff"}',
    "encoded surrogate": b'{"a": "\xed\xa0\x80"}',
    "control character": b'{"a": "x\x01"}',
    "trailing comma": b'{"a": [1,]}',
    "trailing data": b'{"a": 1} x',
    "empty": b"",
    "scalar string": b'"just \\"text\\""',
    "nested at the limit": b"[" * 64 + b"]" * 64,
    "nested over the limit": b"[" * DEEP + b"]" * DEEP,
    "nested past the recursion limit": b'{"a":' * 1100 + b"1" + b"}" * 1100,
}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_edge_cases_parse_or_fail_the_same_both_ways(data: bytes) -> None:
    assert_same(data)


def test_a_repeated_key_is_refused_whichever_parser_reads_it() -> None:
    for data in (CASES["duplicate key"], CASES["duplicate key hidden by \\u0022 quotes"],
                 CASES["duplicate key spelled with an escape"]):
        kind, message = assert_same(data)
        assert kind == "MalformedRequest" and "duplicate key" in message


def test_large_integers_stay_exact() -> None:
    kind, value = assert_same(CASES["integer beyond 64 bits"])
    assert kind == "value" and value == {"n": 2**64, "m": -(2**63) - 1}


def test_orjson_reads_ordinary_bodies() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": 'say "hi" \\ \ud83d\ude00'}]}).encode()
    assert fast_loads(body, charge_json(body, LIMITS, "body"), LIMITS.max_json_depth) is not UNSURE


JSON_TEXT = st.recursive(
    st.sampled_from([b"0", b"-0", b"1.5e3", b"18446744073709551616", b"1e400", b"NaN", b"true", b"null", b'""',
                     b'"a"', b'"\\""', b'"\\\\"', b'"\\u0022"', b'"\\ud800"', b'"\\ud83d\\ude00"', b'"\xc3\xa9"']),
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: b"[" + b",".join(xs) + b"]")
    | st.lists(st.tuples(st.sampled_from([b'"a"', b'"b"', b'"\\u0061"', b'"a\\"b"', b'"\\u0022"']), inner),
               max_size=4).map(lambda kvs: b"{" + b",".join(k + b":" + v for k, v in kvs) + b"}"),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(JSON_TEXT, st.sampled_from([b"", b" ", b"\n", b"\xef\xbb\xbf"]))
def test_any_json_text_parses_or_fails_the_same_both_ways(data: bytes, pad: bytes) -> None:
    assert_same(pad + data + pad.strip(b"\xef\xbb\xbf"))
