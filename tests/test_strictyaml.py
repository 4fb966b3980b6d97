"""Plain-data YAML: libyaml's parser (the fast path) and PyYAML's pure-Python one read every file the same way:
the same data, the same line of every key and item, and the same refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from filter import strictyaml
from filter.strictyaml import Document, YAMLRefused, compose, to_plain

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*(ROOT / "filter" / "rules" / "packs").glob("*.yaml"), *(ROOT / "envoy").glob("local-*.yaml"),
                *(ROOT / "compose").glob("*.yaml"), *(ROOT / "tests" / "rules" / "invalid").glob("*.yaml")])
needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")


def read(text: str, loader: type) -> tuple[object, dict[tuple[str | int, ...], int]]:
    parsing = loader(text)
    try:
        doc = Document(parsing.get_single_node(), parsing.written)
    finally:
        parsing.dispose()
    lines: dict[tuple[str | int, ...], int] = {}
    return to_plain(doc, lines), lines


@needs_libyaml
@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_both_parsers_read_a_file_alike(path: Path) -> None:
    text = path.read_text()
    try:
        fast = read(text, strictyaml._LOADER)
    except YAMLRefused as refused:  # a fixture with a tag or an alias bomb: both refuse it at the same line
        with pytest.raises(YAMLRefused) as info:
            read(text, strictyaml._Loader)
        assert (info.value.line, info.value.message) == (refused.line, refused.message)
        return
    except yaml.YAMLError:  # a fixture with a syntax error (the two word it differently)
        with pytest.raises(yaml.YAMLError):
            read(text, strictyaml._Loader)
        return
    assert fast == read(text, strictyaml._Loader)


@needs_libyaml
@pytest.mark.parametrize("text, line, message", [
    ("a: !!python/object:os.system x\n", 1, "YAML tags are not allowed"),
    ("- !custom x\n", 1, "YAML tags are not allowed"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", 1, "nested deeper than 64 levels"),
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
    ("a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e]\n",
     None, "aliases expand to too much data"),
])  # fmt: skip
def test_both_parsers_refuse_alike(text: str, line: int | None, message: str) -> None:
    for loader in (strictyaml._LOADER, strictyaml._Loader):
        with pytest.raises(YAMLRefused) as info:
            read(text, loader)
        assert message in info.value.message and (line is None or info.value.line == line)


def test_compose_uses_libyaml_when_pyyaml_has_it() -> None:
    assert (strictyaml._LOADER is not strictyaml._Loader) is bool(yaml.__with_libyaml__)
    assert to_plain(compose("a: [1, {b: c}]\n"), {}) == {"a": [1, {"b": "c"}]}
