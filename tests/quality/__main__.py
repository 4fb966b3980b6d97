"""`make quality`: build the labelled corpus, run it through the real pipeline, print the quality report.

Exit status 1 when a target is missed: recall >= 99 %, precision >= 99 %, no finding on ordinary code.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from filter.runtime import Snapshot
from tests.quality.corpus import Case, positives
from tests.quality.measure import Result, pipeline, run_all
from tests.quality.negatives import negatives
from tests.quality.ordinary import DROPPED, line_of, ordinary

RECALL_TARGET = 0.99
PRECISION_TARGET = 0.99


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:6.2f} %" if d else "    n/a"


def category_of(case: Case) -> str:
    """secret | pii | file: the category a kind belongs to (private keys count as secrets)."""
    return "file" if case.group in ("file", "tool-read") else "pii" if case.group == "pii" else "secret"


def table(title: str, results: list[Result], key: Callable[[Result], str], flag: bool = False) -> list[str]:
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    width = max(len(k) for k in groups) if groups else 10
    out = [f"\n{title}"]
    for k in sorted(groups):
        rs = groups[k]
        hit = sum(r.detected for r in rs)
        mark = "   <-- below 100 %" if flag and hit < len(rs) else ""
        out.append(f"  {k:<{width}}  {hit:5d}/{len(rs):<5d} {pct(hit, len(rs))}{mark}")
    return out


def main(argv: Iterable[str] = ()) -> int:
    verbose = "-v" in argv
    t0 = time.perf_counter()
    snapshot, counter = pipeline()
    t_load = time.perf_counter() - t0

    t1 = time.perf_counter()
    pos, neg, ordi = list(positives()), list(negatives()), list(ordinary())
    t_build = time.perf_counter() - t1

    t2 = time.perf_counter()
    r_pos = run_all(pos, snapshot, counter)
    r_neg = run_all(neg, snapshot, counter)
    r_ord = run_all(ordi, snapshot, counter)
    t_run = time.perf_counter() - t2
    cases: list[Case] = pos + neg + ordi
    body_bytes = sum(len(c.envelope.body) for c in cases)

    lines: list[str] = ["llm-content-filter quality report (shipped packs, default policy)", "=" * 66]
    lines.append(f"corpus: {len(cases)} requests ({body_bytes / 1e6:.1f} MB of bodies): {len(pos)} positives, "
                 f"{len(neg)} hard negatives, {len(ordi)} ordinary coding sessions")
    by_api = Counter(c.api for c in cases)
    lines.append("  per format:   " + ", ".join(f"{k} {v}" for k, v in sorted(by_api.items())))
    by_cat = Counter(category_of(c) for c in pos)
    lines.append("  positives per category: " + ", ".join(f"{k} {v}" for k, v in sorted(by_cat.items())))
    lines.append("  positives per group:    " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.group for c in pos).items())))
    lines.append(f"  kinds: {len({c.kind for c in pos})}; placements: {len({c.placement for c in pos})}; "
                 f"evasions: {len({c.evasion for c in pos}) - 1} (+ none)")

    # precision over every finding of the corpus
    tp = sum(r.hit for r in r_pos)
    fp_pos = sum(len(r.false_positives) for r in r_pos)
    fp_neg = sum(len(r.false_positives) for r in r_neg)
    fp_ord = sum(len(r.false_positives) for r in r_ord)
    fp = fp_pos + fp_neg + fp_ord
    precision = tp / (tp + fp) if tp + fp else 1.0
    detected = sum(r.detected for r in r_pos)
    recall = detected / len(r_pos) if r_pos else 1.0
    lines.append("")
    lines.append(f"precision: {pct(tp, tp + fp)}  ({tp} planted items hit; false positives: {fp} = "
                 f"{fp_pos} around positives + {fp_neg} on hard negatives + {fp_ord} on ordinary code)")
    lines.append(f"recall:    {pct(detected, len(r_pos))}  ({detected}/{len(r_pos)} positives caught by a finding of "
                 "the expected category on the planted value)")

    lines += table("recall per category", r_pos, lambda r: category_of(r.case))
    lines += table("recall per group", r_pos, lambda r: r.case.group)
    lines += table("recall per placement", r_pos, lambda r: r.case.placement)
    lines += table("recall per evasion", r_pos, lambda r: r.case.evasion)
    lines += table("recall per provider format", r_pos, lambda r: r.case.api)
    lines += table("recall per kind", r_pos, lambda r: r.case.kind, flag=True)

    misses = [r for r in r_pos if not r.detected]
    if misses:
        lines.append(f"\nmissed positives ({len(misses)}):")
        for r in misses:
            why = f"only other-category rules: {','.join(r.other_category_rules)}" if r.other_category_rules else (
                f"status {r.status}" if r.status != 200 and not r.false_positives else "no finding on the value")
            lines.append(f"  {r.case.id:<58} {r.case.api:<17} {r.case.loc:<48} {why}")

    lines.append("\nrules that caught positives (per kind):")
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in r_pos:
        per_kind[r.case.kind].update(r.rules)
    for k in sorted(per_kind):
        lines.append(f"  {k:<36} " + ", ".join(f"{rule}×{n}" for rule, n in per_kind[k].most_common()))

    # false positives
    flagged_neg = [r for r in r_neg if r.false_positives]
    lines.append(f"\nhard negatives: {len(flagged_neg)}/{len(r_neg)} requests flagged ({pct(len(flagged_neg), len(r_neg))})")
    for r in flagged_neg:
        for f in r.false_positives:
            lines.append(f"  {r.case.id:<34} {f.finding.rule_id:<32} {f.finding.location:<40} {f.excerpt[:90]!r}")
    fp_pos_list = [f for r in r_pos for f in r.false_positives]
    lines.append(f"\nfalse positives inside positive requests (not on the planted value): {len(fp_pos_list)}")
    fp_rules = Counter(f.finding.rule_id for f in fp_pos_list)
    if fp_rules:
        lines.append("  by rule: " + ", ".join(f"{k}×{v}" for k, v in fp_rules.most_common()))
    for f in fp_pos_list[: (len(fp_pos_list) if verbose else 25)]:
        lines.append(f"  {f.case.id:<50} {f.finding.rule_id:<30} {f.finding.location:<44} {f.excerpt[:80]!r}")
    if not verbose and len(fp_pos_list) > 25:
        lines.append(f"  … {len(fp_pos_list) - 25} more (python -m tests.quality -v)")

    flagged_ord = [r for r in r_ord if r.false_positives]
    files = {c.note for c in ordi}
    lines.append(f"\nordinary coding sessions: {len(flagged_ord)}/{len(r_ord)} requests with a finding "
                 f"(FP rate {pct(len(flagged_ord), len(r_ord))}); {len(files)} real source files")
    ord_rules = Counter(f.finding.rule_id for r in r_ord for f in r.false_positives)
    if ord_rules:
        lines.append("  rules that fired: " + ", ".join(f"{k}×{v}" for k, v in ord_rules.most_common()))
    for r in flagged_ord:
        segments = _segments(r.case)
        for f in r.false_positives:
            text = segments.get(f.finding.location, "")
            line = line_of(r.case, text, f.finding.start)
            where = f"{r.case.note}:{line}" if line else f"{r.case.note} ({f.finding.location})"
            lines.append(f"  {where:<44} {f.finding.rule_id:<30} {f.excerpt[:80]!r}")

    dropped_hits = _flag_dropped(snapshot)
    lines.append(f"  authorship/licence lines dropped by the selection rule: {len(DROPPED)}; the packs would flag "
                 f"{len(dropped_hits)} of them (a user sending these files unedited would see these):")
    for where, rules in dropped_hits[: (len(dropped_hits) if verbose else 12)]:
        lines.append(f"    {where:<42} {rules}")
    if not verbose and len(dropped_hits) > 12:
        lines.append(f"    … {len(dropped_hits) - 12} more (python -m tests.quality -v)")

    t_total = time.perf_counter() - t0
    lines.append(f"\nruntime: {t_total:.1f} s (packs {t_load:.1f} s, corpus {t_build:.1f} s, pipeline {t_run:.1f} s "
                 f"for {len(cases)} requests)")

    failures = []
    if recall < RECALL_TARGET:
        failures.append(f"recall {100 * recall:.2f} % < {100 * RECALL_TARGET:.0f} %")
    if precision < PRECISION_TARGET:
        failures.append(f"precision {100 * precision:.2f} % < {100 * PRECISION_TARGET:.0f} %")
    if flagged_ord:
        failures.append(f"{len(flagged_ord)} ordinary coding sessions have findings (target 0)")
    lines.append("targets: " + ("MET" if not failures else "NOT MET — " + "; ".join(failures)))
    print("\n".join(lines))
    return 1 if failures else 0


def _flag_dropped(snapshot: Snapshot) -> list[tuple[str, str]]:
    """Dropped authorship lines the packs flag: `file:line` and rule ids."""
    from filter.model import TextSegment

    out = []
    for display, number, line in DROPPED:
        findings = snapshot.ruleset.scan([TextSegment("line", line)])
        if findings:
            out.append((f"{display}:{number}", ",".join(sorted({f.rule_id for f in findings}))))
    return out


def _segments(case: Case) -> dict[str, str]:
    from filter.formats import parse

    return {s.location: s.text for s in parse(case.envelope).segments}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
