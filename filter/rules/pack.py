"""Rule packs as authors write them: YAML -> RulePack, every error as `file:line: rule-id: message`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import yaml

from filter.errors import RulePackError
from filter.model import Action, Category, Mode, Severity
from filter.rules import validators as v

PACK_KEYS = {"pack", "version", "description", "rules"}
RULE_KEYS = {
    "id", "category", "description", "pattern", "keywords", "validators", "allow", "action",
    "severity", "mode", "examples", "max_length", "placeholder_check",
}  # fmt: skip
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DEFAULT_MAX_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Examples:
    match: tuple[str, ...]
    no_match: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: Category
    description: str
    pattern: str
    severity: Severity
    action: Action
    mode: Mode
    keywords: tuple[str, ...]
    validators: tuple[tuple[str, v.Validator], ...]
    allow_values: frozenset[str]
    allow_patterns: tuple[regex.Pattern[str], ...]
    max_length: int
    placeholder_check: bool
    examples: Examples
    file: str
    line: int

    def error(self, message: str) -> RulePackError:
        return RulePackError(self.file, self.line, self.id, message)


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    version: str
    description: str
    rules: tuple[Rule, ...]
    file: str
    digest: str  # sha256 of the file bytes


def _plain(node: yaml.Node) -> Any:
    """Node tree -> Python values; mappings remember their line as key '__line__'."""
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {"__line__": node.start_mark.line + 1}
        for key_node, value_node in node.value:
            out[str(_plain(key_node))] = _plain(value_node)
            out.setdefault("__lines__", {})[str(_plain(key_node))] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(n) for n in node.value]
    return yaml.SafeLoader("").construct_object(node)  # resolves ints, bools, strings as YAML says


def load_pack(path: str | Path) -> RulePack:
    """Parse and check one pack file's shape. Patterns are compiled later, with the whole set."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RulePackError(file, 0, "-", f"cannot read pack: {e.strerror}") from None
    try:
        node = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise RulePackError(file, 1, "-", "pack is not UTF-8") from None
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise RulePackError(file, line, "-", f"YAML syntax error: {e.problem}") from None
    if node is None or not isinstance(node, yaml.MappingNode):
        raise RulePackError(file, 1, "-", "a pack is a mapping with keys pack, version, rules")
    doc = _plain(node)
    lines: dict[str, int] = doc.get("__lines__", {})
    unknown = sorted(set(lines) - PACK_KEYS)
    if unknown:
        raise RulePackError(file, lines[unknown[0]], "-", f"unknown pack key '{unknown[0]}'")
    for key in ("pack", "version", "rules"):
        if key not in doc:
            raise RulePackError(file, 1, "-", f"missing pack key '{key}'")
    if not isinstance(doc["pack"], str) or not _ID.match(doc["pack"]):
        raise RulePackError(file, lines["pack"], "-", "pack name must be kebab-case")
    if not isinstance(doc["rules"], list) or not doc["rules"]:
        raise RulePackError(file, lines["rules"], "-", "rules must be a non-empty list")
    rules = []
    seen: dict[str, int] = {}
    for raw in doc["rules"]:
        rule = _rule(file, lines["rules"], raw)
        if rule.id in seen:
            raise rule.error(f"duplicate rule id (first defined at line {seen[rule.id]})")
        seen[rule.id] = rule.line
        rules.append(rule)
    return RulePack(
        name=doc["pack"],
        version=str(doc["version"]),
        description=str(doc.get("description", "")),
        rules=tuple(rules),
        file=file,
        digest=hashlib.sha256(data).hexdigest(),
    )


def _enum(rule_id: str, file: str, line: int, raw: dict[str, Any], key: str, enum: Any, default: Any) -> Any:
    value = raw.get(key, default.value if default is not None else None)
    try:
        return enum(value)
    except ValueError:
        choices = " | ".join(m.value for m in enum)
        raise RulePackError(file, raw["__lines__"].get(key, line), rule_id, f"{key} must be {choices}, not '{value}'") from None


