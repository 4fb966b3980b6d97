"""The yard-stick's data loads, its harness runs end to end on a sample, and its scoring is right on a tiny
hand-made set. No assertion on the rates: the yard-stick is a measurement (docs/quality.md)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from filter.runtime import Snapshot
from filter.tokens import TokenCounter
from tests.quality.measure import pipeline
from tests.yardstick.__main__ import main, measure
from tests.yardstick.corpus import CASES, NEGATIVES, Record, load, negative_manifest, place
from tests.yardstick.placement import FORMATS, SYNTAXES
from tests.yardstick.shapes import draw, shape_of


@pytest.fixture(scope="module")
def packs() -> tuple[Snapshot, TokenCounter]:
    return pipeline()


def test_data_files_load_with_provenance() -> None:
    records = load(CASES)
    assert {r.source for r in records} == {"trufflehog", "gitleaks", "detect-secrets"}
    assert {r.label for r in records} == {"positive", "negative", "placeholder"}
    for r in records:
        assert re.fullmatch(r"[0-9a-f]{40}", r.commit) and r.path and r.line > 0 and r.shapes
    files = negative_manifest(NEGATIVES)
    assert len(files) > 100 and all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in files)


def test_shapes_keep_the_format_not_the_value() -> None:
    shape = shape_of("ghp_" + "aB3" * 10 + "Zx9Qw1")
    assert shape["regex"].startswith("ghp_") and "aB3" not in shape["regex"]
    value = draw(shape, random.Random(1))
    assert re.fullmatch(shape["regex"], value) and value.startswith("ghp_") and len(value) == 40
    assert draw(shape, random.Random(1)) == value  # seeded: the same value every run


def _record(label: str, regex: str, family: str = "hand:stripe") -> Record:
    return Record("hand", "example/hand", "0" * 40, "hand.go", 1, family, label, (), ({"regex": regex},), regex)


def test_scoring_on_a_hand_made_set(packs: tuple[Snapshot, TokenCounter]) -> None:
    snapshot, counter = packs
    secret = _record("positive", "sk_live_[A-Za-z0-9]{24}")  # a Stripe live key: every placement must be caught
    inert = _record("positive", "hello", "hand:word")  # a plain word labelled positive: never caught
    placeholder = _record("negative", "sk_live_x{24}")
    report = measure([secret, inert, placeholder], {}, 0, snapshot, counter)
    s = report["summary"]
    per_format = report["per_format"]
    assert set(per_format) == set(FORMATS)
    assert s["positive_requests"] == 12 and s["scanner_negatives"]["requests"] == 2
    # the word is missed everywhere, so recall is the Stripe key's share of the requests the packs caught
    caught = sum(v["detected"] for v in per_format.values())
    assert report["per_family"]["hand:word"]["detected"] == 0
    assert report["per_family"]["hand:stripe"]["detected"] == caught <= 6
    assert s["recall"] == round(caught / 12, 4)
    assert s["record_recall_any"] == (0.5 if caught else 0.0)
    assert s["families"] == 2 and s["families_caught"] == (1 if caught else 0)


def test_placements_cover_every_syntax_and_format() -> None:
    records = [_record("positive", "[a-z0-9]{32}")] * len(SYNTAXES)
    seen = {(p.syntax, p.fmt) for i, r in enumerate(records) for j in range(6) for p in [place(r, i, j)]}
    assert {s for s, _ in seen} == set(SYNTAXES) and {f for _, f in seen} == set(FORMATS)


def test_harness_runs_on_a_sample_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "summary.json"
    assert main(["--sample", "60", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["summary"]["positive_requests"] > 0 and set(summary["per_format"]) == set(FORMATS)
    printed = capsys.readouterr().out
    assert "recall per syntax family" in printed and "recall per tool-output format" in printed
