"""Bounded, thread-safe LRU maps keyed by text content, for work that depends on a text alone.

Agents resend the whole conversation every turn, so most texts of a request were seen in the last one. What is
kept must never be the text (nor anything decoded from it): keys are hashes, values offsets and fingerprints.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Python's str hash is keyed SipHash with a per-process random key, so a text colliding with another cannot be
# crafted; with hash randomisation turned off it could be, so keys are then keyed BLAKE2b of the text instead.
_RANDOM_HASH = bool(sys.flags.hash_randomization)
_SALT = secrets.token_bytes(16)


def text_hash(text: str) -> tuple[int, int]:
    """(64-bit keyed hash, length) of `text`: unforgeable within this process."""
    if _RANDOM_HASH:
        return hash(text), len(text)  # str caches its hash: every later use of the same string is free
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=_SALT, digest_size=8).digest()
    return int.from_bytes(digest), len(text)


def texts_hash(texts: Sequence[str]) -> tuple[int, int]:
    """(64-bit keyed hash, total length) of a sequence of texts, where each one ends counting."""
    if _RANDOM_HASH:
        return hash(tuple(texts)), sum(map(len, texts))  # a tuple's hash combines its strings' keyed hashes
    h = hashlib.blake2b(key=_SALT, digest_size=8)
    for text in texts:
        h.update(len(text).to_bytes(8, "little"))
        h.update(text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest()), sum(map(len, texts))


class BoundedLRU(Generic[K, V]):
    """At most `max_entries` entries and `max_bytes` by `size` (an estimate of one entry's memory), least recently
    used out first; an entry larger than a sixteenth of the bytes is not kept."""

    def __init__(self, max_entries: int, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def get_many(self, keys: Sequence[K | None]) -> list[V | None]:
        """`get` of each key (None: not looked up), under one lock: a request has hundreds of segments."""
        out: list[V | None] = []
        entries = self._entries
        with self._lock:
            for key in keys:
                found = entries.get(key) if key is not None else None
                if found is not None and key is not None:
                    entries.move_to_end(key)
                out.append(found)
            hits = sum(v is not None for v in out)
            self.hits += hits
            self.misses += sum(k is not None for k in keys) - hits
        return out

    def put(self, key: K, value: V) -> None:
        self.put_many(((key, value),))

    def put_many(self, items: Iterable[tuple[K, V]]) -> None:
        sized = [(key, value, self._size(value)) for key, value in items]
        with self._lock:
            for key, value, size in sized:
                if size > self.max_bytes // 16:
                    continue  # one text full of findings (a CSV of addresses) would push out everything else
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= self._size(old)
                self._entries[key] = value
                self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= self._size(dropped)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
