"""Anthropic Messages (`/v1/messages`, and the InvokeModel body of `anthropic.*` models on Bedrock)."""

from __future__ import annotations

from collections.abc import Callable

from filter.formats.walk import JSON, Walker, as_int, as_str, field

_Handler = Callable[[Walker, str, dict[str, JSON], bool], None]
_TYPE = frozenset({"type"})


def decode(doc: dict[str, JSON], w: Walker) -> bool:
    """Walk a Messages body; False (raw fallback) when it has neither `messages` nor `system`."""
    if "messages" not in doc and "system" not in doc:
        return False
    w.model = as_str(doc.get("model"))
    w.max_output_tokens = as_int(doc.get("max_tokens"))
    w.stream = doc.get("stream") is True
    if "system" in doc:
        content(w, "system", doc["system"])
    messages = doc.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            _message(w, f"messages[{i}]", message)
    elif "messages" in doc:
        w.value("messages", messages)
    w.rest("", doc, frozenset({"system", "messages"}))
    return True


def _message(w: Walker, loc: str, message: JSON) -> None:
    if not isinstance(message, dict):
        w.value(loc, message)
        return
    if "content" in message:
        content(w, field(loc, "content"), message["content"])
    w.rest(loc, message, frozenset({"content"}))


def content(w: Walker, loc: str, value: JSON, tool: bool = False) -> None:
    """A string or a list of content blocks. `tool`: inside a tool result, so JSON text is expanded."""
    if isinstance(value, str):
        (w.json_text if tool else w.text)(loc, value)
    elif isinstance(value, list):
        for j, blk in enumerate(value):
            block(w, f"{loc}[{j}]", blk, tool)
    else:
        w.value(loc, value, expand=tool)


def block(w: Walker, loc: str, blk: JSON, tool: bool = False) -> None:
    """One content block, by `type`; unknown types are walked generically."""
    if not isinstance(blk, dict):
        w.value(loc, blk, expand=tool)
        return
    kind = blk.get("type")
    handler = _BLOCKS.get(kind) if isinstance(kind, str) else None
    if handler is None and isinstance(kind, str):
        if kind.endswith("_tool_result"):
            handler = _tool_result
        elif kind.endswith("_tool_use"):
            handler = _tool_use
    if handler is None:
        w.value(loc, blk, expand=tool)
    else:
        handler(w, loc, blk, tool)


def _text_field(w: Walker, loc: str, blk: dict[str, JSON], key: str, tool: bool) -> frozenset[str]:
    """Scan `blk[key]` if it is a string; returns the keys now handled."""
    value = blk.get(key)
    if not isinstance(value, str):
        return _TYPE
    (w.json_text if tool else w.text)(field(loc, key), value)
    return frozenset({"type", key})


def _text(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    text = blk.get("text")
    if not isinstance(text, str):
        w.rest(loc, blk, _TYPE, expand=tool)
        return
    w.block_text(loc, field(loc, "text"), text, tool=tool)
    w.rest(loc, blk, frozenset({"type", "text"}), expand=tool)


def _thinking(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    """`signature` is Anthropic's opaque check value, not text: not scanned."""
    handled = _text_field(w, loc, blk, "thinking", tool)
    if isinstance(blk.get("signature"), str):
        handled |= {"signature"}
    w.rest(loc, blk, handled)


def _redacted_thinking(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    """`data` is encrypted by Anthropic: not scanned."""
    w.rest(loc, blk, frozenset({"type", "data"}) if isinstance(blk.get("data"), str) else _TYPE)


def _image(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    """Counted, not scanned. A URL or file id source is still scanned as text."""
    w.attachment()
    src = blk.get("source")
    if isinstance(src, dict) and src.get("type") == "base64" and isinstance(src.get("data"), str):
        w.rest(field(loc, "source"), src, frozenset({"type", "data"}))
        w.rest(loc, blk, frozenset({"type", "source"}))
    else:
        w.rest(loc, blk, _TYPE)


def _document(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    """Text sources are scanned; base64 text/JSON is decoded and scanned; PDFs are counted."""
    src = blk.get("source")
    if not isinstance(src, dict):
        w.rest(loc, blk, _TYPE, expand=tool)
        return
    sloc = field(loc, "source")
    kind = src.get("type")
    handled = _TYPE
    if kind == "text" and isinstance(src.get("data"), str):
        w.text(field(sloc, "data"), src["data"])
        handled = frozenset({"type", "data"})
    elif kind == "base64" and "data" in src:
        media = src.get("media_type")
        w.document(field(sloc, "data"), src["data"], media if isinstance(media, str) else None)
        handled = frozenset({"type", "data"})
    elif kind == "content" and "content" in src:
        content(w, field(sloc, "content"), src["content"], tool)
        handled = frozenset({"type", "content"})
    w.rest(sloc, src, handled)
    w.rest(loc, blk, frozenset({"type", "source"}), expand=tool)


def _tool_use(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    """`input` is scanned as JSON text (keys give context) and string by string (escapes undone)."""
    if "input" in blk:
        w.structured(field(loc, "input"), blk["input"])
    w.rest(loc, blk, frozenset({"type", "input"}))


def _tool_result(w: Walker, loc: str, blk: dict[str, JSON], tool: bool) -> None:
    """`content` (string or nested blocks) is scanned; JSON inside it is expanded."""
    if "content" in blk:
        content(w, field(loc, "content"), blk["content"], tool=True)
    w.rest(loc, blk, frozenset({"type", "content"}), expand=True)


_BLOCKS: dict[str, _Handler] = {
    "text": _text,
    "thinking": _thinking,
    "redacted_thinking": _redacted_thinking,
    "image": _image,
    "document": _document,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
}
