"""The hot path's shortcuts change nothing a user can see: every request gets the same decision, status, reason,
findings (rule, location, offsets, fingerprint, severity, how it was decoded, the blocks it goes on into) and token
count with shortcuts on as with every one of them off (`filter.shortcuts.plain`). Requests: the whole quality
corpus (planted secrets and PII with every evasion, look-alikes, ordinary agent traffic), the format fuzzers'
shapes and bytes, hand-made edge cases of each shortcut (JSON escapes of surrogates behind escaped backslashes,
bracket and quote counts near the node limit), and conversations sent turn by turn, where the shortcuts reuse
what they learnt about each text in the turns before (filter/rules/segcache.py, derive.py's per-text triggers).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter import shortcuts
from filter.formats import derive
from filter.formats.jsonload import count_nodes, has_lone_surrogates
from filter.model import Envelope, Severity
from filter.pipeline import evaluate
from filter.rules import Fingerprinter, Ruleset
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
    findings = tuple((f.rule_id, f.location, f.start, f.end, f.fingerprint, f.mode, f.action, f.severity, f.decoded,
                      f.also) for f in decision.findings)
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


# -- conversations sent turn by turn: per-segment findings and derivations reused from earlier turns ------------
def code(n: int, lines: int = 14) -> str:
    """Clean source text, different for each `n`, long enough to be reused across turns (over 512 characters)."""
    return "".join(f"def handler_{n}_{i}(request):\n    return render(request, 'page_{i}.html', {{'n': {n}}})\n"
                   for i in range(lines))


def numbered(text: str, first: int = 1) -> str:
    """A file-read tool's output: each line behind its number."""
    return "\n".join(f"{first + i:6}\u2192{line}" for i, line in enumerate(text.splitlines()))


GITHUB = "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"
OPENAI = "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"
SLACK = "xoxb-95493310992-5190942664220-pUpg25XKO216lWDtq90hlDa2"
B64_SECRET = base64.b64encode(f"export GITHUB_TOKEN={GITHUB}\n".encode()).decode()


def tool_turn(k: int, result: str, text: str | None = None, blocks: list[str] | None = None) -> list[dict[str, Any]]:
    """One agent turn: the assistant reads a file, the user message carries the tool result and text blocks."""
    content: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": f"toolu_{k}", "content": result}]
    content += [{"type": "text", "text": b} for b in (blocks if blocks is not None else [text or f"Go on ({k})."])]
    return [
        {"role": "assistant", "content": [{"type": "text", "text": f"Reading part {k}.\n" + code(1000 + k, 8)},
                                          {"type": "tool_use", "id": f"toolu_{k}", "name": "Read",
                                           "input": {"file_path": f"/repo/m{k}.py"}}]},
        {"role": "user", "content": content},
    ]


def conversation_body(turns: list[list[dict[str, Any]]]) -> bytes:
    messages = [{"role": "user", "content": "Walk me through the repository.\n" + code(0)}]
    for turn in turns:
        messages += turn
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages}).encode()


def budget_runs() -> str:
    """More base64 runs than one request may decode (derive.BASE64_MAX_RUNS): later runs are left encoded."""
    return "\n".join(base64.b64encode(f"ordinary line {i:05d} of a log".encode()).decode() for i in range(4200))


