"""Scan throughput of the shipped packs: Hyperscan engine vs a plain Python `re` loop over the same rules."""

from __future__ import annotations

import json
import re
import statistics
import time
from typing import Any

import regex

from filter import shortcuts
from filter.model import TextSegment
from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, load_ruleset
from tests.bench.corpus import chat_body

SIZES = [("10 KB", 10_000), ("100 KB", 100_000), ("1 MB", 1_000_000)]


def segments_of(body: bytes) -> list[TextSegment]:
    doc = json.loads(body)
    return [TextSegment(f"messages[{i}].content", m["content"]) for i, m in enumerate(doc["messages"])]


def re_loop(patterns: list[Any], segments: list[TextSegment]) -> int:
    """The usual Python approach: every rule's regex over every segment."""
    hits = 0
    for seg in segments:
        for pattern in patterns:
            for _ in pattern.finditer(seg.text):
                hits += 1
    return hits


def compile_re(ruleset: Ruleset) -> tuple[list[Any], int]:
    out: list[Any] = []
    fallback = 0
    for rule in ruleset.rules:
        try:
            out.append(re.compile(rule.pattern, re.MULTILINE))
        except re.error:
            out.append(regex.compile(rule.pattern, regex.MULTILINE))  # syntax `re` lacks
            fallback += 1
    return out, fallback


def joined_scan(ruleset: Ruleset, segments: list[TextSegment]) -> None:
    """The scanner itself: every call scans (the per-segment cache would answer a body it has seen)."""
    with shortcuts.plain():
        ruleset.scan(segments)


def timed(fn: Any, *args: Any, min_seconds: float, min_runs: int = 3) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.process_time()
        fn(*args)
        times.append(time.process_time() - t0)
    return times


def run(quick: bool = False) -> None:
    t0 = time.perf_counter()
    ruleset = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"bench"))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Ruleset(ruleset.packs, Fingerprinter(b"bench"))
    compile_s = time.perf_counter() - t0
    patterns, fallback = compile_re(ruleset)
    print(f"\n== Scan throughput: {len(ruleset.rules)} rules from {len(ruleset.packs)} shipped packs ==")
    print(f"   Hyperscan compile of the full set: {compile_s:.2f} s; "
          f"load with YAML parsing and every example checked: {load_s:.2f} s")
    print("   CPU time per scan of the decoded message text, median; interleaved in one run")
    print(f"   {'body':>7} {'hyperscan MB/s':>15} {'re loop MB/s':>13} {'ratio':>8}")
    for label, size in SIZES[:2] if quick else SIZES:
        segs = segments_of(chat_body(ruleset, size))
        mb = sum(len(s.text.encode()) for s in segs) / 1e6
        hs_times: list[float] = []
        re_times: list[float] = []
        for _ in range(2 if quick else 3):  # interleave rounds so noise hits both sides
            hs_times += timed(joined_scan, ruleset, segs, min_seconds=0.3)
            re_times += timed(re_loop, patterns, segs, min_seconds=0.3, min_runs=1)
        hs = mb / statistics.median(hs_times)
        rl = mb / statistics.median(re_times)
        print(f"   {label:>7} {hs:15.1f} {rl:13.2f} {hs / rl:7.0f}x")
    if fallback:
        print(f"   ({fallback} rules use the `regex` module in the loop: `re` cannot compile them)")
