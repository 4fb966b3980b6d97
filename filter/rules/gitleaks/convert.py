"""gitleaks config (v8 schema) -> pack rules: ids, keywords, entropy, secret group, allowlists; what cannot be
carried over is reported per rule (see filter.rules.gitleaks)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import regex
import yaml

from filter.errors import ConfigImportError, RulePackError, RulePackErrors
from filter.model import TextSegment
from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, expand_pack_paths, load_pack, parse_pack
from filter.rules.gitleaks.examples import GenError, Sample, generate, max_width
from filter.rules.gitleaks.re2 import Unsupported, adapt_allow_regex, adapt_pattern, escape_literal
from filter.rules.pack import DEFAULT_MAX_LENGTH, hyperscan_error
from filter.rules.pack import pattern_error as regex_error
from filter.rules.validators import not_placeholder, shannon_entropy

FORMATS = ("gitleaks",)
_ATTEMPTS = 12  # seeds tried per rule for a verified example pair


class _Skip(Exception):
    """This rule is not converted; the message is the reason in the report."""


@dataclass
class Converted:
    id: str
    source_id: str
    data: dict[str, Any]  # the pack rule, as written
    changes: list[str]  # adaptations and "dropped: ..." notes
    original: str  # the gitleaks regex
    anchors: bool = False  # uses ^ or $


@dataclass
class Report:
    file: str
    total: int = 0
    converted: list[Converted] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def adapted(self) -> list[Converted]:
        return [c for c in self.converted if c.changes]

    def render(self) -> str:
        lines = [f"gitleaks import of {self.file}: {self.total} rules: {len(self.converted)} converted, "
                 f"{len(self.adapted)} adapted, {len(self.skipped)} skipped"]
        if self.adapted:
            lines.append("adapted:")
            lines += [f"  {c.id}: " + "; ".join(c.changes) for c in self.adapted]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {rule_id}: {reason}" for rule_id, reason in self.skipped]
        if self.notes:
            lines.append("notes:")
            lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Allow:
    patterns: list[str]
    dropped: list[str]


def _stopword_pattern(words: Sequence[str]) -> str:
    escaped = sorted({escape_literal(w) for w in words if w}, key=lambda w: (-len(w), w))
    return "(?i)" + escaped[0] if len(escaped) == 1 else "(?i)(?:" + "|".join(escaped) + ")"


def _count(items: Sequence[object], one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _convert_allowlist(raw: Any, label: str) -> _Allow:
    """One gitleaks allowlist -> allow patterns on the secret, and what had to be dropped."""
    out = _Allow([], [])
    if not isinstance(raw, dict):
        out.dropped.append(f"{label}: not a table")
        return out
    condition = str(raw.get("condition", "OR")).upper()
    target = str(raw.get("regexTarget", "secret") or "secret").lower()
    regexes, stopwords = _strings(raw.get("regexes")), _strings(raw.get("stopwords"))
    paths, commits = _strings(raw.get("paths")), _strings(raw.get("commits"))
    where = [_count(paths, "path", "paths")] * bool(paths) + [_count(commits, "commit", "commits")] * bool(commits)
    adapted: list[str] = []
    for src in regexes if target == "secret" else []:
        try:
            pattern = adapt_allow_regex(src)
            regex.compile(pattern)
            adapted.append(pattern)
        except (Unsupported, regex.error) as e:
            out.dropped.append(f"{label}: regex '{src}' does not compile ({e})")
    if condition == "AND" and sum(map(bool, (regexes, stopwords, paths, commits))) > 1:
        # gitleaks: every kind of check that is set must hold. With one kind, AND is the same as OR.
        if paths or commits:
            out.dropped.append(f"{label}: condition AND with {' and '.join(where)} (never holds for a request: "
                               "it has no file path or commit)")
        elif target != "secret" or len(adapted) < len(regexes):
            out.dropped.append(f"{label}: condition AND of regexes (regexTarget '{target}') and stopwords "
                               "(allow patterns see only the secret, and every regex must compile)")
        else:
            words = _stopword_pattern(stopwords)[4:]  # without the leading (?i)
            out.patterns.append(f"(?s)^(?=.*?(?:{'|'.join(adapted)}))(?=.*?(?i:{words}))")
        return out
    out.patterns += adapted
    if regexes and target != "secret":
        out.dropped.append(f"{label}: {_count(regexes, 'regex', 'regexes')} with regexTarget '{target}' "
                           "(allow patterns see only the secret)")
    if stopwords:
        out.patterns.append(_stopword_pattern(stopwords))
    if where and condition != "AND":
        out.dropped.append(f"{label}: {' and '.join(where)} (a request has no file path or commit)")
    return out


def _rule_allowlists(raw: dict[str, Any]) -> list[Any]:
    lists = raw.get("allowlists", [])
    lists = list(lists) if isinstance(lists, list) else [lists]
    if "allowlist" in raw:
        lists.insert(0, raw["allowlist"])
    return lists


def kebab(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Importer:
    def __init__(self, file: str, pack_name: str, id_prefix: str) -> None:
        self.file = file
        self.pack_name = pack_name
        self.id_prefix = id_prefix
        self.report = Report(file)
        self.fingerprint = Fingerprinter(b"rules-import")
        self.ids: set[str] = set()

    # -- config ---------------------------------------------------------------------------------------
    def run(self, config: dict[str, Any]) -> None:
        if "extend" in config:
            ext = config["extend"] if isinstance(config["extend"], dict) else {}
            what = ", ".join(f"{k} = {v!r}" for k, v in ext.items()) or "present"
            self.report.notes.append(f"[extend] ({what}) not supported: only the rules in this file are imported")
        rules = config.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise ConfigImportError(f"{self.file}: not a gitleaks config: 'rules' must be an array of tables ([[rules]])")
        global_allow = self._global_allowlists(config)
        self.report.total = len(rules)
        for n, raw in enumerate(rules, 1):
            source_id = raw.get("id")
            label = source_id if isinstance(source_id, str) and source_id else f"rules[{n}]"
            try:
                converted = self._rule(raw, label, global_allow)
            except _Skip as e:
                self.report.skipped.append((label, str(e)))
                continue
            self.report.converted.append(converted)
        anchored = sum(1 for c in self.report.converted if c.anchors)
        if anchored:
            self.report.notes.append(f"{anchored} converted rules use ^ or $: here they match at every line "
                                     "(the engine is MULTILINE); in gitleaks at the start / end of the file")
        shipped = self._shipped_ids() & {c.id for c in self.report.converted}
        if shipped:
            self.report.notes.append(
                f"{len(shipped)} rule ids also exist in the shipped packs ({', '.join(sorted(shipped))}): "
                "loading both fails with 'duplicate rule id'; use --id-prefix to rename them"
            )

    def _global_allowlists(self, config: dict[str, Any]) -> list[tuple[list[str] | None, _Allow]]:
        """(target rule ids or None for all, converted allowlist)."""
        out: list[tuple[list[str] | None, _Allow]] = []
        lists: list[Any] = []
        if isinstance(config.get("allowlist"), dict):
            lists.append(config["allowlist"])
        if isinstance(config.get("allowlists"), list):
            lists += config["allowlists"]
        for n, raw in enumerate(lists, 1):
            allow = _convert_allowlist(raw, f"global allowlist {n}")
            targets = _strings(raw.get("targetRules")) if isinstance(raw, dict) else []
            out.append((targets or None, allow))
            if allow.patterns:
                scope = f"rules {', '.join(targets)}" if targets else "every rule"
                self.report.notes.append(f"global allowlist {n}: {_count(allow.patterns, 'pattern', 'patterns')} "
                                         f"added to the allow list of {scope}")
            for reason in allow.dropped:
                self.report.notes.append(f"dropped: {reason}")
        return out

    # -- one rule -------------------------------------------------------------------------------------
    def _rule(self, raw: dict[str, Any], label: str, global_allow: list[tuple[list[str] | None, _Allow]]) -> Converted:
        source_id = raw.get("id")
        if not isinstance(source_id, str) or not source_id:
            raise _Skip("no id")
        if raw.get("skipReport"):
            raise _Skip("skipReport = true (an auxiliary rule of a composite rule)")
        if raw.get("required"):
            raise _Skip("composite rule (required = ...): needs the other rules within N lines; not supported")
        src = raw.get("regex")
        if src is None or src == "":
            if raw.get("path"):
                raise _Skip("path-only rule (it matches file names; a request has no file path)")
            raise _Skip("no regex")
        if not isinstance(src, str):
            raise _Skip("regex is not a string")
        changes: list[str] = []

        rule_id = self._rule_id(source_id, changes)
        secret_group = raw.get("secretGroup")
        if secret_group is not None and (not isinstance(secret_group, int) or isinstance(secret_group, bool)
                                         or secret_group < 0):
            raise _Skip(f"secretGroup {secret_group!r} is not a group number")
        adapted = adapt_pattern(src, secret_group or None)
        if secret_group and secret_group > adapted.groups and not adapted.unparsed:
            raise _Skip(f"secretGroup {secret_group} but the regex has {_count(range(adapted.groups), 'group', 'groups')}")
        if not secret_group and adapted.groups > 1:
            changes.append("secretGroup unset: group 1 is the secret (gitleaks takes the first non-empty group)")
        for change, count in adapted.changes.items():
            changes.append(change + (f" (x{count})" if count > 1 else ""))
        pattern = adapted.pattern
        if adapted.unparsed:
            changes.append(f"pattern used unchanged: the adapter cannot read it ({adapted.unparsed})")
        hs = hyperscan_error(pattern)
        if hs is not None:
            raise _Skip(f"Hyperscan cannot compile the pattern: {hs}")
        rx = regex_error(pattern)
        if rx is not None:
            raise _Skip(f"the regex module cannot compile the pattern: {rx}")

        data: dict[str, Any] = {
            "id": rule_id,
            "category": "secret",
            "description": str(raw.get("description") or source_id),
            "pattern": pattern,
        }
        keywords = list(dict.fromkeys(k.lower() for k in _strings(raw.get("keywords")) if k))
        if keywords:
            data["keywords"] = keywords
        validators: list[Any] = []
        entropy = raw.get("entropy")
        if isinstance(entropy, (int, float)) and not isinstance(entropy, bool) and entropy > 0:
            validators.append({"entropy": float(entropy) if not float(entropy).is_integer() else int(entropy)})
            if source_id.startswith("generic"):
                validators.append("has_digit")
                changes.append("has_digit added (gitleaks requires a digit in generic-* secrets with entropy)")
        if validators:
            data["validators"] = validators
        if raw.get("path"):
            changes.append(f"dropped: path filter '{raw['path']}' (a request has no file path)")
        allow = self._allow(raw, source_id, global_allow, changes)
        if allow:
            data["allow"] = [{"pattern": p} for p in allow]
        width = max_width(adapted.re_pattern)
        if width is not None and width > DEFAULT_MAX_LENGTH:
            data["max_length"] = min(width, 65536)
        data["examples"] = self._examples(data, adapted.re_pattern, keywords, label)
        return Converted(rule_id, source_id, data, changes, src, adapted.anchors)

    def _rule_id(self, source_id: str, changes: list[str]) -> str:
        base = kebab(self.id_prefix + source_id) or "rule"
        rule_id, n = base, 2
        while rule_id in self.ids:
            rule_id, n = f"{base}-{n}", n + 1
        self.ids.add(rule_id)
        if rule_id != self.id_prefix + source_id:
            changes.append(f"id {source_id!r} written as {rule_id!r}")
        return rule_id

    def _allow(self, raw: dict[str, Any], source_id: str, global_allow: list[tuple[list[str] | None, _Allow]],
               changes: list[str]) -> list[str]:
        patterns: list[str] = []
        for n, entry in enumerate(_rule_allowlists(raw), 1):
            allow = _convert_allowlist(entry, f"allowlist {n}")
            patterns += allow.patterns
            changes += [f"dropped: {d}" for d in allow.dropped]
        for targets, allow in global_allow:
            if targets is None or source_id in targets:
                patterns += allow.patterns
        return list(dict.fromkeys(patterns))

    # -- examples -------------------------------------------------------------------------------------
    def _examples(self, data: dict[str, Any], re_pattern: str, keywords: list[str], label: str) -> dict[str, list[str]]:
        ruleset = self._single_ruleset(data)
        rule_id = data["id"]

        def fires(text: str) -> bool:
            return any(f.rule_id == rule_id for f in ruleset.scan([TextSegment("example", text)]))

        why = "no example could be generated"
        for attempt in range(_ATTEMPTS):
            target = 32 if attempt == 0 else random.Random(f"{label}/len/{attempt}").choice([16, 24, 40, 48, 64])
            try:
                sample = generate(re_pattern, keywords, f"{label}/{attempt}", target)
            except (GenError, re.error, RecursionError) as e:
                raise _Skip(f"cannot generate examples from the pattern: {e}") from None
            if not fires(sample.text):
                why = self._why_not(data, sample)
                continue
            no_match = [t for t in (sample.placeholder, *keywords[:1], "no credentials in this text")
                        if t != sample.text and not fires(t)]
            if no_match:
                return {"match": [sample.text], "no_match": list(dict.fromkeys(no_match))[:2]}
            why = "every no_match candidate (placeholder secret, keyword alone) is reported too"
        raise _Skip(f"no verified examples after {_ATTEMPTS} tries: {why}")

    @staticmethod
    def _why_not(data: dict[str, Any], sample: Sample) -> str:
        match = regex.search(data["pattern"], sample.text, regex.MULTILINE)
        if match is None:
            return "the generated text does not match the pattern"
        secret = match.group("secret") if "secret" in match.re.groupindex and match.group("secret") else match.group(0)
        for v in data.get("validators", []):
            if isinstance(v, dict) and shannon_entropy(secret) < v["entropy"]:
                return f"the generated secret's entropy {shannon_entropy(secret):.2f} < {v['entropy']}"
        if any(regex.search(a["pattern"], secret) for a in data.get("allow", [])):
            return "the generated secret is allowlisted"
        if not not_placeholder(secret):
            return "the generated secret looks like a placeholder"
        return "the engine does not report the generated example"

    def _single_ruleset(self, data: dict[str, Any]) -> Ruleset:
        rule = {**data, "examples": {"match": ["-"], "no_match": ["-"]}}  # placeholders: not checked here
        text = yaml.safe_dump({"pack": "probe", "version": 1, "rules": [rule]}, sort_keys=False)
        try:
            return Ruleset([parse_pack(text, "probe")], self.fingerprint)
        except RulePackErrors as e:
            raise _Skip("; ".join(one.message for one in e.errors)) from None
        except RulePackError as e:
            raise _Skip(e.message) from None

    @staticmethod
    def _shipped_ids() -> set[str]:
        ids: set[str] = set()
        for path in expand_pack_paths([SHIPPED_PACKS]):
            try:
                ids |= {r.id for r in load_pack(path).rules}
            except RulePackErrors:
                continue
        return ids
