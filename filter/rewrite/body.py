"""Rewrite a request body: every redacted finding's span replaced by its placeholder, nothing else changed.

Findings are located as the scanner saw them (filter.formats: `messages[3].content[1].text`, `...arguments$.path`,
`#keys`, `body`), with offsets into the segment's decoded text. Each is resolved to the JSON string literal
(or number, or key) it came from, its decoded span mapped back to the raw escape sequences, and the placeholder
spliced into the raw literal: escapes around it stay as sent, the JSON stays valid, and bytes outside the spans
are untouched. Nested JSON text (tool-call `arguments`, tool results) is followed level by level: a placeholder
lands inside the inner string literal, so the inner JSON stays valid too; a number the scanner read as text
(a card number in a tool result) becomes a string holding the placeholder.

Spans found on decoded copies are already mapped back by the engine to the text as sent:
  - percent-encoding: the span covers exactly the escapes that encode the value (`ghp%5F...`); that is replaced,
    so the rest of a URL stays readable;
  - base64 runs inside text: the engine reports the whole run (it is opaque), and the whole run is replaced;
  - JSON `\\uXXXX` escapes inside JSON text: the span covers the escapes.
A base64 document (a text file attachment) is decoded, rewritten and re-encoded: the document stays a document.

What cannot be rewritten raises RewriteError and the caller denies: findings in the path, query or headers, in
PDF text, in keys of a non-JSON body, or anything whose location does not lead back to the text it was found in.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import regex

from filter.errors import RequestError
from filter.formats.encoding import content_codings, decode_body
from filter.formats.limits import DecodeLimits
from filter.model import Category, Envelope, Finding, ParsedRequest, TextSegment, is_road
from filter.rewrite import compress, jsontext
from filter.rewrite.errors import RewriteError
from filter.rewrite.jsontext import Arr, Atom, Node, Obj, Str
from filter.rewrite.placeholders import Placeholders, kind_of
from filter.rules.engine import Ruleset

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_STEP = re.compile(r"\.([A-Za-z_$@][A-Za-z0-9_\-]*)|\[(\d+)\]|\[#(\d+)\]|(\$)")
_DUPLICATE = re.compile(r"(.+)#(\d+)")
_DEFAULT_LIMITS = DecodeLimits()
_KIND_RANK = {Category.SECRET: 2, Category.FILE: 1, Category.PII: 0}
_LitFactory = Callable[["_Ctx", Str], "_Lit"]


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A rewritten body. `replaced` maps each placeholder to the text it stands for: keep it in memory only,
    never log it."""

    body: bytes  # encoded as `content_encoding` says; the caller sets Content-Length to len(body)
    content_encoding: str  # the request's codings again, or "" (identity: the caller drops Content-Encoding)
    replaced: Mapping[str, str]
    changed: bool

    def __repr__(self) -> str:  # the map holds the values: never print it
        return f"Rewrite(bytes={len(self.body)}, content_encoding={self.content_encoding!r}, placeholders={len(self.replaced)})"


def rewrite(
    envelope: Envelope,
    parsed: ParsedRequest,
    findings: Iterable[Finding],
    placeholders: Placeholders,
    *,
    rules: Ruleset | None = None,
    limits: DecodeLimits = _DEFAULT_LIMITS,
    recompress: bool = True,
) -> Rewrite:
    """The body with every finding's spans replaced by placeholders. `findings` must carry the locations the
    scanner reported (not masked for logs). `rules` narrows a finding to its rule's `secret` group, so context
    such as `api_key=` stays readable. `recompress=False` returns an identity body for a compressed request."""
    findings = tuple(findings)
    if not findings:
        return Rewrite(envelope.body, envelope.content_encoding, {}, False)
    for f in findings:
        for location, _, _ in f.spans():
            if is_road(location):
                raise RewriteError(f"a finding outside the body ({location.split('.', 1)[0]}) cannot be rewritten")
    try:
        codings = content_codings(envelope.content_encoding)
        body = decode_body(envelope, limits)
    except RequestError as e:
        raise RewriteError(f"body could not be decoded for rewriting: {e.message}") from None
    plan = _Plan(parsed.segments, placeholders, rules)
    if any(s.location == "body" and s.origin is None for s in parsed.segments):
        new_body = plan.text_body(body, envelope.headers.get("content-type", ""), findings)
    else:
        new_body = plan.json_body(body, findings)
    if recompress and codings:
        return Rewrite(compress.encode(new_body, codings, envelope.body), envelope.content_encoding, plan.replaced, True)
    return Rewrite(new_body, "", plan.replaced, True)


