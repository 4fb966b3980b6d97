"""Derived texts: what the provider or the model reads once encodings and invisible characters are undone.

Each derived segment is a copy of request text with an `Origin` mapping its characters back, so the engine
reports findings at the original segment's location with offsets into the original text (covering the
encoded run), and masking the original by finding spans hides the value:

  <loc>#urldecoded  percent-escapes undone in URL-like runs (`?token=ghp%5F…`, `p%40ss@db`)
  <loc>$#decoded    `\\uXXXX` and `\\/` escapes undone in JSON text inside a string (tool arguments), and
                    `\\uXXXX` escapes in any other text holding escaped ASCII (text bodies, logs, JSON Lines)
  <loc>#normalized  Unicode format characters (category Cf: zero-width, BOM, soft hyphen, bidi controls)
                    removed, tag characters read as the ASCII they stand for, compatibility forms folded
                    (NFKC: `ＡＫＩＡ…` -> `AKIA…`)
  <loc>#base64      runs of at least BASE64_MIN_RUN base64 characters that decode to text (beginning in ASCII)
  <loc>#tooloutput  agent tool output as shown: line numbers, grep prefixes, diff markers, terminal codes and
                    notebook JSON around lines removed (toolout.py)
  <run>#joined      adjacent text blocks of one message (`messages[0].content#joined`): the provider reads
                    them as one text, so a value split across a block boundary is one finding, reported at
                    the first block with the rest in `Finding.also`

Copies are made only when a transform would change something: ASCII text is never normalised, and the
Cf and base64 checks are one Hyperscan pass over the text.

Out of scope, by design: a value deliberately split across turns, messages or fields (each is its own
text to the model); transforms stacked on each other (base64 of percent-encoded text, a zero-width spaced
key split across blocks); encodings other than these (hex, rot13, reversed text); text in images and audio.
"""

from __future__ import annotations

import binascii
import codecs
import re
import sys
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import itemgetter

import hyperscan

from filter import shortcuts
from filter.formats import toolout
from filter.formats.limits import check_work
from filter.model import Origin, Piece, TextSegment
from filter.textcache import BoundedLRU, text_hash, texts_hash

BASE64_MIN_RUN = 24  # characters: shorter runs are words and identifiers (18 bytes of text at least)
BASE64_MAX_RUN = 64 * 1024  # characters: a longer run is a file, not a pasted value (files have fields)
BASE64_MAX_RUNS = 4096  # runs decoded per request (identifiers and hashes are runs too)
BASE64_MAX_BYTES = 4 * 1024 * 1024  # bytes decoded per request, text or not
JOIN_WINDOW = 4 * 1024  # characters either side of a block boundary: a split token, or a PEM key up to ~8 KiB
NORMALIZE_WINDOW = 1024  # characters copied either side of a changed character (the rest is scanned as sent)

_SEP = "\n"  # between pieces of one derived text
_CUT = "\n\x00\n"  # where a long block's middle is left out: no pattern spans a NUL between newlines
_TAGS = range(0xE0020, 0xE007F)  # Unicode tag characters: invisible copies of printable ASCII

_CF_CHARS = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf")
_CF = re.compile("[" + re.escape(_CF_CHARS) + "]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_FORM_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+|\+")
_RUN_DELIMITERS = " \t\r\n\"'<>()[]{}`"
_MAX_RUN = 4096

# Two Hyperscan passes over every text, each cheaper than one with both sets (measured: Hyperscan's database for
# the union scans slower than the two apart). The first tells whether a text holds Cf characters (id 0), where
# base64 runs start (id 1), and whether it holds `\uXXXX` escapes of ASCII (id 2: code escapes accents and
# dashes, an evasion escapes letters); the second which tool-output stages it needs (toolout.py: the ids in
# _TOOL_IDS), with line-numbered output first gated (id 8) and then confirmed by toolout.TRIGGER_NUMBERED alone.
_CF_ID, _B64_ID, _JSON_ESCAPE_ID = 0, 1, 2
_NUMBERED_ID, _NUMBERED_GATE_ID = 5, 8
_TOOL_IDS = {3: toolout.ANSI, 4: toolout.LONE_CR, 5: toolout.NUMBERED, 6: toolout.DIFF, 7: toolout.NOTEBOOK}
_TOOL_TRIGGERS = {
    3: toolout.TRIGGER_ANSI, 4: toolout.TRIGGER_LONE_CR, 5: toolout.TRIGGER_NUMBERED, 6: toolout.TRIGGER_DIFF,
    7: toolout.TRIGGER_NOTEBOOK,
}  # fmt: skip
_TOOL_GATED = {**_TOOL_TRIGGERS, _NUMBERED_ID: toolout.NUMBERED_ONE_FILE, _NUMBERED_GATE_ID: toolout.NUMBERED_GATE}
_ONCE = hyperscan.HS_FLAG_SINGLEMATCH
_LINES = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_MULTILINE


