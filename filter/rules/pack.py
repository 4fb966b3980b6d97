"""Rule packs as authors write them: YAML -> RulePack, every error as `file:line: rule-id: message`.

A pack is plain YAML (no tags, anchors or aliases: filter.strictyaml), checked against one JSON schema that
types every field; each problem is reported at the line of the field at fault, all of them in one pass.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hyperscan
import jsonschema
import regex
import yaml

from filter import strictyaml
from filter.errors import RulePackError, RulePackErrors
from filter.model import Action, Category, Mode, Severity
from filter.rules import assign
from filter.rules import validators as v

PACK_KEYS = {"pack", "version", "description", "rules"}
RULE_KEYS = {
    "id", "category", "description", "pattern", "keywords", "validators", "allow", "action",
    "severity", "mode", "examples", "max_length", "placeholder_check", "assignment", "context", "keyword_window",
    "allow_names",
}  # fmt: skip
ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
ID = re.compile(ID_PATTERN)
DEFAULT_MAX_LENGTH = 1024
# Keywords count only this many bytes either side of the match: a vendor's name elsewhere in a long file
# says nothing about this value.
DEFAULT_KEYWORD_WINDOW = 256
DEFAULT_CONTEXT_WINDOW = 40
MAX_PACK_BYTES = 8 * 1024 * 1024

_NOT_EMPTY = "examples need at least one match and one no_match"


def _choices(enum: Any) -> str:
    return " | ".join(m.value for m in enum)


def _built_schema(field: str, window: bool) -> dict[str, Any]:
    """`assignment:` / `context:`: names and a value shape the pattern is built from (filter.rules.assign)."""
    message = f"{field} needs names (a list of lower-case words) and value (a regex)"
    props: dict[str, Any] = {
        "names": {"type": "array", "minItems": 1, "message": message,
                  "items": {"type": "string", "pattern": r"^(?:[a-z][a-z0-9]*(?: [a-z][a-z0-9]*)*|[A-Z][A-Z0-9]*)$",
                            "message": f"{field}.names entries are lower-case words separated by spaces, "
                                       "or one upper-case word"}},
        "value": {"type": "string", "minLength": 1, "message": f"{field}.value must be a non-empty regex"},
    }
    if window:
        props["window"] = {"type": "integer", "minimum": 1, "maximum": 400,
                           "message": "context.window must be an integer 1..400"}
    return {"type": "object", "message": message, "unknown": f"unknown {field} key '{{key}}'",
            "missing": f"missing {field} key '{{key}}'", "required": ["names", "value"],
            "additionalProperties": False, "properties": props}


def _strings_schema(what: str, min_items: int = 0) -> dict[str, Any]:
    message = f"{what} must be a list of strings"
    return {"type": "array", "minItems": min_items, "message": message,
            "items": {"type": "string", "message": message}}


# "message": what a type / format error says; "unknown" / "missing": templates for extra and absent keys.
# Enum errors say "KEY must be A | B, not 'X'". Validator names and patterns are checked in code (below).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "message": "a pack is a mapping with keys pack, version, rules",
    "unknown": "unknown pack key '{key}'",
    "missing": "missing pack key '{key}'",
    "required": ["pack", "version", "rules"],
    "additionalProperties": False,
    "properties": {
        "pack": {"type": "string", "pattern": ID_PATTERN, "message": "pack name must be kebab-case"},
        "version": {"type": ["string", "integer", "number"], "message": "version must be a string or number"},
        "description": {"type": "string", "message": "description must be a string"},
        "rules": {
            "type": "array",
            "minItems": 1,
            "message": "rules must be a non-empty list",
            "items": {
                "type": "object",
                "message": "each rule must be a mapping",
                "unknown": "unknown rule key '{key}'",
                "missing": "missing required key '{key}'",
                "required": ["id", "category", "description", "examples"],  # and one of pattern / assignment / context
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": ID_PATTERN,
                           "message": "rule id must be kebab-case (a-z, 0-9, -)"},
                    "category": {"enum": [c.value for c in Category]},
                    "description": {"type": "string", "minLength": 1, "message": "description must be a non-empty string"},
                    "pattern": {"type": "string", "minLength": 1, "message": "pattern must be a non-empty string"},
                    "keywords": _strings_schema("keywords"),
                    "validators": {
                        "type": "array",
                        "message": "validators must be a list",
                        "items": {"type": ["string", "object"], "message": "a validator is a name or {entropy: N}"},
                    },
                    "allow": {
                        "type": "array",
                        "message": "allow must be a list",
                        "items": {
                            "type": ["string", "object"],
                            "message": "allow entries are strings or {pattern: REGEX}",
                            "unknown": "allow entries are strings or {pattern: REGEX}",
                            "missing": "allow entries are strings or {pattern: REGEX}",
                            "required": ["pattern"],
                            "additionalProperties": False,
                            "properties": {"pattern": {"type": "string", "message": "allow pattern must be a string"}},
                        },
                    },
                    "action": {"enum": [a.value for a in Action]},
                    "severity": {"enum": [s.value for s in Severity]},
                    "mode": {"enum": [m.value for m in Mode]},
                    "examples": {
                        "type": "object",
                        "message": "examples must have match and no_match lists",
                        "unknown": "unknown examples key '{key}' (match, no_match)",
                        "missing": _NOT_EMPTY,
                        "required": ["match", "no_match"],
                        "additionalProperties": False,
                        "properties": {
                            "match": {**_strings_schema("examples.match", 1), "minItemsMessage": _NOT_EMPTY},
                            "no_match": {**_strings_schema("examples.no_match", 1), "minItemsMessage": _NOT_EMPTY},
                        },
                    },
                    "max_length": {"type": "integer", "minimum": 1, "maximum": 65536,
                                   "message": "max_length must be an integer 1..65536"},
                    "placeholder_check": {"type": "boolean", "message": "placeholder_check must be true or false"},
                    "assignment": _built_schema("assignment", window=False),
                    "context": _built_schema("context", window=True),
                    "allow_names": {"type": "array", "message": "allow_names must be a list of lower-case strings",
                                    "items": {"type": "string", "pattern": "^[^A-Z]+$",
                                              "message": "allow_names must be a list of lower-case strings"}},
                    "keyword_window": {"type": "integer", "minimum": 0, "maximum": 65536,
                                       "message": "keyword_window must be an integer 0..65536 (0: the whole text)"},
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


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
    keyword_window: int = DEFAULT_KEYWORD_WINDOW  # bytes either side of the match; 0: anywhere in the text
    # Not a finding when the text before the value (the name, the operator) holds one: `csrf_token = "…"`.
    allow_names: tuple[str, ...] = ()
    # Lines of the rule's fields: "pattern", "examples.match.0", "allow.1", ... (rule line when absent).
    lines: tuple[tuple[str, int], ...] = ()

    def error(self, message: str) -> RulePackError:
        return RulePackError(self.file, self.line, self.id, message)

    def line_of(self, field: str) -> int:
        return dict(self.lines).get(field, self.line)

    def error_at(self, field: str, message: str) -> RulePackError:
        """An error at the line of one field (e.g. "pattern", "examples.match.0")."""
        return RulePackError(self.file, self.line_of(field), self.id, message)


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    version: str
    description: str
    rules: tuple[Rule, ...]
    file: str
    digest: str  # sha256 of the file bytes


def load_pack(path: str | Path) -> RulePack:
    """Read and check one pack file. Raises RulePackErrors naming every problem. Patterns are compiled with
    Hyperscan later, with the whole set."""
    pack, errors = read_pack(path)
    if errors or pack is None:
        raise RulePackErrors(errors)
    return pack


def parse_pack(text: str, source: str) -> RulePack:
    """A pack from its text; `source` names it in errors. Raises RulePackErrors naming every problem."""
    pack, errors = check_pack(text, source)
    if errors or pack is None:
        raise RulePackErrors(errors)
    return pack


def read_pack(path: str | Path) -> tuple[RulePack | None, list[RulePackError]]:
    """(the pack with its valid rules, every problem found); the pack is None when nothing usable loads."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PACK_BYTES + 1)
    except OSError as e:
        return None, [RulePackError(file, 0, "-", f"cannot read pack: {e.strerror or e}")]
    if len(data) > MAX_PACK_BYTES:
        return None, [RulePackError(file, 0, "-", f"pack is larger than {MAX_PACK_BYTES // (1024 * 1024)} MiB")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [RulePackError(file, data[: e.start].count(b"\n") + 1, "-", "pack is not UTF-8")]
    return check_pack(text, file)


def check_pack(text: str, source: str) -> tuple[RulePack | None, list[RulePackError]]:
    """Never raises for a bad document: any failure while loading it is a pack error."""
    try:
        return _check_pack(text, source)
    except RecursionError:
        return None, [RulePackError(source, 0, "-", "pack is nested too deeply")]
    except Exception as e:  # noqa: BLE001 - a pack must never take the server down; say what went wrong
        return None, [RulePackError(source, 0, "-", f"cannot load pack: {type(e).__name__}: {e}")]


def _check_pack(text: str, file: str) -> tuple[RulePack | None, list[RulePackError]]:
    try:
        document = strictyaml.compose(text)
        if document.root is None:
            return None, [RulePackError(file, 1, "-", "a pack is a mapping with keys pack, version, rules")]
        lines: dict[strictyaml.Path_, int] = {}
        doc = strictyaml.to_plain(document, lines)
    except strictyaml.YAMLRefused as e:
        return None, [RulePackError(file, e.line, "-", e.message)]
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        return None, [RulePackError(file, strictyaml.error_line(e), "-", f"YAML syntax error: {problem}")]

    located = list(_schema_errors(doc, lines, file))
    errors = [e for _, e in located]
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        return None, _sorted(errors)
    pack_ok = not any(index is None for index, _ in located)
    failed = {index for index, _ in located if index is not None}
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(doc["rules"]):
        if not isinstance(raw, dict):
            continue
        rule_id = raw.get("id")
        if isinstance(rule_id, str) and ID.match(rule_id):
            id_line = lines.get(("rules", i, "id"), lines[("rules", i)])
            if rule_id in seen:
                errors.append(RulePackError(file, id_line, rule_id, f"duplicate rule id (first defined at line {seen[rule_id]})"))
                continue
            seen[rule_id] = id_line
        rule, rule_errors = _rule(file, i, raw, lines, schema_ok=i not in failed)
        errors += rule_errors
        if rule is not None:
            rules.append(rule)
    if not pack_ok:
        return None, _sorted(errors)
    pack = RulePack(
        name=doc["pack"],
        version=str(doc["version"]),
        description=str(doc.get("description", "")),
        rules=tuple(rules),
        file=file,
        digest=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    )
    return pack, _sorted(errors)


def _sorted(errors: list[RulePackError]) -> list[RulePackError]:
    unique = {(e.line, e.rule_id, e.message): e for e in errors}
    return [unique[k] for k in sorted(unique, key=lambda k: k[0])]


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value, default=str)