# -- requests: what to replace, per target ------------------------------------------------------------------
@dataclass(slots=True)
class _Span:
    start: int
    end: int
    kind: str
    rank: tuple[int, int, int]  # longer and secret-ier wins when spans merge


class _Ctx:
    """One JSON text: the body, or the decoded value of a string literal holding JSON text."""

    __slots__ = ("text", "tree", "parent")

    def __init__(self, text: str, tree: Node, parent: _Lit | None) -> None:
        self.text = text
        self.tree = tree
        self.parent = parent


class _Lit:
    """A string literal inside a JSON text."""

    __slots__ = ("ctx", "node", "_offsets", "_inner", "_inner_done")

    def __init__(self, ctx: _Ctx, node: Str) -> None:
        self.ctx = ctx
        self.node = node
        self._offsets: list[int] | None = None
        self._inner: _Ctx | None = None
        self._inner_done = False

    @property
    def value(self) -> str:
        return self.node.value

    def offsets(self) -> list[int]:
        if self._offsets is None:
            self._offsets = self.node.raw_offsets()
        return self._offsets

    def inner(self) -> _Ctx | None:
        """The JSON text the value holds (an object or array, or a JSON string), if it is JSON."""
        if not self._inner_done:
            self._inner_done = True
            head = self.value[:64].lstrip()
            if head and head[0] in '{["':
                try:
                    self._inner = _Ctx(self.value, jsontext.parse(self.value), self)
                except RewriteError:
                    self._inner = None
        return self._inner


