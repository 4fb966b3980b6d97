"""Builders shared by the format tests."""

from __future__ import annotations

import json
from typing import Any

from filter.formats import DecodeLimits, parse
from filter.model import Envelope, ParsedRequest


def envelope(
    path: str, body: bytes | str | Any, headers: dict[str, str] | None = None, method: str = "POST"
) -> Envelope:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return Envelope(method, path, {"content-type": "application/json", **(headers or {})}, body)


def parsed(
    path: str, body: Any, headers: dict[str, str] | None = None, limits: DecodeLimits | None = None
) -> ParsedRequest:
    return parse(envelope(path, body, headers), limits or DecodeLimits())


def segments(result: ParsedRequest) -> dict[str, str]:
    """location -> text; locations are unique within one request."""
    out: dict[str, str] = {}
    for seg in result.segments:
        assert seg.location not in out, f"duplicate location {seg.location}"
        out[seg.location] = seg.text
    return out


def all_text(result: ParsedRequest) -> str:
    return "\n".join(seg.text for seg in result.segments)