def _strings(file: str, line: int, rule_id: str, value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise RulePackError(file, line, rule_id, f"{what} must be a list of strings")
    return tuple(value)


def _rule(file: str, rules_line: int, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise RulePackError(file, rules_line, "-", "each rule must be a mapping")
    line: int = raw["__line__"]
    lines: dict[str, int] = raw.get("__lines__", {})
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise RulePackError(file, lines.get("id", line), str(rule_id or "-"), "rule id must be kebab-case (a-z, 0-9, -)")
    unknown = sorted(set(lines) - RULE_KEYS)
    if unknown:
        raise RulePackError(file, lines[unknown[0]], rule_id, f"unknown rule key '{unknown[0]}'")
    for key in ("category", "description", "pattern", "examples"):
        if key not in raw:
            raise RulePackError(file, line, rule_id, f"missing required key '{key}'")
    pattern = raw["pattern"]
    if not isinstance(pattern, str) or not pattern:
        raise RulePackError(file, lines["pattern"], rule_id, "pattern must be a non-empty string")
    try:
        regex.compile(pattern, regex.MULTILINE)
    except regex.error as e:
        raise RulePackError(file, lines["pattern"], rule_id, f"pattern does not compile: {e}") from None

    checks: list[tuple[str, v.Validator]] = []
    vline = lines.get("validators", line)
    for item in raw.get("validators") or []:
        if isinstance(item, str) and item in v.NAMED:
            checks.append((item, v.NAMED[item]))
        elif isinstance(item, dict) and len(item) == 3 and (set(item) - {"__line__", "__lines__"}) <= set(v.PARAMETRIZED):
            name = next(k for k in item if not k.startswith("__"))
            param = item[name]
            if not isinstance(param, (int, float)) or isinstance(param, bool):
                raise RulePackError(file, vline, rule_id, f"validator {name} needs a number")
            checks.append((f"{name}:{param}", v.PARAMETRIZED[name](float(param))))
        else:
            known = ", ".join(sorted([*v.NAMED, *(f"{k}: N" for k in v.PARAMETRIZED)]))
            shown = item if isinstance(item, str) else "mapping"
            raise RulePackError(file, vline, rule_id, f"unknown validator '{shown}' (known: {known})")

    allow_values: set[str] = set()
    allow_patterns: list[regex.Pattern[str]] = []
    for item in raw.get("allow") or []:
        if isinstance(item, str):
            allow_values.add(item)
        elif isinstance(item, dict) and isinstance(item.get("pattern"), str):
            try:
                allow_patterns.append(regex.compile(item["pattern"]))
            except regex.error as e:
                raise RulePackError(file, lines.get("allow", line), rule_id, f"allow pattern does not compile: {e}") from None
        else:
            raise RulePackError(file, lines.get("allow", line), rule_id, "allow entries are strings or {pattern: REGEX}")

    examples = raw["examples"]
    eline = lines["examples"]
    if not isinstance(examples, dict):
        raise RulePackError(file, eline, rule_id, "examples must have match and no_match lists")
    match = _strings(file, eline, rule_id, examples.get("match"), "examples.match")
    no_match = _strings(file, eline, rule_id, examples.get("no_match"), "examples.no_match")
    if not match or not no_match:
        raise RulePackError(file, eline, rule_id, "examples need at least one match and one no_match")

    max_length = raw.get("max_length", DEFAULT_MAX_LENGTH)
    if not isinstance(max_length, int) or not 1 <= max_length <= 65536:
        raise RulePackError(file, lines.get("max_length", line), rule_id, "max_length must be an integer 1..65536")
    keywords = _strings(file, lines.get("keywords", line), rule_id, raw.get("keywords"), "keywords")
    return Rule(
        id=rule_id,
        category=_enum(rule_id, file, line, raw, "category", Category, None),
        description=str(raw["description"]),
        pattern=pattern,
        severity=_enum(rule_id, file, line, raw, "severity", Severity, Severity.HIGH),
        action=_enum(rule_id, file, line, raw, "action", Action, Action.BLOCK),
        mode=_enum(rule_id, file, line, raw, "mode", Mode, Mode.ENFORCE),
        keywords=tuple(k.lower() for k in keywords),
        validators=tuple(checks),
        allow_values=frozenset(allow_values),
        allow_patterns=tuple(allow_patterns),
        max_length=max_length,
        placeholder_check=bool(raw.get("placeholder_check", True)),
        examples=Examples(match, no_match),
        file=file,
        line=line,
    )
