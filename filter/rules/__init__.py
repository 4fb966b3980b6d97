"""Rule packs: load YAML, compile into one Ruleset, check every rule's examples."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from filter.errors import RulePackError, RulePackErrors
from filter.rules.dbcache import DatabaseCache, examples_key
from filter.rules.engine import Fingerprinter, Ruleset
from filter.rules.pack import Rule, RulePack, hyperscan_error, load_pack, parse_pack, read_pack

SHIPPED_PACKS = Path(__file__).parent / "packs"

__all__ = [
    "SHIPPED_PACKS", "DatabaseCache", "Fingerprinter", "Rule", "RulePack", "Ruleset", "build_ruleset", "expand_pack_paths",
    "load_pack", "load_ruleset", "parse_pack",
]  # fmt: skip


def expand_pack_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories contribute their *.yaml / *.yml files in name order. A file named twice
    (directly or through its directory) counts once: it must not clash with itself."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        for file in sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p]:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                out.append(file)
    return out


def load_ruleset(
    paths: Sequence[str | Path],
    fingerprint: Fingerprinter,
    known_fingerprints: frozenset[str] = frozenset(),
    cache: DatabaseCache | None = None,
) -> Ruleset:
    """Load, compile and self-test packs; raises RulePackErrors listing every problem in every file.

    A problem in one rule does not stop the others from being checked: the rules that load are still
    compiled and their examples run, so one run of `rules lint` shows everything to fix."""
    files = expand_pack_paths(paths)
    if not files:
        raise RulePackErrors([RulePackError(", ".join(map(str, paths)) or "-", 0, "-", "no rule pack files found")])
    errors: list[RulePackError] = []
    packs: list[RulePack] = []
    for file in files:
        pack, pack_errors = read_pack(file)
        errors += pack_errors
        if pack is not None:
            packs.append(pack)
    ruleset, set_errors = build_ruleset(packs, fingerprint, known_fingerprints, cache)
    errors += set_errors
    if errors or ruleset is None:
        order = {str(f): n for n, f in enumerate(files)}
        raise RulePackErrors(sorted(errors, key=lambda e: (order.get(e.file, -1), e.line)))
    return ruleset


def build_ruleset(
    packs: Sequence[RulePack],
    fingerprint: Fingerprinter,
    known_fingerprints: frozenset[str] = frozenset(),
    cache: DatabaseCache | None = None,
) -> tuple[Ruleset | None, list[RulePackError]]:
    """Compile packs already read and run every example: (the Ruleset of the rules that compile, every problem).
    A rule id seen before is reported and left out; a rule Hyperscan refuses is reported and left out."""
    errors: list[RulePackError] = []
    kept_packs: list[RulePack] = []
    first: dict[str, Rule] = {}
    for pack in packs:
        kept = []
        for rule in pack.rules:
            if rule.id in first:
                other = first[rule.id]
                errors.append(rule.error_at("id", f"duplicate rule id (also in {other.file}:{other.line})"))
                continue
            first[rule.id] = rule
            kept.append(rule)
        kept_packs.append(replace(pack, rules=tuple(kept)))
    where = next((p.file for p in kept_packs if p.rules), "-")
    try:
        ruleset, compile_errors = _compile(kept_packs, fingerprint, known_fingerprints, cache)
        errors += compile_errors
        if ruleset is not None:
            errors += _checked_examples(ruleset, known_fingerprints, cache, clean=not errors)
    except RulePackError as e:
        return None, [*errors, e]
    except Exception as e:  # noqa: BLE001 - a pack must never crash the loader: report it like any pack problem
        return None, [*errors, RulePackError(where, 0, "-", f"cannot load the rule set: {type(e).__name__}: {e}")]
    return ruleset, errors


def _checked_examples(ruleset: Ruleset, known: frozenset[str], cache: DatabaseCache | None,
                      clean: bool) -> list[RulePackError]:
    """Every rule's examples run, unless this very rule set (packs, code, Hyperscan) passed them at an earlier
    load with the same cache; a clean pass is remembered there."""
    if cache is None:
        return ruleset.check_examples()
    key = examples_key([p.digest for p in ruleset.packs], [r.id for r in ruleset.rules], known)
    if clean and cache.examples_passed(key):
        return []
    errors = ruleset.check_examples()
    if clean and not errors:
        cache.remember_examples_passed(key)
    return errors


def _compile(packs: list[RulePack], fingerprint: Fingerprinter, known: frozenset[str],
             cache: DatabaseCache | None = None) -> tuple[Ruleset | None, list[RulePackError]]:
    """The Ruleset of every rule Hyperscan accepts, and an error for each rule it refuses."""
    if not any(p.rules for p in packs):
        return None, []
    try:
        return Ruleset(packs, fingerprint, known, cache), []
    except RulePackError as whole:
        errors = []
        refused: set[str] = set()
        for rule in (r for p in packs for r in p.rules):
            why = hyperscan_error(rule.pattern)
            if why is not None:
                errors.append(rule.error_at("pattern", f"Hyperscan cannot compile pattern: {why}"))
                refused.add(rule.id)
        if not refused:
            return None, [whole]
        rest = [replace(p, rules=tuple(r for r in p.rules if r.id not in refused)) for p in packs]
        if not any(p.rules for p in rest):
            return None, errors
        try:
            return Ruleset(rest, fingerprint, known, cache), errors
        except RulePackError as again:
            return None, [*errors, again]