def _schema_errors(doc: Any, lines: dict[strictyaml.Path_, int], file: str) -> Iterator[tuple[int | None, RulePackError]]:
    """Every schema violation as (rule index or None for the pack itself, error at the field's line)."""

    def line_of(path: strictyaml.Path_) -> int:
        while path not in lines and path:
            path = path[:-1]
        return lines.get(path, 1)

    for err in _VALIDATOR.iter_errors(doc):
        path: strictyaml.Path_ = tuple(err.absolute_path)
        index = path[1] if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int) else None
        rule_id = "-"
        if index is not None:
            raw = doc["rules"][index]
            if isinstance(raw, dict) and isinstance(raw.get("id"), (str, int, float)) and raw.get("id") != "":
                rule_id = str(raw["id"])
        schema = err.schema if isinstance(err.schema, dict) else {}
        instance = err.instance
        if err.validator == "additionalProperties" and isinstance(instance, dict):
            for key in sorted(set(instance) - set(schema.get("properties", {}))):
                yield index, RulePackError(file, line_of((*path, key)), rule_id, schema["unknown"].format(key=key))
            continue
        if err.validator == "required" and isinstance(instance, dict):
            for key in schema["required"]:
                if key not in instance:
                    yield index, RulePackError(file, line_of(path), rule_id, schema["missing"].format(key=key))
            continue
        if err.validator == "enum":
            key = str(path[-1]) if path else "value"
            message = f"{key} must be {' | '.join(schema['enum'])}, not '{instance}'"
        elif err.validator == "type":
            message = f"{schema.get('message', err.message)}, not {_shown(instance)}"
        elif err.validator == "minItems" and "minItemsMessage" in schema:
            message = schema["minItemsMessage"]
        else:
            message = schema.get("message", err.message)
        yield index, RulePackError(file, line_of(path), rule_id, message)


