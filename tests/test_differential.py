"""The hot path's shortcuts change nothing a user can see: every request gets the same decision, status, reason,
findings (rule, location, offsets, fingerprint) and token count with shortcuts on as with every one of them off
(`filter.shortcuts.plain`). Requests: the whole quality corpus (planted secrets and PII with every evasion,
look-alikes, ordinary agent traffic), the format fuzzers' shapes and bytes, and hand-made edge cases of each
shortcut (JSON escapes of surrogates behind escaped backslashes, bracket and quote counts near the node limit).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter import shortcuts
from filter.formats.jsonload import count_nodes, has_lone_surrogates
from filter.model import Envelope
from filter.pipeline import evaluate
from filter.runtime import Runtime, Snapshot
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.formats.test_fuzz import CODINGS, PATHS, json_values, shaped
from tests.quality.corpus import positives
from tests.quality.negatives import negatives
from tests.quality.ordinary import ordinary
from tests.support.envelopes import make_envelope

Outcome = tuple[Any, ...]


@pytest.fixture(scope="module")
def shipped() -> Iterator[tuple[Snapshot, TokenCounter, TokenCounter]]:
    log = logging.getLogger("llm_content_filter")
    level = log.level
    log.setLevel(logging.ERROR)  # no per-process key warning
    try:
        snapshot = Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "differential"})).current
    finally:
        log.setLevel(level)
    encoding = load_encoding()
    # One token counter per path: its per-segment cache must not carry one path's counts into the other.
    yield snapshot, TokenCounter(encoding), TokenCounter(encoding)


def outcome(envelope: Envelope, snapshot: Snapshot, counter: TokenCounter) -> Outcome:
    decision = evaluate(envelope, snapshot, counter, decision_id="d").decision
    findings = tuple((f.rule_id, f.location, f.start, f.end, f.fingerprint, f.mode, f.action, f.also)
                     for f in decision.findings)
    return (decision.verdict, decision.http_status, str(decision.reason), decision.prompt_tokens, findings,
            decision.api, decision.provider)


def both(envelope: Envelope, shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> tuple[Outcome, Outcome]:
    snapshot, fast_counter, plain_counter = shipped
    fast = outcome(envelope, snapshot, fast_counter)
    with shortcuts.plain():
        plain = outcome(envelope, snapshot, plain_counter)
    return fast, plain


def test_the_whole_quality_corpus_is_decided_the_same_both_ways(
        shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    cases = [*positives(), *negatives(), *ordinary()]
    assert len(cases) > 1000
    differ = [case.id for case in cases if (pair := both(case.envelope, shipped))[0] != pair[1]]
    assert differ == []
    blocked = sum(both(c.envelope, shipped)[0][0].value == "deny" for c in cases[:50])
    assert blocked > 0  # the comparison covers findings and denials, not only clean allows


EDGE_BODIES = [
    b'{"messages": [{"role": "user", "content": "\\ud800 lone high"}]}',
    b'{"messages": [{"role": "user", "content": "\\\\ud800 escaped backslash, then text"}]}',
    b'{"messages": [{"role": "user", "content": "\\\\\\ud800 odd backslashes: a real escape"}]}',
    b'{"messages": [{"role": "user", "content": "pair \\ud83d\\ude00 AKIAIOSFODNN7EXAMPLE"}]}',
    b'{"messages": [{"role": "user", "content": "' + b"\\\\udbff " * 200 + b'key AKIAZ3MHD7QWERTY12"}]}',
    b'{"messages": [{"role": "user", "content": "' + b"\\\\udbff " * 200 + b'\\udbff"}]}',
    b'{"messages": [{"role": "user", "content": "quotes \\" and brackets [ { in text"}]}',
    b'{"messages": [' + b'{"role": "user", "content": "x"},' * 3000 + b'{"role": "user", "content": "y"}]}',
    b'{"a": "\\\\\\\\\\"[{"}',
    b"[" * 80 + b"]" * 80,
]


@pytest.mark.parametrize("body", EDGE_BODIES, ids=range(len(EDGE_BODIES)))
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/unknown/path"])
def test_edge_cases_of_each_shortcut(body: bytes, path: str,
                                     shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    fast, plain = both(make_envelope(body, path=path), shipped)
    assert fast == plain


SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(path=st.sampled_from(PATHS), coding=st.sampled_from(sorted(CODINGS)), value=json_values)
def test_any_json_is_decided_the_same_both_ways(path: str, coding: str, value: Any,
                                                shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    body = CODINGS[coding](json.dumps(value).encode())
    fast, plain = both(make_envelope(body, path=path, headers={"content-encoding": coding}), shipped)
    assert fast == plain


@SETTINGS
@given(path=st.sampled_from(PATHS), value=shaped)
def test_request_like_shapes_are_decided_the_same_both_ways(
        path: str, value: Any, shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    fast, plain = both(make_envelope(json.dumps(value).encode(), path=path), shipped)
    assert fast == plain


@SETTINGS
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=1024))
def test_any_bytes_are_decided_the_same_both_ways(path: str, body: bytes,
                                                  shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    fast, plain = both(make_envelope(body, path=path), shipped)
    assert fast == plain


ESCAPE_BYTES = st.binary(max_size=40).map(lambda b: bytes(b"\\udD89aAfF0\"[{x"[c % 14] for c in b))


@settings(max_examples=2000, deadline=None)
@given(ESCAPE_BYTES, st.integers(min_value=0, max_value=40))
def test_the_counts_and_the_surrogate_test_agree_with_the_plain_code(data: bytes, enough: int) -> None:
    fast_nodes, fast_surrogates = count_nodes(data, enough), has_lone_surrogates(data)
    with shortcuts.plain():
        assert count_nodes(data, enough) == fast_nodes
        plain_surrogates = has_lone_surrogates(data)
    # Unsure (many escaped sequences), the fast test says True: scrubbing text without surrogates changes nothing.
    assert fast_surrogates == plain_surrogates or (fast_surrogates and data.count(b"\\u") >= 64)


def _tool_args(args: bytes) -> bytes:
    """A chat body whose tool call carries `args` (JSON text, already escaped as a JSON string's content)."""
    return (b'{"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", '
            b'"function": {"name": "f", "arguments": "' + args + b'"}}]}]}')


# Where orjson and json differ, the body must be decided as json decides it (filter/formats/jsonload.py).
JSON_PARSER_BODIES = [
    b'{"messages": [{"role": "user", "content": "AKIAIOSFODNN7EXAMPLE"}], "messages": []}',
    b'{"messages": [{"role": "user", "content": "x", "content": "y"}]}',
    b'{"model": "m", "model": "\\u0022\\u0022", "messages": []}',
    _tool_args(b'{\\"k\\": \\"AKIAIOSFODNN7EXAMPLE\\", \\"k\\": \\"x\\"}'),  # both values are scanned
    _tool_args(b'{\\"k\\": 1, \\"k\\": \\"\\\\u0022\\\\u0022\\"}'),
    b'{"messages": [{"role": "user", "content": "\\ud800 AKIAIOSFODNN7EXAMPLE"}]}',
    b'{"messages": [{"role": "user", "content": "x"}], "n": 41111111111111111111111111}',
    b'{"messages": [{"role": "user", "content": "x"}], "n": -9223372036854775809, "m": 1e19}',
    b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e400}',
    b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    b'{"messages": [{"role": "user", "content": "x"}], "n": ' + b"9" * 4301 + b"}",
    b'{"messages": [{"role": "user", "content": "x"}], "deep": ' + b"[" * 63 + b"]" * 63 + b"}",
    b'{"messages": [{"role": "user", "content": "x"}], "deep": ' + b"[" * 64 + b"]" * 64 + b"}",
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "AKIAIOSFODNN7EXAMPLE"}]}',
    b' \t\r\n{"messages" :\n[ {"role":"user" , "content":"x"} ]\r\n} \t',
    b'\x0c{"messages": [{"role": "user", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "x"}]}\xc2\xa0',
    b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
]


@pytest.mark.parametrize("body", JSON_PARSER_BODIES, ids=range(len(JSON_PARSER_BODIES)))
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/unknown/path"])
def test_json_read_by_orjson_or_json_is_decided_the_same(body: bytes, path: str,
                                                         shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    fast, plain = both(make_envelope(body, path=path), shipped)
    assert fast == plain
