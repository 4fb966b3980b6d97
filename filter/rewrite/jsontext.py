"""JSON text with positions: where every string literal, number and member sits in the text as sent.

The standard `json` module returns values only; rewriting a body without touching anything else needs the
raw span of each string literal and a map from decoded characters back to raw escape sequences. The tree is
built with regex-led tokenising (C speed per token), values decoded with `json.loads` one literal at a time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from filter.rewrite.errors import RewriteError

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_ATOM = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)", re.DOTALL)
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\u2028\u2029]')


@dataclass(slots=True, eq=False)
class Str:
    """A string literal: `start`/`end` bound its content (inside the quotes) in the text it was parsed from."""

    start: int
    end: int
    raw: str  # the content as sent, escapes kept

    _value: str | None = None

    @property
    def value(self) -> str:
        if self._value is None:
            self._value = self.raw if "\\" not in self.raw else json.loads(f'"{self.raw}"')
        return self._value

    def raw_offsets(self) -> list[int]:
        """Raw index (relative to `start`) of each decoded character, plus the raw length at the end.

        A surrogate pair written as two `\\u` escapes is one decoded character (json.loads joins them)."""
        raw = self.raw
        if "\\" not in raw:
            return list(range(len(raw) + 1))
        out: list[int] = []
        pos = 0
        pending_high = False
        for m in _ESCAPE.finditer(raw):
            out.extend(range(pos, m.start()))
            if pos < m.start():
                pending_high = False
            esc = m.group()
            if esc[1] == "u":
                code = int(esc[2:], 16)
                if pending_high and 0xDC00 <= code < 0xE000:
                    pending_high = False  # the low half of a pair: same decoded character as its high half
                else:
                    out.append(m.start())
                    pending_high = 0xD800 <= code < 0xDC00
            else:
                out.append(m.start())
                pending_high = False
            pos = m.end()
        out.extend(range(pos, len(raw)))
        out.append(len(raw))
        if len(out) != len(self.value) + 1:  # lone surrogates or an escape json.loads reads differently
            raise RewriteError("a JSON string's escapes cannot be mapped to its characters")
        return out


@dataclass(slots=True, eq=False)
class Atom:
    """A number, true, false or null."""

    start: int
    end: int
    raw: str


@dataclass(slots=True, eq=False)
class Obj:
    start: int
    end: int
    members: list[tuple[Str, Node]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Arr:
    start: int
    end: int
    items: list[Node] = field(default_factory=list)


Node = Str | Atom | Obj | Arr


def parse(text: str) -> Node:
    """The tree of one JSON text; RewriteError when it is not JSON (it parsed once already: should not happen)."""
    try:
        node, end = _parse(text, _ws(text, 0))
    except (IndexError, ValueError) as e:
        raise RewriteError(f"JSON could not be re-read for rewriting ({e})") from None
    if _ws(text, end) != len(text):
        raise RewriteError("JSON could not be re-read for rewriting (trailing data)")
    return node


def _parse(text: str, pos: int) -> tuple[Node, int]:
    """Iterative: request bodies may nest as deep as the decode limits allow."""
    stack: list[Obj | Arr] = []
    keys: list[Str | None] = []  # the pending key of each open object
    while True:
        ch = text[pos]
        done: Node
        if ch == "{" or ch == "[":
            container: Obj | Arr = Obj(pos, -1) if ch == "{" else Arr(pos, -1)
            _attach(stack, keys, container)
            pos = _ws(text, pos + 1)
            if text[pos] != ("}" if ch == "{" else "]"):
                stack.append(container)
                keys.append(None)
                if isinstance(container, Obj):
                    pos = _key(text, pos, keys)
                continue
            container.end = pos + 1
            done, pos = container, pos + 1
        elif ch == '"':
            m = _STRING.match(text, pos)
            if m is None:
                raise ValueError(f"bad string at {pos}")
            done, pos = Str(pos + 1, m.end() - 1, m.group()[1:-1]), m.end()
            _attach(stack, keys, done)
        else:
            m = _ATOM.match(text, pos)
            if m is None:
                raise ValueError(f"bad value at {pos}")
            done, pos = Atom(pos, m.end(), m.group()), m.end()
            _attach(stack, keys, done)
        if not stack:
            return done, pos
        while True:  # after a value inside containers: the next member, or close containers
            pos = _ws(text, pos)
            top = stack[-1]
            if text[pos] == ",":
                pos = _ws(text, pos + 1)
                if isinstance(top, Obj):
                    pos = _key(text, pos, keys)
                break
            if text[pos] != ("}" if isinstance(top, Obj) else "]"):
                raise ValueError(f"expected a separator at {pos}")
            top.end = pos + 1
            pos += 1
            stack.pop()
            keys.pop()
            if not stack:
                return top, pos


def _ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _attach(stack: list[Obj | Arr], keys: list[Str | None], node: Node) -> None:
    if not stack:
        return
    top = stack[-1]
    if isinstance(top, Arr):
        top.items.append(node)
    else:
        key = keys[-1]
        if key is None:
            raise ValueError("member without a key")
        top.members.append((key, node))
        keys[-1] = None


def _key(text: str, pos: int, keys: list[Str | None]) -> int:
    m = _STRING.match(text, pos)
    if m is None:
        raise ValueError(f"expected a key at {pos}")
    keys[-1] = Str(pos + 1, m.end() - 1, m.group()[1:-1])
    pos = _ws(text, m.end())
    if text[pos] != ":":
        raise ValueError(f"expected ':' at {pos}")
    return _ws(text, pos + 1)


def escape(text: str) -> str:
    """`text` as the content of a JSON string literal; characters that need no escape are kept as they are."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return json.dumps(text, ensure_ascii=False)[1:-1]
