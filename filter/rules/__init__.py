"""Rule packs: load YAML, compile into one Ruleset, check every rule's examples."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from filter.errors import RulePackError, RulePackErrors
from filter.rules.engine import Fingerprinter, Ruleset
from filter.rules.pack import Rule, RulePack, load_pack

SHIPPED_PACKS = Path(__file__).parent / "packs"

__all__ = [
    "SHIPPED_PACKS", "Fingerprinter", "Rule", "RulePack", "Ruleset", "expand_pack_paths", "load_pack",
    "load_ruleset",
]  # fmt: skip


def expand_pack_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories contribute their *.yaml / *.yml files in name order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            out.append(p)
    return out


def load_ruleset(
    paths: Sequence[str | Path],
    fingerprint: Fingerprinter,
    known_fingerprints: frozenset[str] = frozenset(),
) -> Ruleset:
    """Load, compile and self-test packs; raises RulePackErrors listing every problem found."""
    errors: list[RulePackError] = []
    packs: list[RulePack] = []
    files = expand_pack_paths(paths)
    if not files:
        raise RulePackErrors([RulePackError(", ".join(map(str, paths)) or "-", 0, "-", "no rule pack files found")])
    for file in files:
        try:
            packs.append(load_pack(file))
        except RulePackError as e:
            errors.append(e)
    if errors:
        raise RulePackErrors(errors)
    try:
        ruleset = Ruleset(packs, fingerprint, known_fingerprints)
    except RulePackError as e:
        raise RulePackErrors([e]) from None
    errors = ruleset.check_examples()
    if errors:
        raise RulePackErrors(errors)
    return ruleset
