"""Import another scanner's rules as one of our packs: `llm-content-filter rules import gitleaks FILE.toml`.

gitleaks (v8 schema) -> pack, so a team keeps the rules it already has:

- each `[[rules]]` entry with a `regex` becomes a `secret` rule: `id` made kebab-case, `description`,
  `keywords` (lower-cased), `entropy` -> `validators: [{entropy: N}]` (plus `has_digit` for `generic*` ids,
  as gitleaks requires a digit in those secrets), the secret group (`secretGroup`, else group 1 when the
  regex has groups, else the whole match) rewritten as `(?P<secret>...)`, the other groups non-capturing;
- allowlists (rule-level `[[rules.allowlists]]` / `[rules.allowlist]`, and the global `[allowlist]` /
  `[[allowlists]]` with optional `targetRules`): `regexes` aimed at the secret and `stopwords` (as
  case-insensitive substring patterns) become `allow: [{pattern: ...}]`; an AND of both becomes one pattern
  with two lookaheads (allow patterns run only in `regex`, never in Hyperscan). Whatever cannot be expressed
  on the secret (`regexTarget` match / line, `paths`, `commits`, AND with those) is reported as
  "dropped: reason" on the rule, never silently lost;
- Go RE2 syntax is adapted so that Hyperscan (block mode, HS_FLAG_MULTILINE) and `regex` (MULTILINE,
  REVERSE) both accept the pattern with Go's meaning (research/rule-engines.md 7.2):
  mid-pattern `(?i)` -> `(?i:...)` up to the end of its group (and around the later alternatives of that
  group, where Go also applies it); lazy quantifiers `*? +? ?? {n,m}?` -> greedy (a no-op for Hyperscan,
  which reports every end offset; the confirm step is anchored at that end); `(?U)` removed for the same
  reason; POSIX classes `[[:alnum:]]` -> explicit ranges; `\\Q...\\E` -> escaped literal; `\\x{HH}` -> `\\xHH`;
  `\\v` -> `\\x0b` (Hyperscan reads `\\v` as a class); a `{` that is not a Go repetition -> `\\{` (Python reads
  `{,n}` as a repetition, Go as text). `\\z` is kept: both engines read it as Go does. A construct the adapter
  cannot parse leaves the pattern unchanged, and the rule is kept only if both engines still compile it;
  what Hyperscan refuses (lookaround, back-references, "Pattern is too large", ...) is reported as skipped
  with Hyperscan's message. Note: `^` and `$` match at every line here (the engine is MULTILINE); in
  gitleaks they match at the start / end of the scanned file.
- examples (required by our packs, absent from gitleaks configs) are generated from the adapted pattern
  (a walk of its `re` parse tree with a seeded RNG: the secret part drawn to be high-entropy, the first
  keyword included when an alternative allows it) and verified with the engine itself; `no_match` is the
  example with its secret replaced by a placeholder run, or the keyword alone. A rule without a verified
  pair is skipped with the reason.
- path-only rules (files by name), composite rules (`required`) and `skipReport` rules are skipped: a
  request has no file paths, and composite rules need a second pass we do not have. `[extend]` is reported
  as not supported (only the rules in the given file are imported).

The whole pack is written only after it loads with `load_ruleset` (schema, Hyperscan compile of the whole
set, every example). Exit codes: 0 at least one rule converted and the pack loads; 1 nothing converted or the
pack does not load; 2 unreadable file, invalid TOML, or bad arguments.
"""

from __future__ import annotations

import importlib
import random
import re
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hyperscan
import regex
import yaml

from filter.errors import RulePackError, RulePackErrors
from filter.model import TextSegment
from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, expand_pack_paths, load_pack, load_ruleset
from filter.rules.pack import DEFAULT_MAX_LENGTH
from filter.rules.validators import not_placeholder, shannon_entropy

_sre: Any = importlib.import_module("re._parser")  # the stdlib parser behind `re` (sre_parse, not deprecated)

FORMATS = ("gitleaks",)
_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ATTEMPTS = 12  # seeds tried per rule for a verified example pair


class ConfigImportError(Exception):
    """The input cannot be imported at all (unreadable, invalid TOML, not a gitleaks config): exit 2."""