class _Plan:
    def __init__(self, segments: Iterable[TextSegment], placeholders: Placeholders, rules: Ruleset | None) -> None:
        self.by_location: dict[str, list[TextSegment]] = {}
        for seg in segments:
            if seg.origin is None:
                self.by_location.setdefault(seg.location, []).append(seg)
        self.placeholders = placeholders
        self.rules = {r.id: r.pattern for r in rules.rules} if rules is not None else {}
        self.replaced: dict[str, str] = {}
        self._lits: dict[tuple[int, int], _Lit] = {}
        self._str_spans: dict[tuple[int, int], list[_Span]] = {}  # literal -> decoded spans to replace
        self._atoms: dict[tuple[int, int], tuple[_Ctx, Atom, _Span]] = {}
        self._docs: dict[tuple[int, int], tuple[_Lit, _Document, list[_Span]]] = {}
        self._edits: list[tuple[int, int, str]] = []  # raw edits of the root text

    # -- entry points ----------------------------------------------------------------------------------
    def json_body(self, body: bytes, findings: Iterable[Finding]) -> bytes:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RewriteError("body is not UTF-8 JSON") from None
        root = _Ctx(text, jsontext.parse(text), None)
        for f in findings:
            for location, start, end in f.spans():
                self._finding(root, f, location, start, end)
        self._resolve()
        out = _apply(text, self._edits)
        try:
            json.loads(out)
        except ValueError:
            raise RewriteError("rewritten body is not valid JSON") from None
        return out.encode("utf-8", "surrogatepass")

    def text_body(self, body: bytes, content_type: str, findings: Iterable[Finding]) -> bytes:
        charset = _charset(content_type)
        text = body.decode(charset, "replace")
        if text.encode(charset, "surrogatepass") != body:
            raise RewriteError(f"body is not clean {charset} text: it cannot be rewritten byte for byte")
        spans: list[_Span] = []
        for f in findings:
            for location, start, end in f.spans():
                if location != "body":
                    raise RewriteError("a finding in a text body has a location the body does not have")
                start, end = self._narrow(f, text, start, end)
                spans.append(_Span(start, end, kind_of(f.rule_id, f.category), _rank(f, start, end)))
        edits = [(s.start, s.end, self._placeholder(s.kind, text[s.start : s.end])) for s in _merge(spans)]
        return _apply(text, edits).encode(charset, "surrogatepass")

    # -- one finding span -------------------------------------------------------------------------------
    def _finding(self, root: _Ctx, f: Finding, location: str, start: int, end: int) -> None:
        suffix = ""
        if location.endswith(("#keys", "#raw")):
            location, _, suffix = location.rpartition("#")
        segments = self.by_location.get(location + (f"#{suffix}" if suffix else ""), [])
        if not segments or not 0 <= start < end:
            raise RewriteError("a finding's location has no text to rewrite")
        if suffix == "keys":
            self._keys(root, f, location, segments[0].text, start, end)
            return
        ctx, node = _resolve(root, location, self._lit)
        for seg in segments:
            if end > len(seg.text):
                continue
            if isinstance(node, Str):
                lit = self._lit(ctx, node)
                if seg.text in (lit.value, _scrub(lit.value)):
                    a, b = self._narrow(f, seg.text, start, end)
                    self._on_str(lit, a, b, f)
                    return
                if seg.decoded == "" and not suffix and self._document(lit, seg, f, start, end):
                    return
            elif isinstance(node, Atom) and seg.text == _int_text(node):
                self._on_atom(ctx, node, f)
                return
            elif isinstance(node, Obj | Arr) and seg.text == _dumps(node)[0]:
                a, b = self._narrow(f, seg.text, start, end)
                self._on_dumps(ctx, node, a, b, f)
                return
        raise RewriteError("a finding's text could not be traced back to the body (pdf text or an unknown form)")

    def _lit(self, ctx: _Ctx, node: Str) -> _Lit:
        key = (id(ctx), node.start)
        lit = self._lits.get(key)
        if lit is None:
            lit = self._lits[key] = _Lit(ctx, node)
        return lit

    def _narrow(self, f: Finding, text: str, start: int, end: int) -> tuple[int, int]:
        """The rule's `secret` group inside the span, when the rule re-matches the text as sent."""
        pattern = self.rules.get(f.rule_id)
        if pattern is None or "(?P<secret>" not in pattern:
            return start, end
        rx = _compiled(pattern)
        m = rx.fullmatch(text, start, end) or rx.search(text, start, end)
        if m is None or m.start("secret") < 0 or m.start("secret") == m.end("secret"):
            return start, end
        return m.start("secret"), m.end("secret")

    # -- targets ----------------------------------------------------------------------------------------
    def _on_str(self, lit: _Lit, a: int, b: int, f: Finding) -> None:
        """Decoded span [a, b) of a literal; JSON text inside it is followed to its own literals."""
        inner = lit.inner()
        if inner is None:
            key = (id(lit.ctx), lit.node.start)
            self._str_spans.setdefault(key, []).append(_Span(a, b, kind_of(f.rule_id, f.category), _rank(f, a, b)))
            return
        if not self._on_json(inner, inner.tree, a, b, f):
            raise RewriteError("a finding in JSON text covers no string or number that could hold it")

    def _on_json(self, ctx: _Ctx, node: Node, a: int, b: int, f: Finding) -> bool:
        """Raw span [a, b) of a JSON text: the parts of strings, keys and numbers it covers."""
        hit = False
        stack: list[Node] = [node]
        while stack:
            n = stack.pop()
            if n.end <= a or n.start >= b:
                continue
            if isinstance(n, Str):
                lit = self._lit(ctx, n)
                offs = lit.offsets()
                lo = _floor(offs, max(a, n.start) - n.start)
                hi = _ceil(offs, min(b, n.end) - n.start)
                if hi > lo:
                    self._on_str(lit, lo, hi, f)
                    hit = True
            elif isinstance(n, Atom):
                self._on_atom(ctx, n, f)
                hit = True
            elif isinstance(n, Obj):
                for k, v in n.members:
                    stack += (k, v)
            else:
                stack += n.items
        return hit

    def _on_atom(self, ctx: _Ctx, atom: Atom, f: Finding) -> None:
        if atom.raw in ("true", "false", "null"):
            raise RewriteError("a finding covers a JSON literal")
        key = (id(ctx), atom.start)
        span = _Span(0, len(atom.raw), kind_of(f.rule_id, f.category), _rank(f, 0, len(atom.raw)))
        seen = self._atoms.get(key)
        if seen is None or seen[2].rank < span.rank:
            self._atoms[key] = (ctx, atom, span)

    def _on_dumps(self, ctx: _Ctx, node: Obj | Arr, a: int, b: int, f: Finding) -> None:
        """[a, b) of `json.dumps(value, ensure_ascii=False)` (how tool inputs are scanned) onto the literals."""
        _, leaves = _dumps(node)
        hit = False
        for d_start, d_end, leaf, content in leaves:
            if d_end <= a or d_start >= b:
                continue
            if isinstance(leaf, Atom):
                self._on_atom(ctx, leaf, f)
                hit = True
                continue
            d_offs = Str(0, len(content), content).raw_offsets()
            lo = _floor(d_offs, max(a, d_start) - d_start)
            hi = _ceil(d_offs, min(b, d_end) - d_start)
            if hi > lo:
                self._on_str(self._lit(ctx, leaf), lo, hi, f)
                hit = True
        if not hit:
            raise RewriteError("a finding in a tool input covers no string or number that could hold it")

    def _keys(self, root: _Ctx, f: Finding, location: str, text: str, start: int, end: int) -> None:
        """`<object>#keys` (that object's notable keys) or `#keys` (short keys of the whole document, pooled)."""
        names: list[tuple[str, int, int]] = []  # key, span inside it
        pos = 0
        for line in text.split("\n"):
            lo, hi = max(start, pos), min(end, pos + len(line))
            if hi > lo:
                names.append((line, lo - pos, hi - pos))
            pos += len(line) + 1
        if not names:
            raise RewriteError("a finding in keys covers no key")
        if location:
            ctx, node = _resolve(root, location, self._lit)
            objects = [(ctx, node)] if isinstance(node, Obj) else []
        else:
            objects = list(_all_objects(root, self._lit))
        for name, lo, hi in names:
            found = False
            for ctx, obj in objects:
                for k, _ in obj.members:
                    if k.value == name:
                        self._lit(ctx, k)
                        self._str_spans.setdefault((id(ctx), k.start), []).append(
                            _Span(lo, hi, kind_of(f.rule_id, f.category), _rank(f, lo, hi)))
                        found = True
            if not found:
                raise RewriteError("a finding in a key could not be traced back to the body")

    def _document(self, lit: _Lit, seg: TextSegment, f: Finding, start: int, end: int) -> bool:
        """A base64 document (or data: URL) whose decoded text was scanned at the literal's location."""
        key = (id(lit.ctx), lit.node.start)
        seen = self._docs.get(key)
        doc = seen[1] if seen else _Document.read(lit.value, seg.text)
        if doc is None:
            return False
        a, b = self._narrow(f, seg.text, start, end)
        span = _Span(a, b, kind_of(f.rule_id, f.category), _rank(f, a, b))
        if seen:
            seen[2].append(span)
        else:
            self._docs[key] = (lit, doc, [span])
        return True

    # -- turning requests into raw edits of the body ----------------------------------------------------
    def _resolve(self) -> None:
        for key, spans in self._str_spans.items():
            lit = self._lits[key]
            for s in _merge(spans):
                self._lit_edit(lit, s.start, s.end, self._placeholder(s.kind, lit.value[s.start : s.end]))
        for ctx, atom, span in self._atoms.values():
            self._ctx_edit(ctx, atom.start, atom.end, '"' + self._placeholder(span.kind, atom.raw) + '"')
        for lit, doc, spans in self._docs.values():
            edits = [(s.start, s.end, self._placeholder(s.kind, doc.text[s.start : s.end])) for s in _merge(spans)]
            self._lit_edit(lit, 0, len(lit.value), doc.encode(_apply(doc.text, edits)))

    def _lit_edit(self, lit: _Lit, a: int, b: int, replacement: str) -> None:
        offs = lit.offsets()
        start = lit.node.start
        self._ctx_edit(lit.ctx, start + offs[a], start + offs[b], jsontext.escape(replacement))

    def _ctx_edit(self, ctx: _Ctx, start: int, end: int, replacement: str) -> None:
        if ctx.parent is None:
            self._edits.append((start, end, replacement))
        else:
            self._lit_edit(ctx.parent, start, end, replacement)

    def _placeholder(self, kind: str, value: str) -> str:
        placeholder = self.placeholders.make(kind, value)
        seen = self.replaced.setdefault(placeholder, value)
        if seen != value:
            raise RewriteError("two values got the same placeholder; the request cannot be rewritten safely")
        return placeholder


