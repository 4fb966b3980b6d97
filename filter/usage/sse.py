"""Incremental server-sent events decoder (bytes in, events out) with bounded memory.

Lines end in LF, CRLF or CR (the CR of a CRLF may end one chunk and its LF start the next). Works on bytes:
a line ending is never inside a UTF-8 sequence, so a character split across chunks is joined before decoding.
"""

from __future__ import annotations

import re
from collections.abc import Callable

OnEvent = Callable[[str, bytes], None]  # (event name or "", data)
_EOL = re.compile(rb"\r\n|\r|\n")


class SseDecoder:
    def __init__(self, on_event: OnEvent, on_dropped: Callable[[int], None], max_event_bytes: int) -> None:
        self._on_event = on_event
        self._on_dropped = on_dropped  # bytes of an event too large to keep
        self._max = max_event_bytes
        self._line = bytearray()  # the current incomplete line
        self._discarding = False  # the current line is over the limit: drop it up to its end
        self._discarding_data = False
        self._event = ""
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._event_dropped = False
        self._first = True
        self._after_cr = False

    @property
    def buffered(self) -> int:
        return len(self._line) + self._data_bytes

    def feed(self, chunk: bytes) -> None:
        if self._first and chunk:
            self._first = False
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        pos = 0
        n = len(chunk)
        if self._after_cr and n:
            self._after_cr = False
            if chunk[0] == 0x0A:
                pos = 1  # the LF of a CRLF split across chunks
        while pos < n:
            m = _EOL.search(chunk, pos)
            if m is None:
                self._append(chunk[pos:])
                return
            self._append(chunk[pos : m.start()])
            self._end_line()
            pos = m.end()
            if pos == n and m.group() == b"\r":
                self._after_cr = True

    def finish(self) -> None:
        """End of body: a last line or event without its terminating blank line still counts."""
        if self._line or self._discarding:
            self._end_line()
        self._dispatch()

    def _append(self, piece: bytes) -> None:
        if self._discarding:
            self._on_dropped(len(piece))
            return
        if len(self._line) + len(piece) > self._max:
            self._on_dropped(len(self._line) + len(piece))
            # Only a data line too long to keep spoils its event; a long comment or unknown field does not.
            self._discarding_data = (self._line + piece[:5]).startswith(b"data")
            self._line.clear()
            self._discarding = True
            return
        self._line += piece

    def _end_line(self) -> None:
        if self._discarding:
            self._discarding = False
            self._event_dropped = self._event_dropped or self._discarding_data
            return
        line = bytes(self._line)
        self._line.clear()
        if not line:
            self._dispatch()
            return
        if line.startswith(b":"):
            return  # comment / keep-alive
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            if self._data_bytes + len(value) > self._max:
                self._on_dropped(self._data_bytes + len(value))
                self._data.clear()
                self._data_bytes = 0
                self._event_dropped = True
                return
            self._data.append(value)
            self._data_bytes += len(value) + 1
        elif name == b"event":
            self._event = value.decode("utf-8", "replace").strip()

    def _dispatch(self) -> None:
        event, data, dropped = self._event, self._data, self._event_dropped
        self._event, self._data, self._data_bytes, self._event_dropped = "", [], 0, False
        if data and not dropped:
            self._on_event(event, b"\n".join(data))
