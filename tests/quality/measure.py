"""Runs cases through the real pipeline and scores them.

A positive is detected when the decision has a finding of an accepted category at the planted location (or a
location derived from it: `…$.x`, `…#keys`, `…#raw`, `….source.data`) whose span overlaps one of the forms the
value takes in that segment. A finding that overlaps the planted value — or the path of the planted item's own file in
the scaffolding (`Case.related`: the read before a file's content, the heredoc that writes a key) — counts once per
planted item as a true positive (whatever its category); every other finding is a false positive, counted once per distinct value
(fingerprint) per request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from filter.model import Finding
from filter.pipeline import evaluate
from filter.runtime import Runtime, Snapshot
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.quality.corpus import Case


def pipeline() -> tuple[Snapshot, TokenCounter]:
    """The shipped packs under the default policy, as the brief prescribes; no per-process key warning."""
    log = logging.getLogger("llm_content_filter")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        runtime = Runtime(None, load_settings(None, env={}))
    finally:
        log.setLevel(level)
    return runtime.current, TokenCounter(load_encoding())


@dataclass
class FalsePositive:
    case: Case
    finding: Finding
    excerpt: str  # the matched text with a little context (only from non-planted text, so never a planted secret)


@dataclass
class Result:
    case: Case
    status: int
    detected: bool = False
    hit: bool = False  # some finding (any category) overlaps the planted value
    rules: tuple[str, ...] = ()  # rule ids of findings on the planted value
    other_category_rules: tuple[str, ...] = ()
    false_positives: list[FalsePositive] = field(default_factory=list)


def at(location: str, prefix: str) -> bool:
    return location == prefix or (location.startswith(prefix) and location[len(prefix)] in ".[$#")


def overlaps(text: str, start: int, end: int, surfaces: Iterable[str]) -> bool:
    for s in surfaces:
        if not s:
            continue
        i = text.find(s)
        while i != -1:
            if start < i + len(s) and i < end:
                return True
            i = text.find(s, i + 1)
    return False


def excerpt(text: str, start: int, end: int, pad: int = 24) -> str:
    lo, hi = max(0, start - pad), min(len(text), end + pad)
    return text[lo:hi].replace("\n", "⏎")


def run(case: Case, snapshot: Snapshot, counter: TokenCounter) -> Result:
    outcome = evaluate(case.envelope, snapshot, counter)
    decision, parsed = outcome.decision, outcome.parsed
    result = Result(case, decision.http_status)
    segments = {s.location: s.text for s in parsed.segments} if parsed else {}
    on_value: list[Finding] = []
    related: list[Finding] = []
    seen_fp: set[str] = set()
    for f in decision.findings:
        text = segments.get(f.location, "")
        if case.label == "positive" and at(f.location, case.loc) and overlaps(text, f.start, f.end, case.surfaces):
            on_value.append(f)
        elif case.label == "positive" and overlaps(text, f.start, f.end, case.related):
            related.append(f)
        elif f.fingerprint not in seen_fp:
            seen_fp.add(f.fingerprint)
            result.false_positives.append(FalsePositive(case, f, excerpt(text, f.start, f.end)))
    result.hit = bool(on_value or related)
    result.rules = tuple(sorted({f.rule_id for f in on_value if f.category.value in case.categories}))
    result.other_category_rules = tuple(sorted({f.rule_id for f in on_value if f.category.value not in case.categories}))
    result.detected = bool(result.rules)
    return result


def run_all(cases: Iterable[Case], snapshot: Snapshot, counter: TokenCounter) -> list[Result]:
    return [run(c, snapshot, counter) for c in cases]