# -- locations -------------------------------------------------------------------------------------------
def _steps(location: str) -> list[tuple[str, str]] | None:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(location):
        m = _STEP.match(location, pos)
        if m is None:
            return None
        if m.group(1) is not None:
            out.append(("key", m.group(1)))
        elif m.group(2) is not None:
            out.append(("index", m.group(2)))
        elif m.group(3) is not None:
            out.append(("member", m.group(3)))
        else:
            out.append(("json", ""))
        pos = m.end()
    return out


def _resolve(root: _Ctx, location: str, lit_of: _LitFactory) -> tuple[_Ctx, Node]:
    """The node a scanner location names, and the JSON text it sits in."""
    tries: list[list[tuple[str, str]] | None] = []
    if location.startswith("$"):
        tries.append(_steps(location[1:]))
    if location:
        tries.append(_steps(location if location[0] in ".[" else "." + location))
    for steps in tries:
        if steps is None:
            continue
        found = _walk(root, steps, lit_of)
        if found is not None:
            return found
    raise RewriteError("a finding's location could not be found in the body")


def _walk(root: _Ctx, steps: list[tuple[str, str]], lit_of: _LitFactory) -> tuple[_Ctx, Node] | None:
    ctx, node = root, root.tree
    for step, arg in steps:
        nxt: Node | None = None
        if step == "key" and isinstance(node, Obj):
            nxt = _member(node, arg)
        elif step == "index" and isinstance(node, Arr) and int(arg) < len(node.items):
            nxt = node.items[int(arg)]
        elif step == "member" and isinstance(node, Obj) and int(arg) < len(node.members):
            nxt = node.members[int(arg)][1]
        elif step == "json" and isinstance(node, Str):
            inner = lit_of(ctx, node).inner()
            if inner is not None:
                ctx, nxt = inner, inner.tree
        if nxt is None:
            return None
        node = nxt
    return ctx, node


