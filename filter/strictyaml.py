"""YAML as plain data only: no tags (no `!!python/...`), bounded depth, and aliases on a short leash.

Packs and the config file are written by people and read by a long-running server: a document may only hold
mappings, lists and scalars, so loading one costs time proportional to its size, never more. Aliases
(`&name` ... `*name`) are allowed, as the shipped packs share an allowlist entry that way, but the plain data
they expand to may hold at most ALIAS_FACTOR times the nodes written in the file (no billion laughs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_DEPTH = 64  # nesting of mappings and lists; packs need 5
ALIAS_FACTOR = 4  # expanded nodes per written node
ALIAS_SLACK = 10_000  # small documents may expand a little more


class YAMLRefused(ValueError):
    """A construct plain-data YAML does not allow; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


Path_ = tuple[str | int, ...]


class _Checks:
    """The composer step every node passes: no tags, bounded depth, nodes counted."""

    _depth = 0
    written = 0  # nodes in the text (an alias counts as one)

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401 - PyYAML's signature
        event = self.peek_event()  # type: ignore[attr-defined]
        line = event.start_mark.line + 1
        self.written += 1
        if getattr(event, "tag", None) is not None:
            raise YAMLRefused(line, f"YAML tags are not allowed ({event.tag})")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLRefused(line, f"nested deeper than {MAX_DEPTH} levels")
            return Composer.compose_node(self, parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


class _Loader(_Checks, yaml.SafeLoader):
    """Pure-Python scanner and parser."""


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLoader(_Checks, Composer, CParser, SafeConstructor, Resolver):
        """libyaml's scanner and parser (~5x faster on the shipped packs), PyYAML's composer with the checks."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _LOADER: type = _FastLoader
else:
    _LOADER = _Loader


@dataclass(frozen=True, slots=True)
class Document:
    root: yaml.Node | None
    written: int  # nodes in the text

    @property
    def budget(self) -> int:
        return ALIAS_FACTOR * self.written + ALIAS_SLACK


def compose(text: str) -> Document:
    """One document's node tree. Raises YAMLRefused, or yaml.YAMLError for a syntax error."""
    loader = _LOADER(text)
    try:
        return Document(loader.get_single_node(), loader.written)
    finally:
        loader.dispose()


def to_plain(doc: Document, lines: dict[Path_, int]) -> Any:
    """Node tree -> dicts, lists and scalars; `lines` gets the 1-based line of every path (a key's line for
    mapping values, the item's line for list items). Aliases expand within the document's budget."""
    if doc.root is None:
        return None
    constructor = yaml.SafeLoader("")
    lines[()] = doc.root.start_mark.line + 1
    made = 0

    def walk(n: yaml.Node, at: Path_) -> Any:
        nonlocal made
        made += 1
        if made > doc.budget:
            raise YAMLRefused(n.start_mark.line + 1, "aliases expand to too much data (billion-laughs shape)")
        if len(at) > MAX_DEPTH:
            raise YAMLRefused(n.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels (or a recursive alias)")
        if isinstance(n, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in n.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YAMLRefused(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
                key = str(constructor.construct_object(key_node))
                if key in out:
                    raise YAMLRefused(key_node.start_mark.line + 1, f"duplicate key '{key}'")
                lines[(*at, key)] = key_node.start_mark.line + 1
                out[key] = walk(value_node, (*at, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            items = []
            for i, item in enumerate(n.value):
                lines[(*at, i)] = item.start_mark.line + 1
                items.append(walk(item, (*at, i)))
            return items
        return constructor.construct_object(n)  # ints, floats, bools, null, strings as YAML resolves them

    return walk(doc.root, ())


def load(text: str) -> Any:
    """Plain data of one document (None when empty). Raises YAMLRefused or yaml.YAMLError."""
    return to_plain(compose(text), {})


def error_line(e: yaml.YAMLError) -> int:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    return mark.line + 1 if mark is not None else 0
