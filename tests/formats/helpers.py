"""Builders shared by the format tests."""

from __future__ import annotations

import functools
import random
from typing import Any

from filter.formats import DecodeLimits, parse
from filter.model import Decision, Envelope, ParsedRequest, is_road
from tests.support.envelopes import make_envelope


def envelope(
    path: str, body: bytes | str | Any, headers: dict[str, str] | None = None, method: str = "POST"
) -> Envelope:
    """make_envelope with the path first: the format tests are about paths."""
    return make_envelope(body, path, headers, method)


def parsed(
    path: str, body: Any, headers: dict[str, str] | None = None, limits: DecodeLimits | None = None
) -> ParsedRequest:
    return parse(envelope(path, body, headers), limits or DecodeLimits())


def segments(result: ParsedRequest, roads: bool = False) -> dict[str, str]:
    """location -> text of the body's segments (and the path, query and headers if `roads`); locations are
    unique within one request."""
    out: dict[str, str] = {}
    for seg in result.segments:
        assert seg.location not in out, f"duplicate location {seg.location}"
        if roads or not is_road(seg.location):
            out[seg.location] = seg.text
    return out


def all_text(result: ParsedRequest) -> str:
    return "\n".join(seg.text for seg in result.segments)


def pdf_with_text(*pages: str) -> bytes:
    """A minimal valid PDF (Helvetica, one text line per page), written by hand: no binary fixtures."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font = 3 + 2 * n
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({esc(text)}) Tj ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@functools.cache
def _pipeline() -> tuple[Any, Any]:
    from filter.runtime import Runtime
    from filter.settings import load_settings
    from filter.tokens import TokenCounter, load_encoding

    return Runtime(None, load_settings(None, env={})), TokenCounter(load_encoding())


def decide(path: str, body: Any, headers: dict[str, str] | None = None) -> Decision:
    """The filter's decision on one request with the shipped rule packs (filter.pipeline.evaluate)."""
    from filter.pipeline import evaluate

    runtime, counter = _pipeline()
    return evaluate(envelope(path, body, headers), runtime.current, counter).decision


def aws_key_id(seed: int = 7) -> str:
    """An AWS access key id the shipped secrets pack reports (aws-access-key-id), new for each seed."""
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
