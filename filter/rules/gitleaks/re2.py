"""Go RE2 syntax -> a pattern Hyperscan (block mode, HS_FLAG_MULTILINE) and `regex` (MULTILINE, REVERSE) both
read with Go's meaning: scoped inline flags, greedy quantifiers, POSIX classes, \\Q...\\E, \\x{HH}, \\v, literal '{'.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field


class Unsupported(Exception):
    """A construct the adapter does not rewrite; the pattern is then tried unchanged."""


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
                    raise Unsupported("unbalanced ')'")
                self.i += 1
                return branches
            else:
                self._item(branches[-1])
        if not top:
            raise Unsupported("missing ')'")
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
        raise Unsupported(f"group syntax '({rest[:3]}' is not Go RE2")

    def _capture(self) -> _Group:
        self.captures += 1
        index = self.captures
        return _Group("capture", "", index, self._alternation(top=False))

    def _escape(self) -> str:
        s, i = self.src, self.i
        if i + 1 >= len(s):
            raise Unsupported("trailing backslash")
        c = s[i + 1]
        if c == "Q":
            end = s.find("\\E", i + 2)
            literal = s[i + 2 :] if end < 0 else s[i + 2 : end]
            self.i = len(s) if end < 0 else end + 2
            self.changes[QUOTED] += 1
            return escape_literal(literal)
        if c == "x" and s.startswith("{", i + 2):
            end = s.find("}", i + 3)
            if end < 0:
                raise Unsupported("unterminated \\x{")
            code = int(s[i + 3 : end], 16)
            self.i = end + 1
            self.changes[HEX] += 1
            return f"\\x{code:02x}" if code < 0x80 else escape_literal(chr(code))
        if c == "v":
            self.i = i + 2
            self.changes[VTAB] += 1
            return "\\x0b"
        if c in "pP" and s.startswith("{", i + 2):
            end = s.find("}", i + 2)
            if end < 0:
                raise Unsupported("unterminated \\p{")
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
                raise Unsupported("missing ']'")
            if s[i] == "]" and not first:
                i += 1
                break
            first = False
            if s.startswith("[:", i) and (end := s.find(":]", i + 2)) >= 0:
                name = s[i + 2 : end]
                ranges = _POSIX.get(name.lstrip("^"))
                if ranges is None:
                    raise Unsupported(f"unknown POSIX class [:{name}:]")
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
                    raise Unsupported("class range ends in a class escape")
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
            raise Unsupported("trailing backslash")
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
            raise Unsupported(f"escape \\{c} in a class")
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


def escape_literal(text: str) -> str:
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
    except Unsupported as e:
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
