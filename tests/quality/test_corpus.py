"""A fast sample of the quality corpus (`make quality` runs all of it).

One positive per kind with no evasion and one per kind per applicable evasion must be caught by a finding of
the expected category on the planted value; 50 negatives (hard negatives and ordinary coding sessions, every
n-th) must produce no finding at all. A failure here is a detection gap or a false positive of the shipped
packs: see the printed rule ids and locations.
"""

from __future__ import annotations

import pytest

from filter.runtime import Snapshot
from filter.tokens import TokenCounter
from tests.quality.corpus import Case, positives
from tests.quality.measure import pipeline, run
from tests.quality.negatives import negatives
from tests.quality.ordinary import ordinary

NEGATIVE_SAMPLE = 50


def _positive_sample() -> list[Case]:
    out: list[Case] = []
    plain_seen: set[str] = set()
    for case in positives():
        if case.evasion != "none":
            out.append(case)
        elif case.kind not in plain_seen:
            plain_seen.add(case.kind)
            out.append(case)
    return out


def _negative_sample() -> list[Case]:
    hard, code = list(negatives()), list(ordinary())
    n_code = NEGATIVE_SAMPLE // 4
    n_hard = NEGATIVE_SAMPLE - n_code
    pick = hard[:: max(1, len(hard) // n_hard)][:n_hard] + code[:: max(1, len(code) // n_code)][:n_code]
    return pick


POSITIVES = _positive_sample()
NEGATIVES = _negative_sample()


@pytest.fixture(scope="module")
def shipped() -> tuple[Snapshot, TokenCounter]:
    return pipeline()


@pytest.mark.parametrize("case", POSITIVES, ids=[c.id for c in POSITIVES])
def test_positive_is_detected(case: Case, shipped: tuple[Snapshot, TokenCounter]) -> None:
    result = run(case, *shipped)
    assert result.status in (200, 400), f"request refused with {result.status}"  # 400: a content deny
    found = sorted({(f.finding.rule_id, f.finding.location) for f in result.false_positives})
    assert result.detected, (
        f"{case.kind} ({case.group}) not detected: placement {case.placement}, evasion {case.evasion}, "
        f"format {case.api}, planted at {case.loc}; rules on the value of another category: "
        f"{list(result.other_category_rules)}; findings elsewhere: {found}"
    )


@pytest.mark.parametrize("case", NEGATIVES, ids=[c.id for c in NEGATIVES])
def test_negative_has_no_finding(case: Case, shipped: tuple[Snapshot, TokenCounter]) -> None:
    result = run(case, *shipped)
    assert result.status == 200, f"request refused with {result.status}"
    flagged = [(f.finding.rule_id, f.finding.location, f.excerpt[:80]) for f in result.false_positives]
    assert not flagged, f"false positives on {case.note}: {flagged}"


def test_corpus_is_deterministic() -> None:
    first = [(c.id, c.envelope.body) for c in positives()][:200]
    again = [(c.id, c.envelope.body) for c in positives()][:200]
    assert first == again
