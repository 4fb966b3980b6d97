"""Connect, gRPC and gRPC-web bodies of APIs whose protobuf schema is not published (Cursor, Codeium).

Without a schema no field can be told from another, so every text the provider could read is scanned:

- Framing, by content type: `application/grpc[-web][+proto|+json]` and `application/connect+proto|json`
  (streaming) are 5-byte envelopes (flags, big-endian length) each holding one message;
  `application/grpc-web-text` is the same in base64; any other type (unary Connect `application/proto`,
  `application/json`) is one message, the whole body. A truncated envelope is a 400.
- Compressed envelopes (flag 0x01) are decompressed with the coding the request names (`grpc-encoding`, or
  `connect-content-encoding` for Connect streams): gzip, deflate, br or zstd, under the same caps as a
  Content-Encoding. Any other coding is a 415, and a compressed envelope with no coding named a 400: a message
  that cannot be decoded is never forwarded.
- A JSON message (`+json`, `application/json`) is scanned string by string like any JSON of unknown shape.
- A protobuf message is walked by its wire format: each length-delimited field that is UTF-8 text is scanned
  (and JSON inside it expanded); one that parses as a message is walked in turn (both, when it is both);
  anything else (bytes, fields of a message that does not parse, the bytes between fields) is scanned as runs
  of at least 6 printable UTF-8 characters, so no readable text escapes because the parse guessed wrong.

Locations: `frames[i]` (framed) or `message` (unframed), then protobuf field numbers: `frames[0].2.1` is field 1
of the message in field 2; a field number that occurs more than once is indexed (`.2[3]`, its 4th occurrence).
Printable runs are `<location>@<byte offset>`; JSON continues after `$` (`frames[1]$.prompt`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from filter.errors import BodyTooLarge, MalformedRequest, UnsupportedEncoding
from filter.formats.encoding import CODINGS, decompress
from filter.formats.jsonload import load_json
from filter.formats.limits import DecodeLimits, charge_decoded, charge_nodes, too_many_nodes
from filter.formats.walk import Walker

MIN_RUN = 6  # shorter printable runs hold none of the credentials or PII the packs look for
_RUNS = re.compile(
    rb"(?:[\t\n\r\x20-\x7e]|[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}){%d,}" % MIN_RUN
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BASE64_CHUNK = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_MAX_DEPTH = 32  # nested messages walked; deeper ones are scanned as printable runs
_MAX_FIELD = (1 << 29) - 1
_MAX_SPECULATIVE_BYTES = 4096
_MAX_SPECULATIVE_FIELDS = 256
_COMPRESSED = 0x01


def decode(body: bytes, headers: Mapping[str, str], w: Walker) -> bool:
    """Walk one Connect / gRPC / gRPC-web request body into `w`; True when it is a stream of envelopes."""
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media.startswith("application/grpc-web-text"):
        body = _unbase64(body)
    framed = media.startswith(("application/grpc", "application/connect+"))
    is_json = media.endswith("json")
    if framed:
        coding_header = "connect-content-encoding" if media.startswith("application/connect+") else "grpc-encoding"
        coding = headers.get(coding_header, "").strip().lower()
        messages = _frames(body, coding, coding_header, w.limits)
    else:
        messages = [("message", body)]
    for loc, payload in messages:
        if is_json:
            if payload.strip():
                w.value(f"{loc}$", load_json(payload, w.limits))
        else:
            _payload(w, loc, payload, 0)
    return framed


def _unbase64(body: bytes) -> bytes:
    """gRPC-web-text: base64, possibly several padded chunks one after another (one per envelope)."""
    data = re.sub(rb"\s+", b"", body)
    out: list[bytes] = []
    for m in _BASE64_CHUNK.finditer(data):
        chunk = m.group()
        if not chunk:
            if m.start() < len(data):
                raise MalformedRequest(f"gRPC-web-text body is not base64 (byte {m.start()})")
            continue
        try:
            out.append(base64.b64decode(chunk, validate=True))
        except binascii.Error:
            raise MalformedRequest(f"gRPC-web-text body is not valid base64 (at byte {m.start()})") from None
    return b"".join(out)


def _frames(body: bytes, coding: str, coding_header: str, limits: DecodeLimits) -> list[tuple[str, bytes]]:
    """(location, message) of each envelope, decompressed; a truncated envelope is a 400."""
    out: list[tuple[str, bytes]] = []
    pos, n, expanded = 0, len(body), 0
    while pos < n:
        i = len(out)
        if n - pos < 5:
            raise MalformedRequest(f"gRPC/Connect envelope {i} is truncated ({n - pos} of 5 header bytes)")
        flags, length = body[pos], int.from_bytes(body[pos + 1 : pos + 5], "big")
        start, pos = pos + 5, pos + 5 + length
        if pos > n:
            raise MalformedRequest(f"gRPC/Connect envelope {i} is truncated ({n - start} of {length} bytes)")
        payload = body[start:pos]
        if flags & _COMPRESSED:
            payload = _inflate(payload, coding, coding_header, limits, i)
            expanded += len(payload)
            if expanded > limits.max_decompressed_bytes:
                raise BodyTooLarge(
                    f"decompressed gRPC/Connect messages exceed the limit of {limits.max_decompressed_bytes} bytes"
                )
        out.append((f"frames[{i}]", payload))
    if expanded:
        charge_decoded(n + expanded)
    return out


def _inflate(payload: bytes, coding: str, coding_header: str, limits: DecodeLimits, i: int) -> bytes:
    if coding in ("", "identity"):
        raise MalformedRequest(f"gRPC/Connect envelope {i} is compressed but the request names no {coding_header}")
    if coding not in CODINGS:
        shown = "".join(c if c.isprintable() else "?" for c in coding[:40])
        raise UnsupportedEncoding(
            f"unsupported {coding_header} {shown!r}: the gateway cannot read the message, so it is not sent; "
            f"supported: {', '.join(sorted(CODINGS))} (or none)"
        )
    return decompress(payload, coding, limits, f"{coding} (envelope {i})")


def _text(data: bytes) -> str | None:
    """The bytes as text when they are UTF-8 without control characters (tab and newlines allowed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); position -1 when the bytes end inside it or it is longer than 10 bytes."""
    value = shift = 0
    end = min(len(data), pos + 10)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return 0, -1


def _fields(data: bytes, limits: DecodeLimits, loc: str, *, speculative: bool = False) -> list[tuple[int, int, int]] | None:
    """(field number, start, end) of each length-delimited field; None when `data` is not a protobuf message.

    Every field counts as a node of the Check's work budget (limits.py), as JSON values do. `speculative`: text
    that might also be a message (small, see _payload): nothing is charged, and many fields mean it is not one
    (plain text such as `xxxx` reads as one-byte number fields)."""
    out: list[tuple[int, int, int]] = []
    pos, n, count = 0, len(data), 0
    while pos < n:
        count += 1
        if speculative and count > _MAX_SPECULATIVE_FIELDS:
            return None
        if count > limits.max_json_nodes:
            raise too_many_nodes(limits, f"protobuf message at {loc}")
        key, pos = _varint(data, pos)
        if pos < 0:
            return None
        number, wire = key >> 3, key & 7
        if not 0 < number <= _MAX_FIELD:
            return None
        if wire == 0:
            _, pos = _varint(data, pos)
            if pos < 0:
                return None
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos < 0 or length > n - pos:
                return None
            out.append((number, pos, pos + length))
            pos += length
        else:  # groups (3, 4) are long deprecated; 6 and 7 do not exist
            return None
        if pos > n:
            return None
    if not speculative:
        charge_nodes(count + 1, limits, f"protobuf message at {loc}")
    return out


def _payload(w: Walker, loc: str, data: bytes, depth: int) -> None:
    """One message or length-delimited field: text, a nested message, both, or printable runs."""
    if not data:
        return
    text = _text(data)
    if text is not None:
        w.json_text(loc, text)
        # Text that is also a message: its fields too, as a length byte read as text can run into a value. Only
        # small ones: a message holding a string of 128 bytes or more has a length byte that is not text.
        if len(data) <= _MAX_SPECULATIVE_BYTES and depth < _MAX_DEPTH:
            fields = _fields(data, w.limits, loc, speculative=True)
            if fields and any(end > start for _, start, end in fields):
                _message(w, loc, data, fields, depth)
        return
    fields = _fields(data, w.limits, loc) if depth < _MAX_DEPTH else None
    if fields is None:
        _runs(w, loc, data, 0, len(data))
    else:
        _message(w, loc, data, fields, depth)


def _message(w: Walker, loc: str, data: bytes, fields: list[tuple[int, int, int]], depth: int) -> None:
    counts: dict[int, int] = {}
    for number, _, _ in fields:
        counts[number] = counts.get(number, 0) + 1
    seen: dict[int, int] = {}
    gap = 0
    for number, start, end in fields:
        index = seen.get(number, 0)
        seen[number] = index + 1
        _runs(w, loc, data, gap, start)  # tags, lengths and numbers: printable only by accident
        _payload(w, f"{loc}.{number}[{index}]" if counts[number] > 1 else f"{loc}.{number}", data[start:end], depth + 1)
        gap = end
    _runs(w, loc, data, gap, len(data))


def _runs(w: Walker, loc: str, data: bytes, start: int, end: int) -> None:
    """Printable UTF-8 runs of at least MIN_RUN characters in data[start:end], each at `<loc>@<offset>`."""
    if end - start < MIN_RUN:
        return
    for m in _RUNS.finditer(data, start, end):
        w.text(f"{loc}@{m.start()}", m.group().decode("utf-8"))
