"""Per-segment scan results kept across requests: agents resend the whole conversation every turn.

A unit is one segment of at least MIN_CHARS characters, or a run of consecutive shorter ones (tool call ids,
names, short messages: one lookup for the run instead of one per segment). A unit's findings depend only on its
texts, on the bytes the joined scan buffer puts right around it (whether
it comes first, and the separator plus the next segment's first byte after it: a match may end inside the
separator, and `$` / `\\b` there read the next byte) and on the rule set. The cache lives in one `Ruleset`, so a
reload (new rules, new known fingerprints, new fingerprint key) starts empty and never reuses old findings.

Stored: hashes as keys and finding tuples (rule index, offsets, keyed fingerprint, severity): never text.
Bounded by entries and by an estimate of the bytes they hold, least recently used out first; one lock (Checks
run on a thread pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from filter.model import Severity
from filter.textcache import BoundedLRU, texts_hash

# Shorter segments are looked up in runs: a key costs ~1 µs, about what scanning 512 characters costs.
MIN_CHARS = 512
MAX_ENTRIES = 50_000
MAX_BYTES = 32 * 1024 * 1024
_ENTRY_BYTES = 280  # key tuple, dict slot, value tuples (tracemalloc, rounded up)
_FINDING_BYTES = 230  # one finding and its fingerprint string


@dataclass(frozen=True, slots=True)
class RelativeFinding:
    """A finding of one segment, at offsets inside that segment's text; where the segment sits is added on use."""

    rule: int  # index into Ruleset.rules
    start: int
    end: int
    fingerprint: str
    severity: Severity


SegmentKey = tuple[int, int, int, bool, bytes]  # hash, characters, segments, first in the buffer, tail
SegmentFindings = tuple[RelativeFinding, ...]
UnitFindings = tuple[SegmentFindings, ...]  # per segment of the unit


def _size(unit: UnitFindings) -> int:
    return _ENTRY_BYTES + 16 * len(unit) + _FINDING_BYTES * sum(map(len, unit))


class SegmentCache(BoundedLRU[SegmentKey, UnitFindings]):
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES, min_chars: int = MIN_CHARS) -> None:
        super().__init__(max_entries, max_bytes, _size)
        self.min_chars = min_chars

    def key(self, texts: Sequence[str], first: bool, tail: bytes) -> SegmentKey:
        """The key of consecutive texts scanned at the start of the buffer or not, followed by `tail`."""
        return (*texts_hash(texts), len(texts), first, tail)
