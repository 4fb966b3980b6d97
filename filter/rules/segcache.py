"""Per-segment scan results kept across requests: agents resend the whole conversation every turn.

A segment's findings depend only on its text, on the bytes the joined scan buffer puts right around it (whether
it comes first, and the separator plus the next segment's first byte after it: a match may end inside the
separator, and `$` / `\\b` there read the next byte) and on the rule set. The cache lives in one `Ruleset`, so a
reload (new rules, new known fingerprints, new fingerprint key) starts empty and never reuses old findings.

Stored: hashes as keys and finding tuples (rule index, offsets, keyed fingerprint, severity): never text.
Bounded by entries and by an estimate of the bytes they hold, least recently used out first; one lock (Checks
run on a thread pool).
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass

from filter.model import Severity

# Below this many characters a segment is scanned again rather than looked up: hashing, the key and the lock
# cost about what Hyperscan needs for that much text (tests/bench/conversation.py measures both).
MIN_CHARS = 512
MAX_ENTRIES = 50_000
MAX_BYTES = 32 * 1024 * 1024
_ENTRY_BYTES = 240  # key tuple, dict slot, value tuple (measured with sys.getsizeof, rounded up)
_FINDING_BYTES = 200  # one finding tuple and its fingerprint string

# Python's str hash is keyed SipHash with a per-process random key, so a colliding text cannot be crafted;
# with PYTHONHASHSEED fixed it could be, so keys are then keyed BLAKE2b of the text instead.
_RANDOM_HASH = bool(sys.flags.hash_randomization)


@dataclass(frozen=True, slots=True)
class RelativeFinding:
    """A finding of one segment, at offsets inside that segment's text; where the segment sits is added on use."""

    rule: int  # index into Ruleset.rules
    start: int
    end: int
    fingerprint: str
    severity: Severity


SegmentKey = tuple[int, int, bool, bytes]
SegmentFindings = tuple[RelativeFinding, ...]


class SegmentCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 min_chars: int = MIN_CHARS) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.min_chars = min_chars
        self._entries: OrderedDict[SegmentKey, SegmentFindings] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._salt = secrets.token_bytes(16)
        self.hits = 0
        self.misses = 0

    def key(self, text: str, first: bool, tail: bytes) -> SegmentKey:
        """The key of a text scanned at the start of the buffer or not, followed by `tail`."""
        if _RANDOM_HASH:
            # str caches its hash: the token counter's per-segment cache then hashes the same strings for free.
            return hash(text), len(text), first, tail
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._salt, digest_size=8).digest()
        return int.from_bytes(digest), len(text), first, tail

    def get(self, key: SegmentKey) -> SegmentFindings | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: SegmentKey, findings: SegmentFindings) -> None:
        size = _ENTRY_BYTES + _FINDING_BYTES * len(findings)
        if size > self.max_bytes // 16:
            return  # one segment full of findings (a CSV of addresses) would push out everything else
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _ENTRY_BYTES + _FINDING_BYTES * len(old)
            self._entries[key] = findings
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= _ENTRY_BYTES + _FINDING_BYTES * len(dropped)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
