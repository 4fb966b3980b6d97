"""AWS event-stream decoder (application/vnd.amazon.eventstream), incremental, CRC-checked, bounded.

A message: prelude (total length u32, headers length u32, CRC32 of those 8 bytes), headers, payload, CRC32 of
everything before it. All integers big-endian. Header: name length u8, name, value type u8, value.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable

log = logging.getLogger(__name__)

HeaderValue = bool | int | bytes | str
OnMessage = Callable[[dict[str, HeaderValue], bytes], None]
_PRELUDE = 12
_MIN_MESSAGE = 16  # prelude + message CRC


class EventStreamError(ValueError):
    pass


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    i = 0
    n = len(data)
    try:
        while i < n:
            name_len = data[i]
            name = data[i + 1 : i + 1 + name_len].decode("utf-8")
            i += 1 + name_len
            kind = data[i]
            i += 1
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind == 2:
                value = struct.unpack_from(">b", data, i)[0]
                i += 1
            elif kind == 3:
                value = struct.unpack_from(">h", data, i)[0]
                i += 2
            elif kind == 4:
                value = struct.unpack_from(">i", data, i)[0]
                i += 4
            elif kind in (5, 8):
                value = struct.unpack_from(">q", data, i)[0]
                i += 8
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, i)
                raw = data[i + 2 : i + 2 + length]
                if len(raw) != length:
                    raise EventStreamError("header value runs past the headers")
                value = raw.decode("utf-8") if kind == 7 else raw
                i += 2 + length
            elif kind == 9:
                value = data[i : i + 16]
                i += 16
            else:
                raise EventStreamError(f"unknown header value type {kind}")
            if i > n:
                raise EventStreamError("header runs past the headers")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise EventStreamError(f"malformed headers: {e}") from e
    return headers


class EventStreamDecoder:
    """Feeds whole, CRC-checked messages to `on_message`. A message whose CRC does not match is dropped (its
    length was vouched for by the prelude CRC, so the next message is still found); a prelude that does not
    check out leaves no way to find the next message, so the rest of the stream is dropped."""

    def __init__(self, on_message: OnMessage, on_dropped: Callable[[int], None], max_message_bytes: int) -> None:
        self._on_message = on_message
        self._on_dropped = on_dropped
        self._max = max_message_bytes
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized message still to pass over
        self._broken = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def broken(self) -> bool:
        return self._broken

    def finish(self) -> None:
        """End of body: a partial message is counted as unparsed."""
        if self._buf:
            self._on_dropped(len(self._buf))
            self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        if self._broken:
            self._on_dropped(len(chunk))
            return
        if self._skip:
            passed = min(self._skip, len(chunk))
            self._skip -= passed
            self._on_dropped(passed)
            chunk = chunk[passed:]
        self._buf += chunk
        buf = self._buf
        pos = 0  # messages are consumed by offset and the buffer is cut once: chunks may hold many messages
        try:
            while len(buf) - pos >= _PRELUDE:
                total, headers_len, prelude_crc = struct.unpack_from(">III", buf, pos)
                if (zlib.crc32(buf[pos : pos + 8]) != prelude_crc or total < _MIN_MESSAGE
                        or headers_len > total - _MIN_MESSAGE):
                    log.warning("event stream prelude does not check out; the rest of the stream is not read")
                    self._broken = True
                    self._on_dropped(len(buf) - pos)
                    pos = len(buf)
                    return
                if total > self._max:
                    passed = min(total, len(buf) - pos)
                    self._on_dropped(passed)
                    pos += passed
                    self._skip = total - passed
                    continue
                if len(buf) - pos < total:
                    return
                message = bytes(buf[pos : pos + total])
                pos += total
                self._message(message, headers_len)
        finally:
            del buf[:pos]

    def _message(self, message: bytes, headers_len: int) -> None:
        total = len(message)
        (message_crc,) = struct.unpack_from(">I", message, total - 4)
        if zlib.crc32(message[: total - 4]) != message_crc:
            log.warning("event stream message CRC mismatch; message dropped")
            self._on_dropped(total)
            return
        try:
            headers = parse_headers(message[_PRELUDE : _PRELUDE + headers_len])
        except EventStreamError as e:
            log.warning("event stream message dropped: %s", e)
            self._on_dropped(total)
            return
        self._on_message(headers, message[_PRELUDE + headers_len : total - 4])
