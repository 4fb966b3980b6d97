"""Redactor: one per request, built from the scanned segments and their findings; masks every string written out.

The audit line, the deny body, dynamic metadata and metric labels carry client text (path, model, identity
values, locations that spell JSON keys, the prompt under LOG_PROMPTS=full). Any of it may hold a value a rule
found, sometimes only in a decoded form (a percent-encoded path, a key spelled as an object key). Masking by
finding span covers the segment itself; masking by value covers every other string that repeats it, raw or
percent-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import regex

from filter.model import Finding, Identity, TextSegment

MASK = "[REDACTED]"
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_MAX_DECODE_ROUNDS = 3  # %2541 -> %41 -> A: clients double-encode; three rounds cover what they do


def _decodings(text: str) -> Iterator[tuple[str, list[int], list[int]]]:
    """Each round of decoding ASCII %XX escapes in `text` (a double-encoded value shows after the first round,
    a single-encoded one after the last): the decoded text and, per decoded character, its span in `text`."""
    starts, ends = list(range(len(text))), list(range(1, len(text) + 1))
    for _ in range(_MAX_DECODE_ROUNDS):
        if not _PERCENT.search(text):
            return
        out: list[str] = []
        new_starts: list[int] = []
        new_ends: list[int] = []
        i = 0
        while i < len(text):
            m = _PERCENT.match(text, i) if text[i] == "%" else None
            if m and int(m.group(1), 16) < 0x80:  # credentials are ASCII; multi-byte escapes stay as they are
                out.append(chr(int(m.group(1), 16)))
                new_starts.append(starts[i])
                new_ends.append(ends[i + 2])
                i += 3
            else:
                out.append(text[i])
                new_starts.append(starts[i])
                new_ends.append(ends[i])
                i += 1
        decoded = "".join(out)
        if decoded == text:
            return
        text, starts, ends = decoded, new_starts, new_ends
        yield text, starts, ends


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _cut(text: str, spans: Iterable[tuple[int, int]], mask: str = MASK) -> str:
    out, pos = [], 0
    for start, end in _merge(spans):
        out.append(text[pos:start])
        out.append(mask)
        pos = end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Redactor:
    values: frozenset[str] = frozenset()  # every matched span's text, as it stood in its segment

    def __post_init__(self) -> None:
        if self.values and self._pattern is None:
            alternatives = "|".join(regex.escape(v) for v in sorted(self.values, key=len, reverse=True))
            object.__setattr__(self, "_pattern", regex.compile(alternatives))
    spans: dict[str, tuple[tuple[int, int, str], ...]] = field(default_factory=dict)  # location -> (start, end, rule)
    # One alternation of all values, longest first, searched with overlapped matches: one pass per string finds
    # every value at every position (values may overlap), however many findings the request has.
    _pattern: regex.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, segments: Sequence[TextSegment], findings: Iterable[Finding]) -> Redactor:
        by_location: dict[str, list[TextSegment]] = {}
        for seg in segments:
            by_location.setdefault(seg.location, []).append(seg)
        values: set[str] = set()
        spans: dict[str, list[tuple[int, int, str]]] = {}
        for f in findings:
            for location, start, end in f.spans():  # a value split over joined text blocks has several
                spans.setdefault(location, []).append((start, end, f.rule_id))
                for seg in by_location.get(location, ()):
                    value = seg.text[start:end]
                    if value.strip():
                        values.add(value)
        return cls(frozenset(values), {loc: tuple(s) for loc, s in spans.items()})

    def __bool__(self) -> bool:
        return bool(self.values)

    def _hits(self, text: str) -> list[tuple[int, int]]:
        """Spans of `text` holding a found value, raw or percent-encoded."""
        if self._pattern is None:
            return []
        hits = [m.span() for m in self._pattern.finditer(text, overlapped=True)]
        if "%" in text:
            for decoded, starts, ends in _decodings(text):
                hits += [(starts[m.start()], ends[m.end() - 1])
                         for m in self._pattern.finditer(decoded, overlapped=True)]
        return hits

    def mask(self, text: str) -> str:
        """`text` with every found value masked, also where it appears only percent-encoded."""
        if not self.values or not text:
            return text
        hits = self._hits(text)
        return _cut(text, hits) if hits else text

    def mask_optional(self, text: str | None) -> str | None:
        return None if text is None else self.mask(text)

    def finding(self, f: Finding) -> Finding:
        """The finding with a location that spells no found value (a key used as a JSON object key)."""
        location = self.mask(f.location)
        return f if location == f.location else replace(f, location=location)

    def identity(self, identity: Identity) -> Identity:
        """Identity values as written out: a header-sourced value is client text and may hold a found value."""
        values = (identity.workspace, identity.team, identity.project, identity.agent)
        masked = tuple(self.mask_optional(v) for v in values)
        if masked == values:  # the usual case: nothing found in them
            return identity
        workspace, team, project, agent = masked
        return replace(identity, workspace=workspace, team=team, project=project, agent=agent)

    def path(self, path: str) -> str:
        """The request path as written out: no query string (it may carry a provider key), found values masked."""
        return self.mask(path.split("?", 1)[0])

    def prompt(self, segments: Sequence[TextSegment]) -> list[dict[str, str]]:
        """LOG_PROMPTS=full: each segment with its findings replaced by [REDACTED:rule-id] and any other copy of a
        found value (a repeat, an encoded copy) by [REDACTED]; overlapping spans merge, so no part is left."""
        out = []
        for seg in segments:
            text = seg.text
            rules = {(start, end): rule for start, end, rule in self.spans.get(seg.location, ())
                     if 0 <= start < end <= len(text)}
            merged = _merge([*rules, *self._hits(text)]) if self.values or rules else []
            parts, pos = [], 0
            for start, end in merged:
                rule = rules.get((start, end))
                parts += [text[pos:start], f"[REDACTED:{rule}]" if rule else MASK]
                pos = end
            parts.append(text[pos:])
            out.append({"location": self.mask(seg.location), "text": "".join(parts)})
        return out