def _rule(file: str, i: int, raw: dict[str, Any], lines: dict[strictyaml.Path_, int],
          schema_ok: bool) -> tuple[Rule | None, list[RulePackError]]:
    """Checks the schema cannot express (patterns compile, validator names); the Rule when all hold."""
    at: strictyaml.Path_ = ("rules", i)
    line = lines[at]
    rule_id = str(raw.get("id") or "-")
    field_lines = {".".join(map(str, p[2:])): n for p, n in lines.items() if p[:2] == at and len(p) > 2}
    errors: list[RulePackError] = []

    def fail(field: str, message: str) -> None:
        errors.append(RulePackError(file, field_lines.get(field, line), rule_id, message))

    pattern = _pattern_of(raw, fail)
    if isinstance(pattern, str) and pattern:
        why = pattern_error(pattern)
        if why is not None:
            fail("pattern", f"pattern does not compile: {why}")

    checks: list[tuple[str, v.Validator]] = []
    known = ", ".join(sorted([*v.NAMED, *(f"{k}: N" for k in v.PARAMETRIZED)]))
    items = raw.get("validators")
    for n, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, str):
            if item in v.NAMED:
                checks.append((item, v.NAMED[item]))
            else:
                fail(f"validators.{n}", f"unknown validator '{item}' (known: {known})")
        elif isinstance(item, dict):
            if len(item) != 1 or next(iter(item)) not in v.PARAMETRIZED:
                fail(f"validators.{n}", f"unknown validator '{', '.join(item) or '{}'}' (known: {known})")
                continue
            name, param = next(iter(item.items()))
            if not isinstance(param, (int, float)) or isinstance(param, bool):
                fail(f"validators.{n}", f"validator {name} needs a number, not {_shown(param)}")
                continue
            checks.append((f"{name}:{param}", v.PARAMETRIZED[name](float(param))))

    allow_values: set[str] = set()
    allow_patterns: list[regex.Pattern[str]] = []
    items = raw.get("allow")
    for n, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, str):
            allow_values.add(item)
        elif isinstance(item, dict) and isinstance(item.get("pattern"), str):
            try:
                allow_patterns.append(regex.compile(item["pattern"]))
            except (regex.error, ValueError, OverflowError) as e:
                fail(f"allow.{n}", f"allow pattern does not compile: {e}")

    if errors or not schema_ok or not isinstance(pattern, str):
        return None, errors
    examples = raw["examples"]
    return Rule(
        id=rule_id,
        category=Category(raw["category"]),
        description=raw["description"],
        pattern=pattern,
        severity=Severity(raw.get("severity", Severity.HIGH.value)),
        action=Action(raw.get("action", Action.BLOCK.value)),
        mode=Mode(raw.get("mode", Mode.ENFORCE.value)),
        keywords=tuple(k.lower() for k in raw.get("keywords") or ()),
        validators=tuple(checks),
        allow_values=frozenset(allow_values),
        allow_patterns=tuple(allow_patterns),
        max_length=raw.get("max_length", DEFAULT_MAX_LENGTH),
        placeholder_check=raw.get("placeholder_check", True),
        examples=Examples(tuple(examples["match"]), tuple(examples["no_match"])),
        file=file,
        line=line,
        keyword_window=raw.get("keyword_window", DEFAULT_KEYWORD_WINDOW),
        allow_names=tuple(raw.get("allow_names") or ()),
        lines=tuple(sorted(field_lines.items())),
    ), []


