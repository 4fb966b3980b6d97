"""Incremental JSON splitter with bounded memory: whole responses and streamed JSON arrays.

Scans bytes for structure only (strings, brackets, commas) and keeps one depth-1 item at a time: a member of
a top-level object or an element of a top-level array. A top-level object is handed on as a dict of its
members (members larger than the limit are dropped: usage and model are small); each element of a top-level
array (Gemini's streamGenerateContent without alt=sse) is handed on as soon as it is complete. Several
top-level values in a row (JSON lines) work too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

OnValue = Callable[[Any, bool], None]  # (value, is an element of a top-level array)
_STRUCTURE = re.compile(rb'["{}\[\],]')
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)  # string content up to its closing quote
_WS = b" \t\r\n"
_MAX_MEMBERS = 256


class JsonSplitter:
    def __init__(self, on_value: OnValue, on_dropped: Callable[[int], None], max_item_bytes: int) -> None:
        self._on_value = on_value
        self._on_dropped = on_dropped  # bytes that were not parsed (too large or malformed)
        self._max = max_item_bytes
        self._depth = 0
        self._in_string = False
        self._escape = False  # a backslash ended the previous chunk inside a string
        self._top = 0  # b"{" or b"[" of the current top-level value
        self._item = bytearray()
        self._item_over = 0  # >0: the current item passed the limit; bytes seen so far
        self._members: dict[str, Any] = {}
        self._members_bytes = 0

    @property
    def buffered(self) -> int:
        return len(self._item) + self._members_bytes

    def feed(self, chunk: bytes) -> None:
        i = 0
        n = len(chunk)
        capture = 0  # start of the current item's bytes in this chunk
        if self._escape and n:
            self._escape = False
            i = 1
        while i < n:
            if self._in_string:
                body = _STRING_BODY.match(chunk, i)
                j = body.end() if body is not None else i
                if j >= n:
                    break
                if chunk[j] == 0x5C:  # a backslash as the chunk's last byte: the escaped byte comes next
                    self._escape = True
                    break
                self._in_string = False  # the closing quote
                i = j + 1
                continue
            m = _STRUCTURE.search(chunk, i)
            if m is None:
                if self._depth == 0:
                    self._stray(chunk[i:])
                break
            j = m.start()
            c = chunk[j]
            if self._depth == 0:
                self._stray(chunk[i:j])
            i = j + 1
            if c == 0x22:  # "
                self._in_string = True
            elif c in (0x7B, 0x5B):  # { [
                self._depth += 1
                if self._depth == 1:
                    self._top = c
                    self._members, self._members_bytes = {}, 0
                    capture = i
            elif c in (0x7D, 0x5D):  # } ]
                if self._depth == 0:
                    self._on_dropped(1)
                    continue
                if self._depth == 1:
                    self._end_item(chunk[capture:j])
                    if self._top == 0x7B:
                        self._on_value(self._members, False)
                        self._members, self._members_bytes = {}, 0
                self._depth -= 1
            elif c == 0x2C and self._depth == 1:  # ,
                self._end_item(chunk[capture:j])
                capture = i
        if self._depth >= 1:
            self._keep(chunk[capture:n])

    def finish(self) -> None:
        """End of body: an unfinished item is counted as unparsed; the members of an unfinished top-level
        object read so far are handed on."""
        if self._depth >= 1:
            self._on_dropped(self._item_over or len(self._item))
            self._item, self._item_over = bytearray(), 0
            if self._top == 0x7B and self._members:
                self._on_value(self._members, False)
            self._members, self._members_bytes = {}, 0
            self._depth = 0

    def _stray(self, piece: bytes) -> None:
        junk = len(piece.strip(_WS))
        if junk:
            self._on_dropped(junk)

    def _keep(self, piece: bytes) -> None:
        if self._item_over:
            self._item_over += len(piece)
        elif len(self._item) + len(piece) > self._max:
            self._item_over = len(self._item) + len(piece)
            self._item = bytearray()
        else:
            self._item += piece

    def _end_item(self, tail: bytes) -> None:
        self._keep(tail)
        item, over = bytes(self._item), self._item_over
        self._item, self._item_over = bytearray(), 0
        if over:
            self._on_dropped(over)
            return
        if not item.strip(_WS):
            return
        try:
            if self._top == 0x7B:
                if len(self._members) >= _MAX_MEMBERS or self._members_bytes + len(item) > 2 * self._max:
                    self._on_dropped(len(item))  # a top-level object of provider JSON has a few dozen members
                    return
                member = json.loads(b"{" + item + b"}")
                if isinstance(member, dict):
                    self._members.update(member)
                    self._members_bytes += len(item)
            else:
                self._on_value(json.loads(item), True)
        except ValueError:
            self._on_dropped(len(item))
