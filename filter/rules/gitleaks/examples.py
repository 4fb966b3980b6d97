"""Examples for an imported rule: a walk of the adapted pattern's `re` parse tree with a seeded RNG (the secret part
drawn to be high-entropy, the first keyword included when an alternative allows it). The caller verifies them
with the engine.
"""

from __future__ import annotations

import importlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_sre: Any = importlib.import_module("re._parser")  # the stdlib parser behind `re` (sre_parse, not deprecated)

_UNIVERSE = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n"]
_QUIET_SPACE = "\t\n\r\x0b\x0c"


class GenError(Exception):
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
            raise GenError(f"class item {op} {av}")
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
            raise GenError(f"cannot generate text for {op}")

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
            raise GenError("a character class with no printable ASCII member")
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
class Sample:
    text: str  # the generated match, after a line naming the first keyword when the match holds none
    placeholder: str  # the same with the secret's class-drawn characters replaced by a placeholder run


def generate(re_pattern: str, keywords: Sequence[str], seed: str, target: int) -> Sample:
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
    return Sample(prefix + match, prefix + placeholder)


def max_width(re_pattern: str) -> int | None:
    """The longest text the pattern can match, or None when unbounded or unreadable."""
    try:
        hi = _sre.parse(re_pattern, re.MULTILINE).getwidth()[1]
    except (re.error, RecursionError, OverflowError):
        return None
    return None if hi >= _sre.MAXREPEAT else int(hi)
