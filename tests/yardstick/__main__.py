"""`make yardstick`: the independent labelled set through the real pipeline, reported apart from `make quality`.

A measurement, not a gate: it always exits 0 (2 only when it cannot run), and the packs must not be tuned
against it (docs/quality.md). Prints recall per source, per family, per syntax family, per identifier style,
per tool-output format and per provider format, the false-positive rate on scanner negatives and on
secret-free open-source files (per file and per request), and writes a JSON summary (`--json PATH`,
default var/yardstick/summary.json). Findings are named by rule id, family and location only, never by value.

    .venv/bin/python -m tests.yardstick [-v] [--sample N] [--json PATH] [--mirrors DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filter.runtime import Snapshot
from filter.tokens import TokenCounter
from tests.quality.measure import Result, pipeline, run
from tests.yardstick.corpus import MIRRORS, Placed, Record, load, negative_manifest, negative_requests, placed, read_blobs

DEFAULT_JSON = Path("var/yardstick/summary.json")


@dataclass
class Scored:
    placed: Placed
    result: Result


def score(items: Iterable[Placed], snapshot: Snapshot, counter: TokenCounter) -> list[Scored]:
    return [Scored(p, run(p.case, snapshot, counter)) for p in items]


def rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:6.2f} %" if d else "    n/a"


def breakdown(rows: Sequence[Scored], key: Callable[[Scored], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in rows:
        groups[key(s)].append(s)
    return {k: {"detected": sum(s.result.detected for s in g), "total": len(g),
                "recall": rate(sum(s.result.detected for s in g), len(g))} for k, g in sorted(groups.items())}


def table(title: str, data: dict[str, dict[str, Any]], only_misses: bool = False) -> list[str]:
    rows = {k: v for k, v in data.items() if not only_misses or v["detected"] < v["total"]}
    width = max((len(k) for k in rows), default=10)
    out = [f"\n{title}"]
    for k, v in rows.items():
        out.append(f"  {k:<{width}}  {v['detected']:5d}/{v['total']:<5d} {pct(v['detected'], v['total'])}")
    return out


def family_recall(rows: Sequence[Scored]) -> dict[str, dict[str, Any]]:
    """Per family: requests detected, and records with at least one / all placements detected."""
    per_rec: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for s in rows:
        assert s.placed.record is not None
        per_rec[(s.placed.record.family, s.placed.record.sha256)].append(s.result.detected)
    fam: dict[str, dict[str, Any]] = defaultdict(lambda: {"records": 0, "any": 0, "all": 0, "requests": 0,
                                                          "detected": 0})
    for (family, _), hits in per_rec.items():
        f = fam[family]
        f["records"] += 1
        f["any"] += any(hits)
        f["all"] += all(hits)
        f["requests"] += len(hits)
        f["detected"] += sum(hits)
    for f in fam.values():
        f["recall"] = rate(f["detected"], f["requests"])
    return dict(sorted(fam.items()))


HEADER_LINES = {"unified diff": 5, "ANSI transcript": 1}  # lines a tool-output format puts before the file


def line_in(text: str, start: int, first: int, fmt: str) -> int:
    return first + text.count("\n", 0, start) - HEADER_LINES.get(fmt, 0)


def main(argv: Sequence[str] = ()) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.yardstick")
    ap.add_argument("-v", action="store_true", help="list every family and every false positive")
    ap.add_argument("--sample", type=int, default=0, help="only every N-th record and negative file (quick look)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--mirrors", type=Path, default=MIRRORS, help="checkouts of the negative files' repositories")
    args = ap.parse_args(list(argv))
    t0 = time.perf_counter()
    snapshot, counter = pipeline()
    records = load()
    manifest = negative_manifest()
    if args.sample > 1:
        records, manifest = records[:: args.sample], manifest[:: args.sample]
    texts = read_blobs(manifest, args.mirrors)
    report = measure(records, texts, len(manifest), snapshot, counter, args.v)
    report["summary"]["runtime_s"] = round(time.perf_counter() - t0, 1)
    print("\n".join(report.pop("lines")))
    print(f"\nruntime: {report['summary']['runtime_s']} s; JSON summary: {args.json}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def measure(records: list[Record], texts: dict[Any, str], manifest_files: int, snapshot: Snapshot,
            counter: TokenCounter, verbose: bool = False) -> dict[str, Any]:
    """Scores everything; returns the JSON report with the printable lines under "lines"."""
    items = list(placed(records))
    scored = score(items, snapshot, counter)
    pos = [s for s in scored if s.placed.record and s.placed.record.label == "positive"]
    neg = [s for s in scored if s.placed.record and s.placed.record.label == "negative"]
    plc = [s for s in scored if s.placed.record and s.placed.record.label == "placeholder"]
    files = score(negative_requests(texts), snapshot, counter)

    detected = sum(s.result.detected for s in pos)
    fams = family_recall(pos)
    by_source = breakdown(pos, lambda s: s.placed.record.source if s.placed.record else "")
    by_syntax = breakdown(pos, lambda s: s.placed.syntax)
    by_style = breakdown(pos, lambda s: s.placed.style)
    by_format = breakdown(pos, lambda s: s.placed.fmt)
    by_api = breakdown(pos, lambda s: s.placed.case.api)
    fams_hit = sum(1 for f in fams.values() if f["any"])
    recs = {(s.placed.record.family, s.placed.record.sha256) for s in pos if s.placed.record}
    recs_hit = {(s.placed.record.family, s.placed.record.sha256) for s in pos if s.placed.record and s.result.detected}

    neg_flagged = [s for s in neg if s.result.false_positives]
    plc_flagged = [s for s in plc if s.result.hit or s.result.false_positives]
    file_flags: dict[tuple[str, str], list[str]] = defaultdict(list)
    pii_flags: dict[tuple[str, str], list[str]] = defaultdict(list)
    fp_rules: Counter[str] = Counter()
    pii_rules: Counter[str] = Counter()
    fp_where: list[str] = []
    req_flagged = req_pii = 0
    for s in files:
        repo, path, first = s.placed.origin
        secret_fps = [fp for fp in s.result.false_positives if fp.finding.category.value != "pii"]
        req_flagged += bool(secret_fps)
        req_pii += len(secret_fps) < len(s.result.false_positives)
        for fp in s.result.false_positives:
            if fp.finding.category.value == "pii":
                pii_flags[(repo, path)].append(fp.finding.rule_id)
                pii_rules[fp.finding.rule_id] += 1
                continue
            segs = _segment_text(s)
            where = f"{repo}:{path}:{line_in(segs.get(fp.finding.location, ''), fp.finding.start, first, s.placed.fmt)}"
            file_flags[(repo, path)].append(fp.finding.rule_id)
            fp_rules[fp.finding.rule_id] += 1
            fp_where.append(f"  {where:<70} {fp.finding.rule_id}  ({s.placed.fmt}, {fp.finding.location})")
    files_seen = {(s.placed.origin[0], s.placed.origin[1]) for s in files}
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in files:
        by_type[s.placed.extra["type"]][1] += 1
        by_type[s.placed.extra["type"]][0] += any(fp.finding.category.value != "pii"
                                                  for fp in s.result.false_positives)
    fp_in_pos = Counter(fp.finding.rule_id for s in pos for fp in s.result.false_positives)
    neg_fp_rules = Counter(fp.finding.rule_id for s in neg for fp in s.result.false_positives)

    L = ["llm-content-filter yard-stick (independent labelled set; shipped packs, default policy)", "=" * 72]
    L.append(f"records: {len(records)} ({', '.join(f'{k} {v}' for k, v in sorted(Counter(r.label for r in records).items()))}) "
             f"from {', '.join(sorted({r.repo for r in records}))}")
    L.append(f"requests: {len(scored)} from records, {len(files)} from {len(files_seen)} secret-free files "
             f"({manifest_files} in the manifest)")
    L.append("")
    L.append(f"recall (requests):       {pct(detected, len(pos))}  ({detected}/{len(pos)})")
    L.append(f"recall (records, any placement caught): {pct(len(recs_hit), len(recs))}  ({len(recs_hit)}/{len(recs)})")
    L.append(f"families with a catch:   {fams_hit}/{len(fams)}")
    L += table("recall per source", by_source)
    L += table("recall per syntax family", by_syntax)
    L += table("recall per identifier style", by_style)
    L += table("recall per tool-output format", by_format)
    L += table("recall per provider format", by_api)
    fam_rows = {k: {"detected": v["detected"], "total": v["requests"]} for k, v in fams.items()}
    L += table("recall per family (requests)" + ("" if verbose else ": families below 100 % (-v: all)"),
               fam_rows, only_misses=not verbose)
    L.append(f"\nscanner negatives (placeholders the scanners reject): {len(neg_flagged)}/{len(neg)} requests "
             f"flagged ({pct(len(neg_flagged), len(neg))})"
             + (f"; rules: {', '.join(f'{k}×{v}' for k, v in neg_fp_rules.most_common())}" if neg_fp_rules else ""))
    L.append(f"scanner positives that are placeholders (not scored): {len(plc_flagged)}/{len(plc)} requests flagged")
    L.append(f"findings beside the planted value in positive requests: {sum(fp_in_pos.values())}"
             + (f" ({', '.join(f'{k}×{v}' for k, v in fp_in_pos.most_common())})" if fp_in_pos else ""))
    L.append(f"\nsecret-free files: {len(file_flags)}/{len(files_seen)} files with a secret/file finding "
             f"(FP rate per file {pct(len(file_flags), len(files_seen))}); {req_flagged}/{len(files)} requests "
             f"(per request {pct(req_flagged, len(files))})")
    L.append(f"  PII findings on the same files (authors' e-mail addresses and the like; a PII policy question, "
             f"not counted above): {len(pii_flags)} files, {req_pii} requests"
             + (f" ({', '.join(f'{k}×{v}' for k, v in pii_rules.most_common())})" if pii_rules else ""))
    for t, (n, d) in sorted(by_type.items()):
        L.append(f"  {t:<12} {n:4d}/{d:<4d} requests flagged")
    if fp_rules:
        L.append("  rules: " + ", ".join(f"{k}×{v}" for k, v in fp_rules.most_common()))
    L += fp_where if verbose else fp_where[:30]
    if not verbose and len(fp_where) > 30:
        L.append(f"  … {len(fp_where) - 30} more (-v)")

    summary = {
        "records": len(records), "requests": len(scored), "positive_requests": len(pos),
        "recall": rate(detected, len(pos)), "record_recall_any": rate(len(recs_hit), len(recs)),
        "families": len(fams), "families_caught": fams_hit,
        "scanner_negatives": {"requests": len(neg), "flagged": len(neg_flagged), "rate": rate(len(neg_flagged), len(neg))},
        "placeholders": {"requests": len(plc), "flagged": len(plc_flagged)},
        "negative_files": {"files": len(files_seen), "files_flagged": len(file_flags),
                           "per_file": rate(len(file_flags), len(files_seen)), "requests": len(files),
                           "requests_flagged": req_flagged, "per_request": rate(req_flagged, len(files)),
                           "rules": dict(fp_rules), "pii_files": len(pii_flags), "pii_requests": req_pii,
                           "pii_rules": dict(pii_rules)},
        "extra_findings_in_positive_requests": dict(fp_in_pos),
    }
    return {"summary": summary, "per_source": by_source, "per_syntax": by_syntax, "per_style": by_style,
            "per_format": by_format, "per_api": by_api, "per_family": fams,
            "negative_file_findings": [{"file": f"{r}:{p}", "rules": sorted(set(v))} for (r, p), v in sorted(file_flags.items())],
            "lines": L}


def _segment_text(s: Scored) -> dict[str, str]:
    from filter.formats import parse

    return {seg.location: seg.text for seg in parse(s.placed.case.envelope).segments}


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError) as exc:
        print(f"yardstick: {exc}", file=sys.stderr)
        sys.exit(2)
