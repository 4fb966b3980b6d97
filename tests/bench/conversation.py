"""A growing conversation: an agent resends its whole history every turn plus ~2 KB. What does a turn cost?

One Anthropic Messages conversation (as Claude Code sends it: instructions, assistant text and tool calls, file
reads with numbered lines as tool results, from stdlib sources the shipped packs find nothing in) is grown turn
by turn to ~128k tokens. Every turn is evaluated in-process (filter.pipeline.evaluate: parse, walk, derive, scan,
tokens, decide) with the shortcuts on (per-segment findings reused, filter/rules/segcache.py) and with every
shortcut off (`filter.shortcuts.plain`, what each turn cost before), interleaved turn by turn, each with its own
rule set and token counter so neither warms the other's caches. Both are compared with one 2 KB request.
"""

from __future__ import annotations

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
    from filter.pipeline import evaluate
    from filter.runtime import Runtime
    from filter.settings import load_settings
    from filter.tokens import TokenCounter, load_encoding
    from tests.bench import stages
    from tests.bench.corpus import clean_sources

    stages.install()  # stage wrappers (json, walk, derive, scan, tokens...), to say where a turn's time goes
    settings = load_settings(None, env={**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key"})
    encoding = load_encoding(None)
    runs = {name: (Runtime(None, settings).current, TokenCounter(encoding)) for name in ("plain", "fast")}
    modes: dict[str, Callable[[], AbstractContextManager[None]]] = {"plain": shortcuts.plain, "fast": nullcontext}
    target_bytes = 4 * TARGET_TOKENS  # ~4 bytes of source per token; the count is printed below
    sources = clean_sources(runs["fast"][0].ruleset, 2 * target_bytes)

    def once(name: str, env: Envelope) -> tuple[float, dict[str, float]]:
        snapshot, counter = runs[name]
        stages.CLOCK.reset()
        with modes[name]():
            t0 = time.process_time_ns()
            decision = evaluate(env, snapshot, counter, decision_id="d").decision
            spent = (time.process_time_ns() - t0) / 1000
        if not decision.allowed:
            raise AssertionError(f"{name}: the clean conversation was refused: {decision.reason}")
        return spent, stages.CLOCK.per_call_us(1)

    # One 2 KB request (the first turn's size), measured warm, as the yardstick.
    small = envelope(body(next(turns(sources))))
    single = {name: statistics.median(once(name, small)[0] for _ in range(30 if quick else 200)) for name in runs}

    per_turn: dict[str, list[float]] = {"plain": [], "fast": []}
    last_stages: dict[str, list[dict[str, float]]] = {"plain": [], "fast": []}
    size = 0
    for messages in turns(sources):
        data = body(messages)
        size = len(data)
        env = envelope(data)
        for name in ("plain", "fast"):
            spent, parts = once(name, env)
            per_turn[name].append(spent)
            last_stages[name] = [*last_stages[name][-9:], parts]
        if size >= (target_bytes // 4 if quick else target_bytes):
            break
    tokens = runs["fast"][1].count_text(env.body.decode())
    n = len(per_turn["fast"])
    print(f"\n== Growing conversation: {n} turns of ~{TURN_BYTES // 1000} KB to {size // 1000} KB "
          f"(~{tokens // 1000}k tokens), in-process CPU µs per turn ==")
    print(f"   one 2 KB request: plain {single['plain']:.0f} | fast {single['fast']:.0f}")
    print(f"   {'':<30}{'plain (before)':>16}{'fast (after)':>14}{'target':>10}")
    rows = [("amortised over every turn", lambda v: statistics.fmean(v)),
            ("last 10 turns (full size)", lambda v: statistics.fmean(v[-10:]))]
    figures: dict[str, Any] = {"turns": n, "bytes": size, "tokens": tokens, "single": single}
    for label, agg in rows:
        p, f = agg(per_turn["plain"]), agg(per_turn["fast"])
        print(f"   {label:<30}{p:>10.0f} µs{f:>10.0f} µs")
        print(f"   {'  ÷ one 2 KB request':<30}{p / single['plain']:>15.1f}×{f / single['fast']:>13.1f}×"
              f"{f'≤ {TARGET_RATIO}×':>10}")
        figures[label] = {"plain": p, "fast": f}
    print("   where a full-size turn's time goes (mean of the last 10 turns, µs): plain | fast")
    names = ["decompress", "json", "walk", "roads", "derive", "scan", "segment keys", "redactor", "tokens", "decide"]
    for stage in names:
        p = statistics.fmean(s.get(stage, 0.0) for s in last_stages["plain"])
        f = statistics.fmean(s.get(stage, 0.0) for s in last_stages["fast"])
        print(f"     {stage:<14}{p:>9.0f} |{f:>7.0f}")
    rest = {name: statistics.fmean(per_turn[name][-10:]) - statistics.fmean(
        sum(s.get(stage, 0.0) for stage in names if stage != "segment keys") for s in last_stages[name])
        for name in runs}
    print(f"     {'rest':<14}{rest['plain']:>9.0f} |{rest['fast']:>7.0f}   (envelope copy, context, scope, policy)")
    cache = runs["fast"][0].ruleset.segment_cache
    print(f"   segment cache: {len(cache)} entries, ~{cache.bytes // 1024} KiB, {cache.hits} hits / "
          f"{cache.misses} misses")
    return figures


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