class _Skip(Exception):
    """This rule is not converted; the message is the reason in the report."""


class _Unsupported(Exception):
    """A construct the adapter does not rewrite; the pattern is then tried unchanged."""


# ------------------------------------------------------------------------------------------------------
# Go RE2 -> Hyperscan / regex
# ------------------------------------------------------------------------------------------------------

_POSIX: dict[str, list[tuple[int, int]]] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_CLASS_ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07}
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_FLAG_GROUP = re.compile(r"\?([imsU]*)(?:-([imsU]*))?([:)])")
_NAMED = re.compile(r"\?P?<([A-Za-z_][A-Za-z0-9_]*)>")

LAZY = "lazy quantifier made greedy (no-op in Hyperscan, which reports every end)"
UNGREEDY = "(?U) removed (every quantifier is greedy; no-op in Hyperscan)"
QUOTED = "\\Q...\\E written as an escaped literal"
BRACE = "literal '{' escaped (not a repetition in Go)"
HEX = "\\x{...} written as \\xHH"
VTAB = "\\v written as \\x0b (Hyperscan reads \\v as a class)"


@dataclass
class _Flags:
    on: str
    off: str

    def text(self) -> str:
        return self.on + ("-" + self.off if self.off else "")

    def then(self, later: _Flags | None) -> _Flags:
        if later is None:
            return self
        on = "".join(f for f in self.on if f not in later.off) + "".join(f for f in later.on if f not in self.on)
        off = "".join(f for f in self.off if f not in later.on) + "".join(f for f in later.off if f not in self.off)
        return _Flags(on, off)


@dataclass
class _Group:
    kind: str  # "capture" | "plain" (non-capturing, maybe with flags) | "raw" (lookaround, atomic: kept as is)
    prefix: str  # what follows "(" for plain / raw groups: "?:", "?i-s:", "?=", "?<!", ...
    index: int = 0  # Go capture number (named groups count too)
    branches: list[list[_Node]] = field(default_factory=list)


_Node = str | _Flags | _Group