def _database(patterns: dict[int, bytes], flags: dict[int, int]) -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=list(patterns.values()), ids=list(patterns), flags=[flags[i] for i in patterns])
    return db


def _compile() -> hyperscan.Database:
    cf = b"|".join(re.escape(c.encode("utf-8")) for c in _CF_CHARS)
    # A run start: BASE64_MIN_RUN characters whose every 4-character group begins in [A-Za-f], i.e. encodes
    # a byte below 0x80: base64 of text that begins in ASCII. Identifiers and hashes rarely pass this, so few
    # runs reach Python.
    b64 = rb"(?:^|[^A-Za-z0-9+/_-])(?:[A-Za-f][A-Za-z0-9+/_-]{3}){%d}" % (BASE64_MIN_RUN // 4)
    return _database({_CF_ID: cf, _B64_ID: b64, _JSON_ESCAPE_ID: rb"\\u00[2-7][0-9A-Fa-f]"},
                     {_CF_ID: _ONCE, _B64_ID: 0, _JSON_ESCAPE_ID: _ONCE})


_DB = _compile()
_TOOL_DB = _database(_TOOL_GATED, dict.fromkeys(_TOOL_GATED, _LINES))
_NUMBERED_DB = _database({_NUMBERED_ID: toolout.TRIGGER_NUMBERED}, {_NUMBERED_ID: _LINES})


@lru_cache(maxsize=1)
def _tool_plain_db() -> hyperscan.Database:
    """The plain path's trigger database (filter.shortcuts.plain): compiled on first use, not at every start."""
    return _database(_TOOL_TRIGGERS, dict.fromkeys(_TOOL_TRIGGERS, _LINES))


_LOCAL = threading.local()
_SMALL_BUFFER = 128


def _scratch(db: hyperscan.Database | None = None) -> hyperscan.Scratch:
    """This thread's scratch space for `db` (default: _DB); Hyperscan's scratch cannot be shared by threads."""
    db = db or _DB
    scratches: dict[int, hyperscan.Scratch] | None = getattr(_LOCAL, "scratches", None)
    if scratches is None:
        scratches = _LOCAL.scratches = {}
    scratch = scratches.get(id(db))
    if scratch is None:
        scratch = scratches[id(db)] = hyperscan.Scratch(db)
    return scratch


def padded(data: bytes) -> bytes:
    """`data` to scan with the databases here. Hyperscan (python-hyperscan 0.9) misses a two-byte literal that
    ends exactly at the end of a 16-99 byte buffer when the database also holds an anchored pattern; a trailing
    newline, which no pattern here matches or ends before, keeps every match and offset as it is."""
    return data + b"\n" if len(data) < _SMALL_BUFFER else data


def tool_triggers(data: bytes) -> set[int]:
    """Ids (_TOOL_IDS) of the tool-output stages whose trigger `data` holds."""
    ids: set[int] = set()
    data = padded(data)

    def on_match(rule: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
        ids.add(rule)

    if not shortcuts.enabled():
        plain_db = _tool_plain_db()
        plain_db.scan(data, match_event_handler=on_match, scratch=_scratch(plain_db))
        return ids
    _TOOL_DB.scan(data, match_event_handler=on_match, scratch=_scratch(_TOOL_DB))
    if _NUMBERED_GATE_ID in ids:
        ids.discard(_NUMBERED_GATE_ID)
        if _NUMBERED_ID not in ids:
            _NUMBERED_DB.scan(data, match_event_handler=on_match, scratch=_scratch(_NUMBERED_DB))
    return ids


@dataclass
class _Budget:
    """What is left of one request's base64 decoding bounds."""

    runs: int
    bytes: int


class _Builder:
    """Builds a derived text and its piecewise-linear map to original offsets."""

    __slots__ = ("parts", "marks", "size", "next_original", "changed")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.marks: list[tuple[int, int]] = []
        self.size = 0
        self.next_original = -1  # original offset the next derived character would map to if nothing changed
        self.changed = False

    def copy(self, text: str, start: int, end: int) -> None:
        """text[start:end] unchanged."""
        if end <= start:
            return
        if self.next_original != start:
            self.marks.append((self.size, start))
        self.parts.append(text[start:end])
        self.size += end - start
        self.next_original = end

    def replace(self, new: str, original: int) -> None:
        """`new` stands for the original characters starting at `original` (up to the next copy)."""
        self.changed = True
        for ch in new:
            if self.next_original != original:
                self.marks.append((self.size, original))
            self.parts.append(ch)
            self.size += 1
            self.next_original = original + 1

    def piece(self, location: str, at: int, start: int, end: int) -> Piece:
        return Piece(at, self.size, location, start, end, tuple(self.marks) or ((0, start),))

    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class _Derived:
    """Pieces of one derived segment, collected in order."""

    location: str
    decoded: str
    parts: list[str] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    size: int = 0

    def add(self, text: str, piece_of: _Builder | None, location: str, start: int, end: int) -> None:
        """Append `text` (from original [start, end) of `location`); a _Builder maps it exactly."""
        if self.parts:
            self.parts.append(_SEP)
            self.size += len(_SEP)
        if piece_of is not None:
            self.pieces.append(piece_of.piece(location, self.size, start, end))
        else:
            self.pieces.append(Piece(self.size, len(text), location, start, end))
        self.parts.append(text)
        self.size += len(text)

    def segment(self) -> TextSegment | None:
        if not self.pieces:
            return None
        origin = Origin(tuple(self.pieces))
        return TextSegment(self.location, "".join(self.parts), self.decoded, origin)


def b64decode(data: str) -> bytes | None:
    """Lenient base64 (standard or URL-safe, padding optional, whitespace ignored); None if not base64."""
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    for candidate in (data, data + "=="):
        try:
            return binascii.a2b_base64(candidate)
        except ValueError:
            continue
    return None


# -- percent-encoding --------------------------------------------------------------------------------------
def _percent_decode(text: str, start: int, end: int, *, plus: bool = False) -> _Builder:
    """text[start:end] percent-decoded (UTF-8, bad bytes as U+FFFD; `plus`: '+' is a space), mapped exactly."""
    b = _Builder()
    pos = start
    for m in (_FORM_RUN if plus else _PERCENT_RUN).finditer(text, start, end):
        b.copy(text, pos, m.start())
        pos = m.end()
        if m.group() == "+":
            b.replace(" ", m.start())
            continue
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        char_start = m.start()
        for i in range(m.start(), m.end(), 3):
            out = decoder.decode(bytes((int(text[i + 1 : i + 3], 16),)))
            if out:
                b.replace(out, char_start)
                char_start = i + 3
        tail = decoder.decode(b"", final=True)
        if tail:
            b.replace(tail, char_start)
    b.copy(text, pos, end)
    return b


def _run_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The URL-ish run (no spaces, quotes or brackets) containing text[start:end], at most _MAX_RUN each side."""
    lo = max(0, start - _MAX_RUN)
    left = max(text.rfind(d, lo, start) for d in _RUN_DELIMITERS) + 1
    hi = min(len(text), end + _MAX_RUN)
    rights = [i for d in _RUN_DELIMITERS if (i := text.find(d, end, hi)) != -1]
    return max(left, lo), min(rights, default=hi)


def percent_decoded(seg: TextSegment) -> TextSegment | None:
    """`<loc>#urldecoded`: the runs holding %XX escapes, decoded. Only the runs are copied, so a long file with
    one `%20` costs almost nothing; the escapes are found by a literal-led regex, the runs by find calls."""
    text = seg.text
    if "%" not in text:
        return None
    out = _Derived(seg.location + "#urldecoded", "percent")
    covered = -1
    for m in _PERCENT_ESCAPE.finditer(text):
        if m.start() < covered:
            continue
        left, right = _run_around(text, m.start(), m.end())
        covered = right
        b = _percent_decode(text, left, right)
        out.add(b.text(), b, seg.location, left, right)
    return out.segment()


def form_decoded(seg: TextSegment) -> TextSegment | None:
    """`<loc>#urldecoded` of a form-encoded body: the whole text, '+' read as a space."""
    if "%" not in seg.text and "+" not in seg.text:
        return None
    b = _percent_decode(seg.text, 0, len(seg.text), plus=True)
    if not b.changed:
        return None
    out = _Derived(seg.location + "#urldecoded", "percent")
    out.add(b.text(), b, seg.location, 0, len(seg.text))
    return out.segment()


# -- JSON escapes in JSON text inside a string ----------------------------------------------------------
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|[\s\S])")


def json_unescaped(seg: TextSegment) -> TextSegment | None:
    """`<loc>$#decoded`: `\\uXXXX` (pairs too) and `\\/` undone in place, so names stay next to their values
    (`"DD_API_KEY": "5401…"`) and escaped paths read as written (`~/.ssh/id_rsa`). Escapes that stand for
    quotes, backslashes or control characters stay: they are JSON syntax, not hidden text."""
    text = seg.text
    b = _Builder()
    pos = 0
    matches = list(_JSON_ESCAPE.finditer(text))
    skip = -1
    for k, m in enumerate(matches):
        if m.start() < skip:
            continue
        if m.group() == "\\/":
            b.copy(text, pos, m.start())
            b.replace("/", m.start())
            pos = m.end()
            continue
        hexa = m.group(1)
        if hexa is None:
            continue
        code = int(hexa, 16)
        end = m.end()
        if 0xD800 <= code < 0xDC00 and k + 1 < len(matches):
            nxt = matches[k + 1]
            low = int(nxt.group(1), 16) if nxt.group(1) and nxt.start() == m.end() else 0
            if 0xDC00 <= low < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                end = skip = nxt.end()
        if code < 0x20 or code in (0x22, 0x5C) or 0xD800 <= code < 0xE000:
            continue
        b.copy(text, pos, m.start())
        b.replace(chr(code), m.start())
        pos = end
    if not b.changed:
        return None
    b.copy(text, pos, len(text))
    out = _Derived(seg.location + "$#decoded", "json")
    out.add(b.text(), b, seg.location, 0, len(text))
    return out.segment()


# -- Unicode normalisation -------------------------------------------------------------------------------
@lru_cache(maxsize=8192)
def _fold(ch: str) -> str:
    """What the scanner reads for one non-ASCII character."""
    code = ord(ch)
    if code in _TAGS:
        return chr(code - 0xE0000)
    if unicodedata.category(ch) == "Cf":
        return ""
    return unicodedata.normalize("NFKC", ch)


def normalized(seg: TextSegment, has_cf: bool) -> TextSegment | None:
    """`<loc>#normalized`: Cf characters removed (tags read as ASCII) and compatibility forms folded, in
    windows of NORMALIZE_WINDOW characters around each change (a long file with one `…` costs little)."""
    text = seg.text
    if not has_cf and unicodedata.is_normalized("NFKC", text):
        return None
    changes: list[tuple[int, str]] = []
    for m in _NON_ASCII.finditer(text):
        run = m.group()
        if _CF.search(run) is None and unicodedata.is_normalized("NFKC", run):
            continue
        for k, ch in enumerate(run):
            new = _fold(ch)
            if new != ch:
                changes.append((m.start() + k, new))
    if not changes:
        return None
    out = _Derived(seg.location + "#normalized", "unicode")
    i = 0
    while i < len(changes):
        lo = max(0, changes[i][0] - NORMALIZE_WINDOW)
        hi = min(len(text), changes[i][0] + 1 + NORMALIZE_WINDOW)
        b = _Builder()
        pos = lo
        while i < len(changes) and changes[i][0] < hi:
            o, new = changes[i]
            b.copy(text, pos, o)
            b.replace(new, o)
            pos = o + 1
            hi = min(len(text), max(hi, o + 1 + NORMALIZE_WINDOW))
            i += 1
        b.copy(text, pos, hi)
        out.add(b.text(), b, seg.location, lo, hi)
    return out.segment()


# -- base64 runs ----------------------------------------------------------------------------------------
def _as_text(raw: bytes) -> str | None:
    """Decoded bytes that are text (UTF-8 without control characters other than tab and newlines)."""
    if len(raw) < BASE64_MIN_RUN * 3 // 4 or _CONTROL.search(raw) is not None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def base64_decoded(seg: TextSegment, data: bytes, starts: Sequence[int], budget: _Budget) -> TextSegment | None:
    """`<loc>#base64`: the base64 runs of a text (`data` its UTF-8, `starts` byte offsets where runs may start)
    that decode to text; each run is one opaque piece: a finding in it covers the whole run."""
    out = _Derived(seg.location + "#base64", "base64")
    ascii_text = len(data) == len(seg.text)
    last_end = -1
    for start in starts:
        if start < last_end:
            continue
        if budget.runs <= 0 or budget.bytes <= 0:
            break
        end = _run_end(data, start)
        last_end = end
        length = end - start
        if length > BASE64_MAX_RUN or len(data[start:end].rstrip(b"=")) % 4 == 1:
            continue
        budget.runs -= 1
        budget.bytes -= length * 3 // 4
        raw = b64decode(data[start:end].decode("ascii"))
        text = _as_text(raw) if raw is not None else None
        if text is None:
            continue
        if ascii_text:
            cs, ce = start, end
        else:
            cs = len(data[:start].decode("utf-8", "surrogatepass"))
            ce = cs + length
        out.add(text, None, seg.location, cs, ce)
    return out.segment()


def _run_end(data: bytes, start: int) -> int:
    """End of the base64 run starting at `start` (padding included)."""
    m = _B64_BYTES.match(data, start)
    return m.end() if m else start


_B64_BYTES = re.compile(rb"[A-Za-z0-9+/_-]*={0,2}")


# -- adjacent text blocks --------------------------------------------------------------------------------
def joined(location: str, blocks: Sequence[TextSegment]) -> TextSegment | None:
    """`<run>#joined`: consecutive text blocks as the provider reads them, one after the other; long blocks
    contribute only JOIN_WINDOW characters at each boundary. Only findings across a boundary are new."""
    if len(blocks) < 2:
        return None
    parts: list[str] = []
    pieces: list[Piece] = []
    size = 0
    last = len(blocks) - 1
    for i, seg in enumerate(blocks):
        n = len(seg.text)
        lo = 0 if i > 0 else max(0, n - JOIN_WINDOW)
        hi = n if i < last else min(n, JOIN_WINDOW)
        spans = [(lo, hi)] if hi - lo <= 2 * JOIN_WINDOW else [(lo, lo + JOIN_WINDOW), (hi - JOIN_WINDOW, hi)]
        for k, (a, z) in enumerate(spans):
            if k:
                parts.append(_CUT)
                size += len(_CUT)
            pieces.append(Piece(size, z - a, seg.location, a, z, ((0, a),)))
            parts.append(seg.text[a:z])
            size += z - a
    return TextSegment(location + "#joined", "".join(parts), "joined", Origin(tuple(pieces), across=True))


# -- all of them -------------------------------------------------------------------------------------------
def derived(segments: Sequence[TextSegment], runs: Sequence[tuple[str, Sequence[TextSegment]]] = ()) -> list[TextSegment]:
    """Derived copies of `segments` (those sent as is) and of the block runs `runs` ((location, blocks))."""
    out: list[TextSegment] = []
    budget = _Budget(BASE64_MAX_RUNS, BASE64_MAX_BYTES)
    scratch = _scratch()
    decoded_already = {s.origin.pieces[0].location for s in segments if s.origin and s.decoded == "percent"}
    unescaped_already = {s.origin.pieces[0].location for s in segments if s.origin and s.decoded == "json"}
    learnt: list[tuple[tuple[int, ...], _Seen]] = []

    def one(seg: TextSegment, key: tuple[int, ...] | None, seen: _Seen | None) -> bool:
        """Derive from one segment; True when it has nothing any request could derive from (see _INERT)."""
        if seg.origin is not None or not seg.text:
            return True
        text = seg.text
        if "%" in text and seg.location not in decoded_already:
            extra = percent_decoded(seg)
            if extra is not None:
                out.append(extra)
        data: bytes | None = None
        if seen is None:
            data = text.encode("utf-8", "surrogatepass")
            found: list[tuple[int, int]] = []

            def on_match(rule: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
                found.append((rule, to))

            _DB.scan(padded(data), match_event_handler=on_match, scratch=scratch)
            ids = {rule for rule, _ in found}
            tools = tuple(_TOOL_IDS[i] for i in sorted(tool_triggers(data)))
            has_cf, json_escape = _CF_ID in ids, _JSON_ESCAPE_ID in ids
            starts = tuple(sorted(to - BASE64_MIN_RUN for rule, to in found if rule == _B64_ID))
        else:
            has_cf, json_escape, tools, starts = seen.has_cf, seen.json_escape, seen.tools, seen.base64_starts
        if json_escape and seg.location not in unescaped_already:
            extra = json_unescaped(seg)  # `\u0067hp_…` in a text body, a log line, JSON Lines: as a reader sees it
            if extra is not None:
                out.append(extra)
        tool_copy: TextSegment | None = None
        if tools:
            if seen is not None and seen.tool_shape is not None:
                tool_copy = seen.tool_shape.segment(seg)
            elif seen is None or seen.tool_output:
                tool_copy = toolout.tool_output(seg, tools)
            if tool_copy is not None:
                out.append(tool_copy)
        ascii_text = text.isascii()
        unchanged = True  # no normalised copy
        if not ascii_text and (seen is None or not seen.normalized_unchanged):
            extra = normalized(seg, has_cf)
            if extra is not None:
                out.append(extra)
                unchanged = False
        spent: tuple[int, int] | None = None  # base64 budget a run of decodings that found no text took
        if starts:
            if seen is not None and (took := seen.base64_nothing) is not None and budget.runs > took[0] \
                    and budget.bytes > took[1]:
                budget.runs -= took[0]  # the same runs decoded to nothing again; the budget never ran short
                budget.bytes -= took[1]
            else:
                before = (budget.runs, budget.bytes)
                extra = base64_decoded(seg, data or text.encode("utf-8", "surrogatepass"), starts, budget)
                if extra is not None:
                    out.append(extra)
                elif budget.runs > 0 and budget.bytes > 0:  # not cut short by the budget: the same next time
                    spent = (before[0] - budget.runs, before[1] - budget.bytes)
        if key is not None and seen is None:
            learnt.append((key, _Seen(has_cf, json_escape, tools, starts, tool_copy is not None,
                                      _Shape.of(text, tool_copy) if tool_copy is not None else None,
                                      unchanged, spent)))
        return "%" not in text and not json_escape and not tools and ascii_text and not starts

    if not shortcuts.enabled():
        for n, seg in enumerate(segments):
            if n & 63 == 63:
                check_work("decoding text")  # the Check's deadline and CPU time (limits.py)
            one(seg, None, None)
    else:
        units = _units(segments)
        known = _SEEN.get_many([key for _, _, key in units])
        done = 0
        for (a, z, key), seen in zip(units, known, strict=True):
            if z - done >= 64:
                check_work("decoding text")
                done = z
            if z - a == 1 and len(key) == 2:  # one long text: what it triggers is kept for it
                one(segments[a], key, seen)
            # A run of short texts: kept only when none of them derives anything (a list: every one runs).
            elif seen is None and all([one(seg, None, None) for seg in segments[a:z]]):
                learnt.append((key, _INERT))
    if learnt:
        _SEEN.put_many(learnt)
    for location, blocks in runs:
        extra = joined(location, blocks)
        if extra is not None:
            out.append(extra)
    return out


# -- what derived() learnt about a text, kept across requests (filter.shortcuts) -----------------------------
# Agents resend the conversation every turn: a text's triggers and its tool-output copy's shape are the same as
# last time. Only offsets are kept (never text): the copy is rebuilt by slicing the text as sent again. Shorter
# texts (tool call ids, names, short messages) are looked up in runs: their Hyperscan passes cost ~5 µs in calls
# alone, a lookup under 1 µs.
SEEN_MIN_CHARS = 512
_SEP_CHAR = "\n"  # toolout's separator between the copies of one text


@dataclass(frozen=True, slots=True)
class _Shape:
    """A tool-output copy as offsets: its pieces without their location, the original spans each piece is made
    of, and the derived offsets holding a line break that stands for another character (a lone `\r`)."""

    pieces: tuple[tuple[int, int, int, int, tuple[tuple[int, int], ...]], ...]  # at, length, start, end, marks
    spans: tuple[Callable[[str], tuple[str, ...]], ...]  # per piece: its original spans, sliced in one C call
    line_breaks: tuple[int, ...]
    decoded: str
    suffix: str

    @classmethod
    def of(cls, text: str, copy: TextSegment) -> _Shape | None:
        """The shape of `copy`, a copy made from `text` alone; None when it cannot be rebuilt from offsets."""
        if copy.origin is None or any(not p.marks for p in copy.origin.pieces):
            return None
        spans = []
        for p in copy.origin.pieces:
            ends = [d for d, _ in p.marks[1:]] + [p.length]
            slices = [slice(o, o + e - d) for (d, o), e in zip(p.marks, ends, strict=True)]
            spans.append(itemgetter(*slices, slice(0, 0)))  # the empty slice: always a tuple back
        shape = cls(tuple((p.at, p.length, p.start, p.end, p.marks) for p in copy.origin.pieces), tuple(spans), (),
                    copy.decoded, copy.location[copy.location.rfind("#"):])
        rebuilt = shape._text(text)
        if len(rebuilt) != len(copy.text):
            return None
        breaks = tuple(i for i, (a, b) in enumerate(zip(rebuilt, copy.text, strict=True)) if a != b)
        if any(copy.text[i] != "\n" for i in breaks):
            return None
        return replace(shape, line_breaks=breaks)

    def _text(self, text: str) -> str:
        out = _SEP_CHAR.join(["".join(get(text)) for get in self.spans])
        for i in self.line_breaks:
            out = out[:i] + "\n" + out[i + 1 :]
        return out

    def segment(self, seg: TextSegment) -> TextSegment:
        pieces = tuple(Piece(at, length, seg.location, start, end, marks)
                       for at, length, start, end, marks in self.pieces)
        return TextSegment(seg.location + self.suffix, self._text(seg.text), self.decoded, Origin(pieces))


@dataclass(frozen=True, slots=True)
class _Seen:
    has_cf: bool
    json_escape: bool
    tools: tuple[str, ...]  # tool-output stages triggered
    base64_starts: tuple[int, ...]  # byte offsets where base64 runs may start
    tool_output: bool  # the stages made a copy
    tool_shape: _Shape | None  # that copy, as offsets (None: made again each time)
    normalized_unchanged: bool = False  # non-ASCII text that normalisation leaves as it is
    base64_nothing: tuple[int, int] | None = None  # the base64 runs decoded to no text, taking (runs, bytes)


def _seen_size(seen: _Seen) -> int:
    """Estimated bytes: the entry, its offsets, and per mark of a tool-output copy the mark and its slice."""
    shape = seen.tool_shape
    marks = sum(len(p[4]) for p in shape.pieces) + len(shape.line_breaks) if shape is not None else 0
    return 300 + 8 * len(seen.base64_starts) + 240 * marks  # measured with tracemalloc: ~230 per mark


_SEEN: BoundedLRU[tuple[int, ...], _Seen] = BoundedLRU(50_000, 32 * 1024 * 1024, _seen_size)
# A run of short texts none of which derives anything: no `%`, no `\\u00XX`, no tool output, no base64 run, ASCII
# only. Then nothing is derived from them whatever else the request holds (the other segments only decide
# whether percent and JSON escapes are undone again, and how much base64 budget is left).
_INERT = _Seen(False, False, (), (), False, None)


def _units(segments: Sequence[TextSegment]) -> list[tuple[int, int, tuple[int, ...]]]:
    """(first, end, key): each long text sent as is alone (keyed by its text), runs of the others together
    (keyed by their texts and count: a lookup per run, not per tool call id)."""
    units: list[tuple[int, int, tuple[int, ...]]] = []
    n, i = len(segments), 0
    while i < n:
        seg = segments[i]
        if seg.origin is None and len(seg.text) >= SEEN_MIN_CHARS:
            units.append((i, i + 1, text_hash(seg.text)))
            i += 1
            continue
        j = i + 1
        while j < n and (segments[j].origin is not None or len(segments[j].text) < SEEN_MIN_CHARS):
            j += 1
        units.append((i, j, (*texts_hash([s.text for s in segments[i:j]]), j - i)))
        i = j
    return units
