"""Agent tool output read as the text it shows: line prefixes, diff markers and terminal codes taken out.

Coding agents send back what their tools printed: a file read with line numbers (`     1→…` from a file-read
tool, `     1\\t…` from `cat -n` / `nl`), search results (`path:12:…`, `path-12-…` context lines, `12:…` from one
file), diffs and `git show` (`+`/`-`/` ` before every line of a hunk), terminal transcripts (ANSI colour codes,
`\\r\\n` line ends, `\\r` progress lines) and notebooks printed as JSON (`"source": ["line\\n", …]`). A secret of
several lines (a PEM key, a service-account JSON, a kubeconfig) is cut by those prefixes into pieces that no rule
matches. `tool_output` makes `<loc>#tooloutput`: the text with them removed, each kept stretch mapped back to the
original (Origin/Piece), so a key across forty numbered lines is one finding spanning its lines as sent.

Stages, each only when its trigger is present (derive.py finds the triggers in the Hyperscan pass it makes over
every text anyway, so text without any costs nothing here):
  terminal   ANSI escape sequences removed, `\\r` before `\\n` removed, a lone `\\r` read as a line break
  numbered   line-number prefixes removed, only on runs of consecutive numbers (a log line starting `10:30:`
             is not a numbered line unless line 11 follows)
  diff       two copies: the new side (context and `+` lines, markers removed) and the old side (context and
             `-` lines), when the text holds a unified-diff hunk header; a word diff's `{+added+}` and
             `[-removed-]` words go to their side the same way
  notebook   JSON source-line arrays: each `"…\\n",` line's string contents, one per line

Every stage only deletes characters or replaces one character by one, so the map to the original stays
piecewise linear (Piece marks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from filter.model import Origin, Piece, TextSegment

# Trigger patterns for derive.py's Hyperscan pass (bytes, multi-line): one id each.
TRIGGER_ANSI = rb"\x1b[\[\]]"
TRIGGER_LONE_CR = rb"\r[^\n]"
TRIGGER_NUMBERED = (
    rb"^[ \t]*[0-9]{1,7}(?:\xe2\x86\x92|\t)"  # `     1→` (file-read tools), `     1\t` (cat -n, nl)
    rb"|^[^\s:]*[A-Za-z./_][^\s:]*(?::[0-9]{1,7}:|-[0-9]{1,7}-)"  # grep -n / rg: `path:12:`, `path-12-`
    rb"|^[0-9]{1,7}[:-][^0-9\n][^\n]*\n[0-9]{1,7}[:-]"  # grep -n on one file: `12:…` then `13-…`
)
TRIGGER_DIFF = rb"^@@ -[0-9]+(?:,[0-9]+)? \+[0-9]+(?:,[0-9]+)? @@"
TRIGGER_NOTEBOOK = rb"\"(?:source|cell_type)\"[ \t]*:"
# Hyperscan follows TRIGGER_NUMBERED's `^[ \t]*` and `^[^\s:]*` through every line of ordinary code, which made it
# the costliest trigger. Its one-file alternative is cheap and kept exact; the other two are gated by what they
# must contain (a digit before `→` or a tab, `:12:` or `-12-`), and only a text holding a gate is scanned for
# TRIGGER_NUMBERED itself. A gate is implied by the trigger, so the outcome is the same.
NUMBERED_ONE_FILE = rb"^[0-9]{1,7}[:-][^0-9\n][^\n]*\n[0-9]{1,7}[:-]"
NUMBERED_GATE = rb"[0-9](?:\xe2\x86\x92|\t)|:[0-9]{1,7}:|-[0-9]{1,7}-"

ANSI, LONE_CR, NUMBERED, DIFF, NOTEBOOK = "ansi", "cr", "numbered", "diff", "notebook"

# CSI (`ESC [ … final`) and OSC (`ESC ] … BEL` or `ESC ] … ESC \\`) sequences; `\r` before `\n`; a lone `\r`.
_TERMINAL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\r(?=\n)|(?P<cr>\r)")
_NUMBER_PREFIX = re.compile(
    r"^(?:[ \t]*(?P<a>\d{1,7})(?:→|\t)"
    r"|[^\s:]*[A-Za-z./_][^\s:]*(?::(?P<b>\d{1,7}):|-(?P<c>\d{1,7})-)"
    r"|(?P<d>\d{1,7})[:-])",
    re.MULTILINE,
)
_NUMBERED_AGAIN = re.compile(r"^[ \t]*\d{1,7}(?:→|\t)|^[^\s:]*[A-Za-z./_][^\s:]*:\d{1,7}:", re.MULTILINE)
_DIFF = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
_DIFF_NEW = re.compile(r"^[+ ]|^-[^\n]*(?:\n|$)", re.MULTILINE)  # markers of kept lines; removed lines whole
_DIFF_OLD = re.compile(r"^[- ]|^\+[^\n]*(?:\n|$)", re.MULTILINE)
_DIFF_REMOVED = re.compile(r"^-(?!-- )", re.MULTILINE)
# `git diff --word-diff`: `[-removed-]` and `{+added+}` inside a line.
_WORD_REMOVED = re.compile(r"\[-((?:(?!-\])[^\n])*)-\]")
_WORD_ADDED = re.compile(r"\{\+((?:(?!\+\})[^\n])*)\+\}")
# A notebook source line as JSON prints it: indentation, `"`, the contents, an optional `\n` escape, `"`, `,`.
_NOTEBOOK_LINE = re.compile(r'^([ \t]*")((?:[^"\\\n]|\\[^n\n]|\\n(?!"))*)((?:\\n)?",?[ \t]*)$', re.MULTILINE)

_SEP = "\n"

# A view: the derived text as chunks, each (original offset of its first character, text); a chunk's characters
# map one to one onto the original from that offset.
_View = list[tuple[int, str]]
# An edit of a view's text: (start, end, replacement), replacement "" (a cut) or one character for one.
_Edit = tuple[int, int, str]


def _text(view: _View) -> str:
    return "".join(chunk for _, chunk in view)


def _apply(view: _View, edits: Iterable[_Edit]) -> _View:
    """`view` with `edits` (sorted, not overlapping, in the view text's offsets) made."""
    out: _View = []
    if len(view) == 1:  # the text as sent: offsets are the original's, no chunk walking
        base, text = view[0]
        pos = 0
        for start, end, new in edits:
            if start > pos:
                out.append((base + pos, text[pos:start]))
            if new:
                out.append((base + start, new))
            pos = end
        if pos < len(text):
            out.append((base + pos, text[pos:]))
        return out
    k = 0  # current chunk
    i = 0  # offset inside it
    at = 0  # view-text offset of view[k][1][i]

    def advance(upto: int, copy: bool) -> None:
        nonlocal k, i, at
        while at < upto and k < len(view):
            original, chunk = view[k]
            n = min(len(chunk) - i, upto - at)
            if copy:
                _put(out, original + i, chunk[i : i + n])
            i, at = i + n, at + n
            if i == len(chunk):
                k, i = k + 1, 0

    for start, end, new in edits:
        advance(start, True)
        if new and k < len(view):
            _put(out, view[k][0] + i, new)
        advance(end, False)
    advance(1 << 62, True)
    return out


def _put(out: _View, original: int, text: str) -> None:
    if text:
        out.append((original, text))


def _terminal_edits(text: str) -> list[_Edit]:
    return [(m.start(), m.end(), "\n" if m.group("cr") else "") for m in _TERMINAL.finditer(text)]


def _number_edits(text: str) -> list[_Edit]:
    """Line-number prefixes on runs of consecutive numbers (two lines at least)."""
    found: list[tuple[int, int, int]] = []  # (line start, prefix end, number)
    for m in _NUMBER_PREFIX.finditer(text):
        number = m.group("a") or m.group("b") or m.group("c") or m.group("d")
        found.append((m.start(), m.end(), int(number)))
    edits: list[_Edit] = []
    for i, (start, end, number) in enumerate(found):
        before = i > 0 and found[i - 1][2] == number - 1 and _next_line(text, found[i - 1][0]) == start
        after = (i + 1 < len(found) and found[i + 1][2] == number + 1
                 and _next_line(text, start) == found[i + 1][0])
        if before or after:
            edits.append((start, end, ""))
    return edits


def _word_edits(text: str, keep: re.Pattern[str], drop: re.Pattern[str]) -> list[_Edit]:
    """One side of a word diff: the other side's words cut whole, this side's markers cut around its words."""
    edits = [(m.start(), m.end(), "") for m in drop.finditer(text)]
    for m in keep.finditer(text):
        edits += [(m.start(), m.start(1), ""), (m.end(1), m.end(), "")]
    return sorted(edits)


def _merged(a: list[_Edit], b: list[_Edit]) -> list[_Edit]:
    """Both edit lists in order; an edit inside one already kept (a word marker on a cut line) goes."""
    out: list[_Edit] = []
    for edit in sorted(a + b):
        if out and edit[0] < out[-1][1]:
            continue
        out.append(edit)
    return out


def _next_line(text: str, start: int) -> int:
    return text.find("\n", start) + 1


def _notebook_edits(text: str) -> list[_Edit]:
    edits: list[_Edit] = []
    for m in _NOTEBOOK_LINE.finditer(text):
        edits.append((m.start(1), m.end(1), ""))
        edits.append((m.start(3), m.end(3), ""))
    return edits


def _builder_marks(view: _View) -> tuple[tuple[int, int], ...]:
    marks: list[tuple[int, int]] = []
    size = 0
    expected = -1
    for original, chunk in view:
        if original != expected:
            marks.append((size, original))
        size += len(chunk)
        expected = original + len(chunk)
    return tuple(marks)


def tool_output(seg: TextSegment, triggers: Sequence[str]) -> TextSegment | None:
    """`<loc>#tooloutput`: `seg` as the tool printed it for a reader (see the module doc), or None when nothing
    changes. `triggers` name the stages whose trigger derive.py found in the text."""
    text = seg.text
    view: _View = [(0, text)]
    if ANSI in triggers or LONE_CR in triggers:
        view = _apply(view, _terminal_edits(text))
    current = text if view == [(0, text)] else _text(view)
    numbered = NUMBERED in triggers or (current is not text and _NUMBERED_AGAIN.search(current) is not None)
    if numbered:
        edits = _number_edits(current)
        if edits:
            view = _apply(view, edits)
            current = _text(view)
    views = [view]
    if DIFF in triggers or (current is not text and _DIFF.search(current) is not None):
        words = "{+" in current or "[-" in current
        new_edits = [(m.start(), m.end(), "") for m in _DIFF_NEW.finditer(current)]
        if words:
            new_edits = _merged(new_edits, _word_edits(current, keep=_WORD_ADDED, drop=_WORD_REMOVED))
        views = [_apply(view, new_edits)]
        if words or _DIFF_REMOVED.search(current) is not None:
            old_edits = [(m.start(), m.end(), "") for m in _DIFF_OLD.finditer(current)]
            if words:
                old_edits = _merged(old_edits, _word_edits(current, keep=_WORD_REMOVED, drop=_WORD_ADDED))
            views.append(_apply(view, old_edits))
    if NOTEBOOK in triggers:
        views = [_apply(v, _notebook_edits(_text(v))) for v in views]
    parts: list[str] = []
    pieces: list[Piece] = []
    size = 0
    for v in views:
        if v == [(0, text)] or not v:
            continue  # unchanged: the text as sent is scanned already
        derived = _text(v)
        if parts:
            parts.append(_SEP)
            size += len(_SEP)
        first, (last_at, last_chunk) = v[0][0], v[-1]
        pieces.append(Piece(size, len(derived), seg.location, first, last_at + len(last_chunk), _builder_marks(v)))
        parts.append(derived)
        size += len(derived)
    if not pieces:
        return None
    return TextSegment(seg.location + "#tooloutput", "".join(parts), "tool-output", Origin(tuple(pieces)))