def _pattern_of(raw: dict[str, Any], fail: Callable[[str, str], None]) -> str | None:
    """The rule's pattern as written, or built from `assignment:` / `context:` (exactly one of the three)."""
    given = [k for k in ("pattern", "assignment", "context") if k in raw]
    if len(given) != 1:
        fail("id", f"a rule needs exactly one of pattern, assignment, context (has {', '.join(given)})" if given
             else "missing required key 'pattern'")
        return None
    spec = raw[given[0]]
    if given[0] == "pattern":
        return spec if isinstance(spec, str) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("value"), str) or not isinstance(spec.get("names"), list):
        return None  # the schema reports it
    names = [n for n in spec["names"] if isinstance(n, str)]
    try:
        if given[0] == "assignment":
            return assign.assignment(names, spec["value"])
        window = spec.get("window", DEFAULT_CONTEXT_WINDOW)
        return assign.context(names, spec["value"], window if isinstance(window, int) else DEFAULT_CONTEXT_WINDOW)
    except ValueError as e:
        fail(f"{given[0]}.names", str(e))
        return None


def pattern_error(pattern: str) -> str | None:
    """Why `regex` cannot use the pattern as the engine does (reversed, on bytes), or None. The compiled pattern
    stays in `regex`'s cache for the engine. (No forward compile: the same syntax, and ~0.2 s of every start.)"""
    try:
        regex.compile(pattern.encode(), regex.MULTILINE | regex.REVERSE)
    except (regex.error, ValueError, OverflowError) as e:
        return str(e)
    return None


def hyperscan_error(pattern: str) -> str | None:
    """Hyperscan's reason for refusing the pattern alone (block mode, multiline, as the engine compiles), or None."""
    try:
        hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
            expressions=[pattern.encode()], flags=[hyperscan.HS_FLAG_MULTILINE]
        )
    except hyperscan.error as e:
        return hyperscan_message(e)
    return None


def hyperscan_message(e: BaseException) -> str:
    text = e.args[0] if e.args else e
    return text.decode() if isinstance(text, bytes) else str(text)