def _member(obj: Obj, name: str) -> Node | None:
    for k, v in obj.members:
        if k.value == name:
            return v
    m = _DUPLICATE.fullmatch(name)  # `key#2`: the second value of a repeated key (nested JSON keeps them all)
    if m:
        nth = int(m.group(2))
        matches = [v for k, v in obj.members if k.value == m.group(1)]
        if len(matches) >= nth:
            return matches[nth - 1]
    return None


def _all_objects(root: _Ctx, lit_of: _LitFactory) -> Iterable[tuple[_Ctx, Obj]]:
    """Every object of the body, and of JSON text inside its strings."""
    todo: list[tuple[_Ctx, Node]] = [(root, root.tree)]
    while todo:
        ctx, node = todo.pop()
        if isinstance(node, Obj):
            yield ctx, node
            todo += [(ctx, v) for _, v in node.members]
        elif isinstance(node, Arr):
            todo += [(ctx, v) for v in node.items]
        elif isinstance(node, Str) and node.raw[:1] in ("{", "["):
            inner = lit_of(ctx, node).inner()
            if inner is not None:
                todo.append((inner, inner.tree))


# -- documents -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Document:
    """A base64 document (optionally a data: URL) whose decoded text is what was scanned."""

    prefix: str  # `data:...;base64,` or ""
    text: str
    bom: bytes
    urlsafe: bool
    padded: bool

    @staticmethod
    def read(value: str, scanned: str) -> _Document | None:
        prefix, data = "", value
        if value.startswith("data:"):
            comma = value.find(",", 5, 512)
            if comma < 0 or "base64" not in value[5:comma].lower():
                return None
            prefix, data = value[: comma + 1], value[comma + 1 :]
        if not re.fullmatch(r"[A-Za-z0-9+/=_-]*", data):
            return None  # whitespace or stray characters: re-encoding could not keep the rest as sent
        urlsafe = "-" in data or "_" in data
        try:
            raw = base64.b64decode(data.replace("-", "+").replace("_", "/") + "==")
        except (binascii.Error, ValueError):
            return None
        bom = codecs.BOM_UTF8 if raw.startswith(codecs.BOM_UTF8) else b""
        try:
            text = raw[len(bom) :].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if text != scanned:
            return None
        return _Document(prefix, text, bom, urlsafe, data.endswith("="))

    def encode(self, text: str) -> str:
        data = base64.b64encode(self.bom + text.encode("utf-8")).decode("ascii")
        if self.urlsafe:
            data = data.replace("+", "-").replace("/", "_")
        if not self.padded:
            data = data.rstrip("=")
        return self.prefix + data