SCENARIOS: dict[str, list[list[dict[str, Any]]]] = {
    "secrets in old turns": [
        tool_turn(1, code(1)),
        tool_turn(2, code(2) + f"OPENAI_API_KEY={OPENAI}\n" + code(3)),
        tool_turn(3, code(4), text=code(5) + f"token = '{SLACK}'\n"),
        tool_turn(4, code(6)),
        tool_turn(5, code(7)),
    ],
    "a secret split across two text blocks": [
        tool_turn(1, code(1)),
        tool_turn(2, code(2), blocks=[code(3) + "export GITHUB_TOKEN=" + GITHUB[:20], GITHUB[20:] + "\n" + code(4)]),
        tool_turn(3, code(5), blocks=[code(6), code(7)]),
        tool_turn(4, code(8)),
    ],
    "escapes in old turns": [
        tool_turn(1, code(1) + f"config: {B64_SECRET}\n" + code(2)),
        tool_turn(2, code(3) + "curl 'https://api.example.com/v1?token=" + GITHUB.replace("_", "%5F") + "'\n"),
        tool_turn(3, code(4), text=code(5) + '{"key": "\\u0067hp_' + GITHUB[4:] + '"}'),
        tool_turn(4, code(6) + "note: caf\u00e9 \uff21\uff2b\uff29\uff21 " + "\u200b".join(OPENAI[:12]) + OPENAI[12:]),
        tool_turn(5, code(7)),
    ],
    "tool output in old turns": [
        tool_turn(1, numbered(code(1))),
        tool_turn(2, numbered(code(2) + "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                              + "\n".join("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
                                          for _ in range(4))
                              + "\n-----END OPENSSH PRIVATE KEY-----\n" + code(3), first=40)),
        tool_turn(3, numbered(code(4) + f"OPENAI_API_KEY={OPENAI}\n", first=7) + "\r\n\x1b[32mdone\x1b[0m"),
        tool_turn(4, "@@ -1,3 +1,3 @@\n-" + code(5).replace("\n", "\n-", 5) + "\n+" + f"token={SLACK}\n"),
        tool_turn(5, numbered(code(6))),
    ],
    "the base64 budget exhausted": [
        tool_turn(1, code(1) + f"config: {B64_SECRET}\n"),
        tool_turn(2, budget_runs()),
        tool_turn(3, code(2) + f"config: {B64_SECRET} again\n"),
        tool_turn(4, code(3)),
    ],
    "a text repeated at another location": [
        tool_turn(1, code(1) + f"OPENAI_API_KEY={OPENAI}\n", text=code(1) + f"OPENAI_API_KEY={OPENAI}\n"),
        tool_turn(2, numbered(code(2)), text=numbered(code(2))),
        tool_turn(3, code(1) + f"OPENAI_API_KEY={OPENAI}\n"),
        tool_turn(4, code(3), blocks=[code(1) + f"OPENAI_API_KEY={OPENAI}\n", code(1) + f"OPENAI_API_KEY={OPENAI}\n"]),
    ],
}


def reuse(snapshot: Snapshot) -> int:
    """How often the shortcuts found a text they had seen: the comparison below must exercise them."""
    return snapshot.ruleset.segment_cache.hits + derive._SEEN.hits


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_conversation_sent_turn_by_turn_is_decided_the_same_both_ways(
        scenario: str, shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    turns = SCENARIOS[scenario]
    before = reuse(shipped[0])
    outcomes = []
    for n in range(1, len(turns) + 1):
        fast, plain = both(make_envelope(conversation_body(turns[:n]), path="/v1/messages"), shipped)
        assert fast == plain, f"turn {n}"
        outcomes.append(fast)
    assert reuse(shipped[0]) - before > 10 * len(turns)
    assert outcomes[-1][4], "the conversation's secrets are found in its last turn"


def test_the_budget_left_for_later_turns_is_the_same_both_ways(
        shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    """Base64 in a turn after the budget ran out is not decoded, whether the earlier turns were seen or not."""
    turns = SCENARIOS["the base64 budget exhausted"]
    fast, plain = both(make_envelope(conversation_body(turns), path="/v1/messages"), shipped)
    assert fast == plain
    decoded_at = {f[1] for f in fast[4] if f[8] == "base64"}
    assert decoded_at == {"messages[2].content[0].content"}  # turn 1's copy only; turn 3's is past the budget


def test_a_reload_between_turns_never_reuses_the_old_rule_sets_findings(
        shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    """The same packs with a known secret added (same digest): the value found in an old turn becomes critical."""
    snapshot, fast_counter, plain_counter = shipped
    turns = SCENARIOS["secrets in old turns"]
    for n in range(1, len(turns)):
        both(make_envelope(conversation_body(turns[:n]), path="/v1/messages"), shipped)
    known = frozenset({Fingerprinter(b"differential")(OPENAI.encode())})
    reloaded = replace(snapshot, ruleset=Ruleset(snapshot.ruleset.packs, Fingerprinter(b"differential"), known))
    assert reloaded.ruleset.digest == snapshot.ruleset.digest
    envelope = make_envelope(conversation_body(turns), path="/v1/messages")
    fast = outcome(envelope, reloaded, fast_counter)
    with shortcuts.plain():
        plain = outcome(envelope, reloaded, plain_counter)
    assert fast == plain
    severities = {f[0]: f[7] for f in fast[4]}
    assert severities["openai-api-key"] is Severity.CRITICAL
    assert outcome(envelope, snapshot, fast_counter)[4] != fast[4]  # the first rule set still says high


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


@pytest.mark.parametrize("body", EDGE_BODIES + JSON_PARSER_BODIES,
                         ids=[f"edge{i}" for i in range(len(EDGE_BODIES))] + [f"json{i}" for i in range(len(JSON_PARSER_BODIES))])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/unknown/path"])
def test_edge_cases_of_each_shortcut(body: bytes, path: str,
                                     shipped: tuple[Snapshot, TokenCounter, TokenCounter]) -> None:
    """Edge cases of each shortcut, and JSON that orjson and json might read apart, are decided the same."""
    fast, plain = both(make_envelope(body, path=path), shipped)
    assert fast == plain