class _GoParser:
    """Go RE2 syntax -> a small tree: atoms and quantifiers as text, groups, inline-flag markers."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.captures = 0
        self.changes: Counter[str] = Counter()

    def parse(self) -> list[list[_Node]]:
        return self._alternation(top=True)

    def _alternation(self, top: bool) -> list[list[_Node]]:
        branches: list[list[_Node]] = [[]]
        while self.i < len(self.src):
            c = self.src[self.i]
            if c == "|":
                branches.append([])
                self.i += 1
            elif c == ")":
                if top:
                    raise _Unsupported("unbalanced ')'")
                self.i += 1
                return branches
            else:
                self._item(branches[-1])
        if not top:
            raise _Unsupported("missing ')'")
        return branches

    def _item(self, branch: list[_Node]) -> None:
        s, c = self.src, self.src[self.i]
        if c == "(":
            branch.append(self._group())
        elif c == "[":
            branch.append(self._class())
        elif c == "\\":
            branch.append(self._escape())
        elif c in "*+?":
            self.i += 1
            branch.append(c + self._lazy())
        elif c == "{":
            m = _REPEAT.match(s, self.i)
            if m and branch and not isinstance(branch[-1], _Flags):
                self.i = m.end()
                branch.append(m.group(0) + self._lazy())
            else:
                self.i += 1
                branch.append("\\{")
                self.changes[BRACE] += 1
        else:
            self.i += 1
            branch.append(c)

    def _lazy(self) -> str:
        if self.src.startswith("?", self.i):
            self.i += 1
            self.changes[LAZY] += 1
        return ""

    def _group(self) -> _Node:
        self.i += 1
        rest = self.src[self.i :]
        if not rest.startswith("?"):
            return self._capture()
        if m := _NAMED.match(rest):
            self.i += m.end()
            return self._capture()
        for prefix in ("?<=", "?<!", "?=", "?!", "?>"):
            if rest.startswith(prefix):
                self.i += len(prefix)
                return _Group("raw", prefix, 0, self._alternation(top=False))
        if m := _FLAG_GROUP.match(rest):
            on, off, end = m.group(1), m.group(2) or "", m.group(3)
            self.i += m.end()
            if "U" in on + off:
                self.changes[UNGREEDY] += 1
                on, off = on.replace("U", ""), off.replace("U", "")
            flags = _Flags(on, off)
            if end == ")":
                return flags
            return _Group("plain", f"?{flags.text()}:", 0, self._alternation(top=False))
        raise _Unsupported(f"group syntax '({rest[:3]}' is not Go RE2")

    def _capture(self) -> _Group:
        self.captures += 1
        index = self.captures
        return _Group("capture", "", index, self._alternation(top=False))

    def _escape(self) -> str:
        s, i = self.src, self.i
        if i + 1 >= len(s):
            raise _Unsupported("trailing backslash")
        c = s[i + 1]
        if c == "Q":
            end = s.find("\\E", i + 2)
            literal = s[i + 2 :] if end < 0 else s[i + 2 : end]
            self.i = len(s) if end < 0 else end + 2
            self.changes[QUOTED] += 1
            return _escape_literal(literal)
        if c == "x" and s.startswith("{", i + 2):
            end = s.find("}", i + 3)
            if end < 0:
                raise _Unsupported("unterminated \\x{")
            code = int(s[i + 3 : end], 16)
            self.i = end + 1
            self.changes[HEX] += 1
            return f"\\x{code:02x}" if code < 0x80 else _escape_literal(chr(code))
        if c == "v":
            self.i = i + 2
            self.changes[VTAB] += 1
            return "\\x0b"
        if c in "pP" and s.startswith("{", i + 2):
            end = s.find("}", i + 2)
            if end < 0:
                raise _Unsupported("unterminated \\p{")
            self.i = end + 1
            return s[i : end + 1]
        width = 4 if c == "x" else 3 if c in "pP" else 2
        self.i = i + width
        return s[i : i + width]

    def _class(self) -> str:
        """A class is kept as written unless it holds something an engine reads differently: POSIX names,
        \\x{...}, \\v, a literal '[' or Python's reserved set operators (&&, ||, ~~, --)."""
        s, start = self.src, self.i
        i = start + 1
        before = sum(self.changes.values())
        negate = s.startswith("^", i)
        i += negate
        items: list[str | tuple[int, int]] = []
        first = True
        while True:
            if i >= len(s):
                raise _Unsupported("missing ']'")
            if s[i] == "]" and not first:
                i += 1
                break
            first = False
            if s.startswith("[:", i) and (end := s.find(":]", i + 2)) >= 0:
                name = s[i + 2 : end]
                ranges = _POSIX.get(name.lstrip("^"))
                if ranges is None:
                    raise _Unsupported(f"unknown POSIX class [:{name}:]")
                items.extend(_complement(ranges) if name.startswith("^") else ranges)
                self.changes[f"POSIX class [:{name}:] expanded"] += 1
                i = end + 2
                continue
            lo, i = self._class_char(i)
            if isinstance(lo, str):
                items.append(lo)
            elif s.startswith("-", i) and i + 1 < len(s) and s[i + 1] != "]":
                hi, i = self._class_char(i + 1)
                if isinstance(hi, str):
                    raise _Unsupported("class range ends in a class escape")
                items.append((lo, hi))
            else:
                items.append((lo, lo))
        self.i = i
        text = s[start:i]
        rebuild = sum(self.changes.values()) != before or "\\v" in text or "[" in text[1:]
        if not rebuild and not any(op in text for op in ("&&", "||", "~~", "--")):
            return text
        return "[" + ("^" if negate else "") + "".join(_class_item(x) for x in items) + "]"

    def _class_char(self, i: int) -> tuple[int | str, int]:
        s = self.src
        if s[i] != "\\":
            return ord(s[i]), i + 1
        if i + 1 >= len(s):
            raise _Unsupported("trailing backslash")
        c = s[i + 1]
        if c in "dDsSwW":
            return s[i : i + 2], i + 2
        if c in "pP":
            end = s.find("}", i) + 1 if s.startswith("{", i + 2) else i + 3
            return s[i:end], end
        if c == "x":
            if s.startswith("{", i + 2):
                end = s.find("}", i + 3)
                self.changes[HEX] += 1
                return int(s[i + 3 : end], 16), end + 1
            return int(s[i + 2 : i + 4], 16), i + 4
        if c in _CLASS_ESCAPES:
            if c == "v":
                self.changes[VTAB] += 1
            return _CLASS_ESCAPES[c], i + 2
        if c.isalnum():
            raise _Unsupported(f"escape \\{c} in a class")
        return ord(c), i + 2


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Within bytes 0x00-0xFF: Hyperscan scans bytes, so a negated POSIX class also takes non-ASCII bytes."""
    out, lo = [], 0
    for a, b in sorted(ranges):
        if a > lo:
            out.append((lo, a - 1))
        lo = max(lo, b + 1)
    if lo <= 0xFF:
        out.append((lo, 0xFF))
    return out


_CONTROL_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x0C: "\\f"}


def _class_char_text(code: int) -> str:
    c = chr(code)
    if code in _CONTROL_ESCAPES:
        return _CONTROL_ESCAPES[code]
    if code < 0x20 or 0x7F <= code <= 0xFF:
        return f"\\x{code:02x}"
    return "\\" + c if c in "\\[]^-&~|" else c


def _class_item(item: str | tuple[int, int]) -> str:
    if isinstance(item, str):
        return item
    lo, hi = item
    return _class_char_text(lo) if lo == hi else f"{_class_char_text(lo)}-{_class_char_text(hi)}"


def _escape_literal(text: str) -> str:
    """Text as a literal for Hyperscan, `regex` and `re` alike: metacharacters escaped, controls as \\xHH."""
    out = []
    for c in text:
        if c in "\\.^$*+?()[]{}|#":
            out.append("\\" + c)
        elif c.isprintable() or ord(c) > 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}")
    return "".join(out)


class _Writer:
    """Serialise the tree: the secret group named, other groups non-capturing, inline flags scoped."""

    def __init__(self, secret: int | None, for_re: bool, scope_all_flags: bool, changes: Counter[str] | None) -> None:
        self.secret = secret
        self.for_re = for_re  # the `re` dialect used by the example generator: \z -> \Z
        self.scope_all_flags = scope_all_flags
        self.changes = changes
        self.anchors = False

    def top(self, branches: list[list[_Node]]) -> str:
        prefix = ""
        if not self.scope_all_flags and branches and branches[0]:
            first = branches[0]
            k = 0
            merged: _Flags | None = None
            while k < len(first) and isinstance(first[k], _Flags):
                flag = first[k]
                assert isinstance(flag, _Flags)
                merged = flag if merged is None else merged.then(flag)
                k += 1
            if merged is not None and merged.text():
                prefix = f"(?{merged.text()})"  # leading flags apply to the whole pattern everywhere
            branches = [first[k:], *branches[1:]]
        return prefix + self.alternation(branches)

    def alternation(self, branches: list[list[_Node]]) -> str:
        out, pending = [], None
        for branch in branches:
            body, seen = self._markers(branch)
            if pending is not None and pending.text() and body:
                body = f"(?{pending.text()}:{body})"  # Go: flags set earlier in the group hold in later branches
            pending = seen if pending is None else pending.then(seen)
            out.append(body)
        return "|".join(out)

    def _markers(self, items: list[_Node]) -> tuple[str, _Flags | None]:
        for k, item in enumerate(items):
            if isinstance(item, _Flags):
                head = self._plain(items[:k])
                tail, seen = self._markers(items[k + 1 :])
                if tail and item.text():
                    if self.changes is not None:
                        self.changes[f"(?{item.text()}) scoped as (?{item.text()}:...) to the end of its group"] += 1
                    tail = f"(?{item.text()}:{tail})"
                return head + tail, item.then(seen)
        return self._plain(items), None

    def _plain(self, items: list[_Node]) -> str:
        out = []
        for item in items:
            if isinstance(item, _Group):
                inner = self.alternation(item.branches)
                if item.kind == "capture":
                    out.append(f"(?P<secret>{inner})" if item.index == self.secret else f"(?:{inner})")
                else:
                    out.append(f"({item.prefix}{inner})")
            elif isinstance(item, str):
                if item in ("^", "$"):
                    self.anchors = True
                out.append("\\Z" if self.for_re and item == "\\z" else item)
        return "".join(out)


@dataclass
class Adapted:
    pattern: str  # for Hyperscan and `regex`
    re_pattern: str  # the same in Python `re` dialect, for the example generator
    changes: Counter[str]
    groups: int
    anchors: bool
    unparsed: str = ""  # why the adapter left the pattern as it was


def adapt_pattern(src: str, secret_group: int | None = None) -> Adapted:
    """Go RE2 -> a pattern both engines accept. `secret_group`: Go group number to name `secret`
    (None: group 1 if the regex has groups, else none: the whole match is the secret)."""
    parser = _GoParser(src)
    try:
        tree = parser.parse()
    except _Unsupported as e:
        return Adapted(src, src, Counter(), 0, False, unparsed=str(e))
    secret = secret_group if secret_group is not None else (1 if parser.captures else None)
    changes = parser.changes
    engine = _Writer(secret, for_re=False, scope_all_flags=False, changes=changes)
    pattern = engine.top(tree)
    re_pattern = _Writer(secret, for_re=True, scope_all_flags=False, changes=None).top(tree)
    return Adapted(pattern, re_pattern, changes, parser.captures, engine.anchors)


def adapt_allow_regex(src: str) -> str:
    """An allowlist regex for `regex` (no groups needed; flags scoped so it can be embedded)."""
    parser = _GoParser(src)
    tree = parser.parse()
    return _Writer(None, for_re=False, scope_all_flags=True, changes=None).top(tree)


def hyperscan_error(pattern: str) -> str | None:
    try:
        hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
            expressions=[pattern.encode()], flags=[hyperscan.HS_FLAG_MULTILINE]
        )
    except hyperscan.error as e:
        text = e.args[0] if e.args else e
        return text.decode() if isinstance(text, bytes) else str(text)
    return None


def regex_error(pattern: str) -> str | None:
    try:
        regex.compile(pattern, regex.MULTILINE)
        regex.compile(pattern.encode(), regex.MULTILINE | regex.REVERSE)
    except (regex.error, ValueError) as e:
        return str(e)
    return None


# ------------------------------------------------------------------------------------------------------
# Example generation: walk the `re` parse tree with a seeded RNG
# ------------------------------------------------------------------------------------------------------

_UNIVERSE = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n"]
_QUIET_SPACE = "\t\n\r\x0b\x0c"


class _GenError(Exception):
    pass


_DIGITS = set("0123456789")
_WORD = {c for c in _UNIVERSE if c.isalnum() or c == "_"}
_SPACE = set(" \t\n")
_CATEGORIES = {
    "CATEGORY_DIGIT": _DIGITS, "CATEGORY_NOT_DIGIT": set(_UNIVERSE) - _DIGITS,
    "CATEGORY_SPACE": _SPACE, "CATEGORY_NOT_SPACE": set(_UNIVERSE) - _SPACE,
    "CATEGORY_WORD": _WORD, "CATEGORY_NOT_WORD": set(_UNIVERSE) - _WORD,
}  # fmt: skip


def _class_chars(items: Any, icase: bool) -> list[str]:
    """The printable ASCII (plus tab, newline) members of a parsed class."""
    negate = False
    members: set[str] = set()
    for op, av in items:
        if op == _sre.NEGATE:
            negate = True
        elif op == _sre.LITERAL:
            members.add(chr(av))
        elif op == _sre.RANGE:
            members |= {c for c in _UNIVERSE if av[0] <= ord(c) <= av[1]}
        elif op == _sre.CATEGORY and str(av) in _CATEGORIES:
            members |= _CATEGORIES[str(av)]
        else:
            raise _GenError(f"class item {op} {av}")
    if icase:
        members |= {c.swapcase() for c in members}
    return [c for c in _UNIVERSE if (c in members) != negate]


def _literal_text(items: Any) -> str:
    """Literal characters along a parse sequence (first alternative of branches): to spot keywords."""
    out = []
    for op, av in items:
        if op == _sre.LITERAL:
            out.append(chr(av))
        elif op == _sre.SUBPATTERN:
            out.append(_literal_text(av[3]))
        elif op == _sre.BRANCH:
            out.append(_literal_text(av[1][0]))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] > 0:
            out.append(_literal_text(av[2]))
    return "".join(out)


class _Generator:
    def __init__(self, rng: random.Random, secret_gid: int | None, keywords: Sequence[str], target: int) -> None:
        self.rng = rng
        self.secret_gid = secret_gid
        self.keywords = keywords
        self.target = target
        self.out: list[str] = []
        self.fill: list[str | None] = []  # placeholder character for secret positions drawn from a class
        self.secret: tuple[int, int] | None = None
        self.in_secret = 1 if secret_gid is None else 0
        self.used: Counter[str] = Counter()
        self.groups: dict[int, str] = {}

    def run(self, items: Any, icase: bool) -> None:
        for op, av in items:
            self._node(op, av, icase)

    def _node(self, op: Any, av: Any, icase: bool) -> None:
        if op == _sre.LITERAL:
            self._put(chr(av), None)
        elif op == _sre.NOT_LITERAL:
            v = chr(av)
            self._pick([c for c in _UNIVERSE if c != v and not (icase and c.lower() == v.lower())])
        elif op == _sre.ANY:
            self._pick([c for c in _UNIVERSE if c != "\n"])
        elif op == _sre.IN:
            self._pick(_class_chars(av, icase))
        elif op == _sre.BRANCH:
            self.run(self._choose(av[1]), icase)
        elif op == _sre.SUBPATTERN:
            gid, add, delete, sub = av
            ic = (icase or bool(add & re.IGNORECASE)) and not delete & re.IGNORECASE
            start = len(self.out)
            secret = gid is not None and gid == self.secret_gid
            self.in_secret += secret
            self.run(sub, ic)
            self.in_secret -= secret
            if secret:
                self.secret = (start, len(self.out))
            if gid:
                self.groups[gid] = "".join(self.out[start:])
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            lo, hi, item = av
            for _ in range(self._count(lo, hi, item, icase)):
                self.run(item, icase)
        elif op == _sre.ATOMIC_GROUP:
            self.run(av, icase)
        elif op == _sre.GROUPREF:
            for c in self.groups.get(av, ""):
                self._put(c, None)
        elif op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            pass  # anchors and boundaries: the engine check decides
        else:
            raise _GenError(f"cannot generate text for {op}")

    def _count(self, lo: int, hi: int, item: Any, icase: bool) -> int:
        """Secret character runs long (for entropy), everything else short: optional parts mostly left out.
        Without a secret group the whole match is the secret; its optional runs are kept short too."""
        bounded = None if hi == _sre.MAXREPEAT else hi
        op = item[0][0] if len(item) == 1 else None
        token = op in (_sre.ANY, _sre.NOT_LITERAL) or (
            op == _sre.IN and any(c.isalnum() for c in _class_chars(item[0][1], icase))
        )  # a run of token characters, not of separators
        if self.in_secret and token and (lo > 0 or self.secret_gid is not None):
            want = max(lo, self.target)
            return want if bounded is None else min(bounded, want)
        if lo > 0:
            return int(lo)
        return int(self.rng.random() < 0.25)

    def _choose(self, alternatives: list[Any]) -> Any:
        text = "".join(self.out).lower()
        wanted = [k for k in self.keywords[:1] if k not in text]
        for keyword in wanted:
            lits = [(a, _literal_text(a).lower()) for a in alternatives]
            best = [a for a, lit in lits if keyword in lit] or [a for a, lit in lits if lit and lit in keyword]
            if best:
                return self.rng.choice(best)
        # Authors list the common form first (`=` before `:=`, a quote before `\\n`): favour it.
        return alternatives[0] if self.rng.random() < 0.5 else self.rng.choice(alternatives)

    def _pick(self, chars: list[str]) -> None:
        if not chars:
            raise _GenError("a character class with no printable ASCII member")
        if self.in_secret:
            pool = ([c for c in chars if c.isalnum()] or [c for c in chars if c not in _QUIET_SPACE + " "]
                    or [c for c in chars if c == " "] or chars)
            least = min(self.used[c] for c in pool)
            c = self.rng.choice([c for c in pool if self.used[c] == least])
            self.used[c] += 1
            self._put(c, next((f for f in "xX0" if f in chars), chars[0]))
        else:
            pool = [c for c in chars if c not in _QUIET_SPACE] or chars
            self._put(self.rng.choice(pool), None)

    def _put(self, c: str, filler: str | None) -> None:
        self.out.append(c)
        self.fill.append(filler if self.in_secret else None)


@dataclass
class _Sample:
    text: str  # the generated match, after a line naming the first keyword when the match holds none
    placeholder: str  # the same with the secret's class-drawn characters replaced by a placeholder run


def _generate(re_pattern: str, keywords: Sequence[str], seed: str, target: int) -> _Sample:
    parsed = _sre.parse(re_pattern, re.MULTILINE)
    gid = parsed.state.groupdict.get("secret")
    gen = _Generator(random.Random(seed), gid, keywords, target)
    gen.run(parsed, bool(parsed.state.flags & re.IGNORECASE))
    match = "".join(gen.out)
    secret = gen.secret if gen.secret is not None and gen.secret[0] < gen.secret[1] else (0, len(match))
    prefix = ""
    if keywords and not any(k in match.lower() for k in keywords):
        prefix = f"# {keywords[0]}\n"
    placeholder = "".join(f if f is not None and secret[0] <= i < secret[1] else c
                          for i, (c, f) in enumerate(zip(gen.out, gen.fill, strict=True)))
    return _Sample(prefix + match, prefix + placeholder)


# ------------------------------------------------------------------------------------------------------
# gitleaks config -> rules
# ------------------------------------------------------------------------------------------------------


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
    escaped = sorted({_escape_literal(w) for w in words if w}, key=lambda w: (-len(w), w))
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
        except (_Unsupported, regex.error) as e:
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


def _kebab(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class _Importer:
    def __init__(self, file: str, pack_name: str, id_prefix: str, workdir: Path) -> None:
        self.file = file
        self.pack_name = pack_name
        self.id_prefix = id_prefix
        self.workdir = workdir
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
        width = self._max_width(adapted.re_pattern)
        if width is not None and width > DEFAULT_MAX_LENGTH:
            data["max_length"] = min(width, 65536)
        data["examples"] = self._examples(data, adapted.re_pattern, keywords, label)
        return Converted(rule_id, source_id, data, changes, src, adapted.anchors)

    def _rule_id(self, source_id: str, changes: list[str]) -> str:
        base = _kebab(self.id_prefix + source_id) or "rule"
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

    @staticmethod
    def _max_width(re_pattern: str) -> int | None:
        try:
            hi = _sre.parse(re_pattern, re.MULTILINE).getwidth()[1]
        except (re.error, RecursionError, OverflowError):
            return None
        return None if hi >= _sre.MAXREPEAT else int(hi)

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
                sample = _generate(re_pattern, keywords, f"{label}/{attempt}", target)
            except (_GenError, re.error, RecursionError) as e:
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
    def _why_not(data: dict[str, Any], sample: _Sample) -> str:
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
        path = self.workdir / "one-rule.yaml"
        path.write_text(yaml.safe_dump({"pack": "probe", "version": 1, "rules": [rule]}, sort_keys=False))
        try:
            return Ruleset([load_pack(path)], self.fingerprint)
        except RulePackError as e:
            raise _Skip(e.message) from None

    @staticmethod
    def _shipped_ids() -> set[str]:
        ids: set[str] = set()
        for path in expand_pack_paths([SHIPPED_PACKS]):
            try:
                ids |= {r.id for r in load_pack(path).rules}
            except RulePackError:
                continue
        return ids


# ------------------------------------------------------------------------------------------------------
# Pack output
# ------------------------------------------------------------------------------------------------------


def _pack_yaml(report: Report, pack_name: str, source_name: str) -> str:
    head = {
        "pack": pack_name,
        "version": 1,
        "description": f"Imported from gitleaks config {source_name}",
    }
    out = [
        f"# Generated by `llm-content-filter rules import gitleaks {source_name}`: {len(report.converted)} of "
        f"{report.total} rules",
        f"# converted ({len(report.skipped)} skipped). Examples are generated and verified by the importer.",
        yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=1 << 20).rstrip(),
        "rules:",
    ]
    for rule in report.converted:
        out.append("")
        if rule.changes:
            out.append(f"  # gitleaks {rule.source_id}: {_comment(rule.original)}")
            out += [f"  #   {_comment(c)}" for c in rule.changes]
        body = yaml.safe_dump([rule.data], sort_keys=False, allow_unicode=True, width=1 << 20)
        out += ["  " + line if line else line for line in body.rstrip("\n").split("\n")]
    return "\n".join(out) + "\n"


def _comment(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def import_gitleaks(file: str | Path, pack_name: str | None = None, id_prefix: str = "") -> tuple[str | None, Report]:
    """Convert a gitleaks TOML config. Returns (pack YAML or None when nothing loads, report).
    Raises ConfigImportError for an unreadable file or invalid TOML."""
    path = Path(file)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigImportError(f"{file}: cannot read: {e.strerror or e}") from None
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigImportError(f"{file}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        if message.endswith("(at end of document)"):
            lines = raw.decode("utf-8").count("\n") + 1
            message = message[: -len(")")] + f", line {lines})"
        raise ConfigImportError(f"{file}: invalid TOML: {message}") from None
    stem = _kebab(path.stem)
    name = pack_name or (stem if "gitleaks" in stem else f"gitleaks-{stem}" if stem else "gitleaks")
    if not _KEBAB.match(name):
        raise ConfigImportError(f"pack name {name!r} must be kebab-case (a-z, 0-9, -)")
    if id_prefix and not _KEBAB.match(id_prefix.rstrip("-")):
        raise ConfigImportError(f"id prefix {id_prefix!r} must be kebab-case (a-z, 0-9, -)")
    with tempfile.TemporaryDirectory(prefix="rules-import-") as tmp:
        importer = _Importer(str(file), name, id_prefix, Path(tmp))
        importer.run(config)
        report = importer.report
        while report.converted:
            text = _pack_yaml(report, name, path.name)
            candidate = Path(tmp) / f"{name}.yaml"
            candidate.write_text(text)
            try:
                load_ruleset([candidate], Fingerprinter(b"rules-import"))
                return text, report
            except RulePackErrors as e:
                if not _drop_failing(report, e.errors):
                    report.notes.append(f"the pack does not load: {e}")
                    return None, report
    return None, report


def _drop_failing(report: Report, errors: list[RulePackError]) -> bool:
    """Skip the rules the whole-pack load names; False when an error names no converted rule."""
    failing = {e.rule_id: e.message for e in errors}
    kept = [c for c in report.converted if c.id not in failing]
    if len(kept) == len(report.converted):
        return False
    for c in report.converted:
        if c.id in failing:
            report.skipped.append((c.source_id, f"does not load in the whole pack: {failing[c.id]}"))
    report.converted = kept
    return True


def run_import(fmt: str, file: str, output: str | None = None, pack_name: str | None = None,
               id_prefix: str = "", stdout: Any = None, stderr: Any = None) -> int:
    """The CLI: pack YAML to stdout or `output`, report to stderr. Exit 0 / 1 / 2 (module docstring)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if fmt not in FORMATS:
        print(f"error: unknown format {fmt!r} (known: {', '.join(FORMATS)})", file=err)
        return 2
    try:
        text, report = import_gitleaks(file, pack_name, id_prefix)
    except ConfigImportError as e:
        print(f"error: {e}", file=err)
        return 2
    print(report.render(), file=err)
    if text is None:
        print("error: no rule converted; nothing written", file=err)
        return 1
    if output:
        try:
            Path(output).write_text(text)
        except OSError as e:
            print(f"error: cannot write {output}: {e.strerror or e}", file=err)
            return 2
        print(f"wrote {output}: {len(report.converted)} rules; the pack loads with load_ruleset", file=err)
    else:
        out.write(text)
    return 0
