"""Output tokens counted from streamed text without keeping the text."""

from __future__ import annotations

from collections.abc import Callable

CountText = Callable[[str], int]
_BATCH_CHARS = 8192  # text is counted in batches cut at whitespace, so no token straddles a cut in practice
_BYTES_PER_TOKEN = 4  # without an encoding (or for bytes that could not be parsed): ~4 bytes per token


def bytes_estimate(n: int) -> int:
    return -(-n // _BYTES_PER_TOKEN)


class TextTokens:
    """Running token count of text fed piece by piece; keeps at most one batch of text."""

    def __init__(self, count_text: CountText | None) -> None:
        self._count_text = count_text
        self._pending: list[str] = []
        self._pending_chars = 0
        self._counted = 0
        self._unparsed_bytes = 0

    def add(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars >= _BATCH_CHARS:
            joined = "".join(self._pending)
            cut = max(joined.rfind(" ", 0, len(joined) - 1), joined.rfind("\n", 0, len(joined) - 1))
            if cut <= 0:
                cut = len(joined)
            self._counted += self._count(joined[:cut])
            rest = joined[cut:]
            self._pending = [rest] if rest else []
            self._pending_chars = len(rest)

    def add_unparsed(self, n_bytes: int) -> None:
        """Bytes of output that could not be parsed (too large, malformed): counted at ~4 bytes a token."""
        self._unparsed_bytes += max(0, n_bytes)

    @property
    def seen(self) -> bool:
        return bool(self._counted or self._pending_chars or self._unparsed_bytes)

    def tokens(self) -> int:
        pending = self._count("".join(self._pending)) if self._pending else 0
        return self._counted + pending + bytes_estimate(self._unparsed_bytes)

    @property
    def buffered_chars(self) -> int:
        return self._pending_chars

    def _count(self, text: str) -> int:
        if self._count_text is not None:
            try:
                return self._count_text(text)
            except Exception:  # a broken encoding must not lose the estimate
                pass
        return bytes_estimate(len(text.encode("utf-8", "surrogatepass")))
