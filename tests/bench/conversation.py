"""A growing conversation: an agent resends its whole history every turn plus ~2 KB. What does a turn cost?

One Anthropic Messages conversation (as Claude Code sends it: instructions, assistant text and tool calls, file
reads with numbered lines as tool results, from stdlib sources the shipped packs find nothing in) is grown turn
by turn to ~128k tokens. Every turn is evaluated in-process (filter.pipeline.evaluate: parse, walk, derive, scan,
tokens, decide) with the shortcuts on (per-segment findings reused, filter/rules/segcache.py) and with every
shortcut off (`filter.shortcuts.plain`, what each turn cost before), interleaved turn by turn, each with its own
rule set and token counter so neither warms the other's caches. Both are compared with one 2 KB request.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from filter import shortcuts
from filter.model import Envelope

TARGET_TOKENS = 128_000
TURN_BYTES = 2_000
TARGET_RATIO = 1.5
PATH = "/v1/messages"
INSTRUCTIONS = [
    "Read the next part of the module and tell me what it does.",
    "Keep going; note anything that looks unsafe.",
    "Continue with the following lines, then summarise.",
    "Look at the next chunk and check the error handling.",
]


def turns(sources: list[str], turn_bytes: int = TURN_BYTES) -> Iterator[list[dict[str, Any]]]:
    """The message list after each turn: the previous turns unchanged, then ~`turn_bytes` more."""
    messages: list[dict[str, Any]] = []
    lines = [line for src in sources for line in src.splitlines()]
    pos = 0
    k = 0
    while True:
        chunk: list[str] = []
        size = 0
        while size < turn_bytes - 400 and pos < len(lines):
            chunk.append(f"{pos + 1:6}→{lines[pos]}")  # a file-read tool's numbered lines
            size += len(chunk[-1]) + 1
            pos += 1
        if not chunk:
            return
        messages = [
            *messages,
            {"role": "assistant", "content": [
                {"type": "text", "text": f"I will read lines {pos - len(chunk) + 1} to {pos} next."},
                {"type": "tool_use", "id": f"toolu_{k:06d}", "name": "Read",
                 "input": {"file_path": "/repo/module.py", "offset": pos - len(chunk) + 1, "limit": len(chunk)}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"toolu_{k:06d}", "content": "\n".join(chunk)},
                {"type": "text", "text": INSTRUCTIONS[k % len(INSTRUCTIONS)]},
            ]},
        ]
        k += 1
        yield messages


def body(messages: list[dict[str, Any]]) -> bytes:
    return json.dumps({
        "model": "claude-sonnet-4-5", "max_tokens": 8192, "stream": True,
        "system": "You are a careful coding agent working in a repository.",
        "messages": [{"role": "user", "content": "Walk me through this module."}, *messages],
    }).encode()


def envelope(data: bytes) -> Envelope:
    from tests.support.envelopes import make_envelope

    return make_envelope(data, path=PATH, headers={"anthropic-version": "2023-06-01"})


def run(quick: bool = False) -> dict[str, Any]:
    from filter.formats import derive
    from filter.pipeline import evaluate
    from filter.runtime import Runtime
    from filter.settings import load_settings
    from filter.tokens import TokenCounter, load_encoding
    from tests.bench import stages
    from tests.bench.corpus import clean_sources

    stages.install()  # stage wrappers (json, walk, derive, scan, tokens...), to say where a turn's time goes
    stages.CLOCK.now = time.thread_time_ns  # type: ignore[method-assign]  # CPU time: other tenants left out
    settings = load_settings(None, env={**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key"})
    encoding = load_encoding(None)
    modes: dict[str, Callable[[], AbstractContextManager[None]]] = {"plain": shortcuts.plain, "fast": nullcontext}
    target_tokens = TARGET_TOKENS // (4 if quick else 1)
    snapshot = Runtime(None, settings).current
    sources = clean_sources(snapshot.ruleset, 5 * target_tokens)
    counter = TokenCounter(encoding)
    bodies: list[bytes] = []
    for messages in turns(sources):  # up to just under the target (the default limit refuses more)
        bodies.append(body(messages))
        if len(bodies) % 10 == 0 and counter.count_text(bodies[-1].decode()) >= 0.96 * target_tokens:
            break

    def once(name: str, snap: Any, counter: TokenCounter, env: Envelope) -> tuple[float, dict[str, float]]:
        gc.collect()  # the other path's garbage is not this one's cost
        stages.CLOCK.reset()
        with modes[name]():
            t0 = time.thread_time_ns()
            decision = evaluate(env, snap, counter, decision_id="d").decision
            spent = (time.thread_time_ns() - t0) / 1000
        if not decision.allowed:
            raise AssertionError(f"{name}: the clean conversation was refused: {decision.reason}")
        return spent, stages.CLOCK.per_call_us(1)

    # The yardstick: one 2 KB request (the first turn), new text each time as far as any cache can tell, i.e. the
    # plain path, in a warm process; measured between the turns below, so the machine's load weighs on both.
    # (The fast path on that same request sent again is printed too.)
    small = envelope(bodies[0])
    yardstick: dict[str, list[float]] = {name: [] for name in modes}

    # The conversation, grown turn by turn, both ways interleaved; repeated with empty caches, the fastest of the
    # passes kept per turn (the machine is shared: noise only ever adds).
    per_turn: dict[str, list[float]] = {name: [float("inf")] * len(bodies) for name in modes}
    last_stages: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
    cache_line = ""
    for _ in range(1 if quick else 2):
        runs = {name: (Runtime(None, settings).current, TokenCounter(encoding)) for name in modes}
        derive._SEEN.clear()
        for t, data in enumerate(bodies):
            env = envelope(data)
            for name in modes:
                spent, parts = once(name, *runs[name], env)
                if spent < per_turn[name][t]:
                    per_turn[name][t] = spent
                if t >= len(bodies) - 10:
                    last_stages[name].append(parts)
                yardstick[name].append(once(name, snapshot, counter, small)[0])
        cache = runs["fast"][0].ruleset.segment_cache
        cache_line = (f"   caches after the last turn: findings {len(cache)} entries ~{cache.bytes // 1024} KiB "
                      f"({cache.hits} hits / {cache.misses} misses); derivations {len(derive._SEEN)} entries "
                      f"~{derive._SEEN.bytes // 1024} KiB")
    tokens = TokenCounter(encoding).count_text(bodies[-1].decode())
    single = {name: statistics.median(v) for name, v in yardstick.items()}
    n = len(bodies)
    print(f"\n== Growing conversation: {n} turns of ~{TURN_BYTES // 1000} KB to {len(bodies[-1]) // 1000} KB "
          f"(~{tokens // 1000}k tokens), in-process CPU µs per turn (evaluate) ==")
    print(f"   one 2 KB request: {single['plain']:.0f} µs new (plain path); the same request again with the "
          f"shortcuts: {single['fast']:.0f} µs")
    print(f"   {'':<32}{'plain (before)':>16}{'fast (after)':>14}{'target':>10}")
    figures: dict[str, Any] = {"turns": n, "bytes": len(bodies[-1]), "tokens": tokens, "single": single}
    for label, agg in (("per turn, amortised", statistics.fmean),
                       ("per turn at full size (last 10)", lambda v: statistics.fmean(v[-10:]))):
        p, f = agg(per_turn["plain"]), agg(per_turn["fast"])
        print(f"   {label:<32}{p:>13.0f} µs{f:>11.0f} µs")
        print(f"   {'  ÷ one new 2 KB request':<32}{p / single['plain']:>15.1f}×{f / single['plain']:>13.1f}×"
              f"{f'≤ {TARGET_RATIO}×':>10}")
        figures[label] = {"plain": p, "fast": f}
    print("   where a full-size turn's time goes (µs, mean of the last 10 turns): plain | fast")
    names = ["decompress", "json", "walk", "roads", "derive", "scan", "redactor", "tokens", "decide"]
    for name in modes:
        figures[f"stages {name}"] = {stage: statistics.fmean(st.get(stage, 0.0) for st in last_stages[name])
                                     for stage in names}
        figures[f"stages {name}"]["rest of evaluate"] = statistics.fmean(per_turn[name][-10:]) - sum(
            figures[f"stages {name}"].values())
    for stage in [*names, "rest of evaluate"]:
        print(f"     {stage:<17}{figures['stages plain'][stage]:>9.0f} |{figures['stages fast'][stage]:>7.0f}")
    # Inside the fast scan and derive: hashing every text of the full-size request, measured alone (a string
    # caches its hash, so a request pays it once; fresh copies of the texts stand for a newly parsed body).
    from filter import formats
    from filter.textcache import text_hash

    texts = [s.text for s in formats.parse(envelope(bodies[-1])).segments]
    fresh = [[(t + ".")[:-1] for t in texts] for _ in range(5)]
    hashing = min(_cpu(lambda copies=copies: [text_hash(t) for t in copies]) for copies in fresh)
    print(f"     of which hashing every text once: ~{hashing:.0f} µs ({len(texts)} segments)")
    print(cache_line)
    return figures


def _cpu(fn: Callable[[], object]) -> float:
    t0 = time.thread_time_ns()
    fn()
    return (time.thread_time_ns() - t0) / 1000


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
