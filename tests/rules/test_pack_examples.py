"""The shipped packs prove themselves: one test per (rule, example), generated from the packs' own examples.

A match example must produce a finding of that rule; a no_match example must not. The ids read
`secrets/github-pat/match-0`, so a failure names the pack, the rule and the example.
"""

from __future__ import annotations

from collections import Counter

import pytest

from filter.model import Category, TextSegment
from filter.rules import SHIPPED_PACKS, Ruleset, expand_pack_paths, load_pack
from filter.rules.pack import RulePack

PACKS: list[RulePack] = [load_pack(path) for path in expand_pack_paths([SHIPPED_PACKS])]
PACK_CATEGORY = {"secrets": Category.SECRET, "pii": Category.PII, "files": Category.FILE}


def _cases() -> list[pytest.param]:
    cases = []
    for pack in PACKS:
        for rule in pack.rules:
            for kind, texts in (("match", rule.examples.match), ("no_match", rule.examples.no_match)):
                for i, text in enumerate(texts):
                    cases.append(pytest.param(rule.id, text, kind == "match", id=f"{pack.name}/{rule.id}/{kind}-{i}"))
    return cases


@pytest.mark.parametrize(("rule_id", "text", "expected"), _cases())
def test_example(shipped_ruleset: Ruleset, rule_id: str, text: str, expected: bool) -> None:
    # each_rule: a rule's own examples are judged as `rules lint` judges them, also where a stricter rule
    # reports the same value (the request path keeps only the stricter finding).
    hits = {f.rule_id for f in shipped_ruleset.scan([TextSegment("example", text)], each_rule=True)}
    assert (rule_id in hits) is expected, f"{rule_id} {'missed' if expected else 'fired on'} {text!r}"


def test_shipped_packs_are_the_three_expected() -> None:
    assert sorted(p.name for p in PACKS) == ["files", "pii", "secrets"]


def test_every_rule_has_match_and_no_match_examples() -> None:
    missing = [r.id for p in PACKS for r in p.rules if not (r.examples.match and r.examples.no_match)]
    assert missing == []


def test_rule_ids_are_unique_across_packs() -> None:
    counts = Counter(r.id for p in PACKS for r in p.rules)
    assert [rule_id for rule_id, n in counts.items() if n > 1] == []


def test_secrets_pack_covers_at_least_80_credential_kinds() -> None:
    (secrets,) = [p for p in PACKS if p.name == "secrets"]
    assert len({r.id for r in secrets.rules}) >= 80


def test_rules_carry_their_pack_category() -> None:
    wrong = [(p.name, r.id) for p in PACKS for r in p.rules if r.category is not PACK_CATEGORY[p.name]]
    assert wrong == []


def test_every_rule_has_a_description() -> None:
    assert [r.id for p in PACKS for r in p.rules if not r.description.strip()] == []
