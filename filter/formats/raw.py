"""Raw fallback: bodies of unknown APIs or shapes are scanned whole, never skipped."""

from __future__ import annotations

import codecs

from filter.formats.derive import form_decoded
from filter.formats.walk import JSON, Walker, as_int, as_str
from filter.model import TextSegment


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            try:
                return codecs.lookup(charset).name
            except LookupError:
                break
    return "utf-8"


def text_segments(body: bytes, content_type: str) -> tuple[TextSegment, ...]:
    """A non-JSON body: one segment `body` (declared charset, else UTF-8, bad bytes replaced).

    Form-encoded bodies are also scanned URL-decoded (`body#urldecoded`), so %-escapes hide nothing.
    """
    text = body.decode(_charset(content_type), "replace")
    segments = [TextSegment("body", text)]
    if "x-www-form-urlencoded" in content_type.lower():
        decoded = form_decoded(segments[0])
        if decoded is not None:
            segments.append(decoded)
    return tuple(segments)


def walk_json(doc: JSON, w: Walker) -> None:
    """Valid JSON of unknown shape: every string value and every key, located from `$`."""
    if isinstance(doc, dict):
        w.model = w.model or as_str(doc.get("model"))
        w.stream = w.stream or doc.get("stream") is True
        if w.max_output_tokens is None:
            w.max_output_tokens = as_int(doc.get("max_tokens"))
    w.raw = True
    w.value("$", doc)