# -- helpers -----------------------------------------------------------------------------------------------
def _dumps(node: Node) -> tuple[str, list[tuple[int, int, Str | Atom, str]]]:
    """`json.dumps(value, ensure_ascii=False)` of a node, and where each key, string and number sits in it
    ((start, end) of a string's content or a number, the node, the dumped content)."""
    parts: list[str] = []
    leaves: list[tuple[int, int, Str | Atom, str]] = []
    size = 0

    def put(s: str) -> None:
        nonlocal size
        parts.append(s)
        size += len(s)

    def put_str(n: Str) -> None:
        content = json.dumps(n.value, ensure_ascii=False)[1:-1]
        put('"')
        leaves.append((size, size + len(content), n, content))
        put(content)
        put('"')

    todo: list[Node | str] = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, str):
            put(n)
        elif isinstance(n, Str):
            put_str(n)
        elif isinstance(n, Atom):
            dumped = json.dumps(json.loads(n.raw))
            leaves.append((size, size + len(dumped), n, dumped))
            put(dumped)
        elif isinstance(n, Obj):
            seq: list[Node | str] = ["{"]
            for i, (k, v) in enumerate(n.members):
                seq += ([", "] if i else []) + [k, ": ", v]
            seq.append("}")
            todo += reversed(seq)
        else:
            seq = ["["]
            for i, v in enumerate(n.items):
                seq += ([", "] if i else []) + [v]
            seq.append("]")
            todo += reversed(seq)
    return "".join(parts), leaves


def _int_text(atom: Atom) -> str | None:
    try:
        value = json.loads(atom.raw)
    except ValueError:
        return None
    return str(value) if type(value) is int else None


def _floor(offsets: list[int], raw: int) -> int:
    """Decoded index of the character whose escape contains raw offset `raw`."""
    lo, hi = 0, len(offsets) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= raw:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _ceil(offsets: list[int], raw: int) -> int:
    """Decoded index just past the character whose escape contains raw offset `raw - 1`."""
    lo, hi = 0, len(offsets) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if offsets[mid] >= raw:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _merge(spans: list[_Span]) -> list[_Span]:
    """Overlapping spans become one; its type is the strongest finding's (longest, secrets before PII)."""
    out: list[_Span] = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        if out and s.start < out[-1].end:
            last = out[-1]
            kind = s.kind if s.rank > last.rank else last.kind
            out[-1] = _Span(last.start, max(last.end, s.end), kind, max(last.rank, s.rank))
        else:
            out.append(_Span(s.start, s.end, s.kind, s.rank))
    return out


def _rank(f: Finding, start: int, end: int) -> tuple[int, int, int]:
    """Longer replaced text first, then secrets before files before PII, then the most specific rule (the
    shortest match as found: a token's own rule over an `Authorization:` context rule)."""
    return end - start, _KIND_RANK[f.category], f.start - f.end


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    edits = sorted(set(edits))
    out: list[str] = []
    pos = 0
    for start, end, replacement in edits:
        if start < pos:
            raise RewriteError("two findings' spans overlap in a way that cannot be rewritten")
        out += (text[pos:start], replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _scrub(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"').lower()).name
            except LookupError:
                break
    return "utf-8"


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern, regex.MULTILINE)
