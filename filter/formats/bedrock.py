"""Amazon Bedrock: Converse / ConverseStream, and InvokeModel (the body is the model vendor's own format)."""

from __future__ import annotations

from filter.formats.anthropic import decode as decode_anthropic
from filter.formats.walk import JSON, Walker, as_int, field

# Converse document formats -> media type: text formats are decoded, pdf counted, the rest sniffed.
_DOC_TYPES = {
    "txt": "text/plain",
    "csv": "text/csv",
    "html": "text/html",
    "md": "text/markdown",
    "pdf": "application/pdf",
}
_MEDIA = frozenset({"image", "video"})


def decode_converse(doc: dict[str, JSON], w: Walker) -> bool:
    """Walk a Converse body; False (raw fallback) without `messages` or `system`."""
    if "messages" not in doc and "system" not in doc:
        return False
    config = doc.get("inferenceConfig")
    if isinstance(config, dict):
        w.max_output_tokens = as_int(config.get("maxTokens"))
    for key in ("system", "messages"):
        if key not in doc:
            continue
        value = doc[key]
        if not isinstance(value, list):
            w.value(key, value)
        elif key == "system":
            for i, blk in enumerate(value):
                _block(w, f"system[{i}]", blk, False)
        else:
            for i, message in enumerate(value):
                _message(w, f"messages[{i}]", message)
    w.rest("", doc, frozenset({"system", "messages"}))
    return True


def _message(w: Walker, loc: str, message: JSON) -> None:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        w.value(loc, message)
        return
    for j, blk in enumerate(message["content"]):
        _block(w, f"{loc}.content[{j}]", blk, False)
    w.rest(loc, message, frozenset({"content"}))


def _block(w: Walker, loc: str, blk: JSON, tool: bool) -> None:
    """A ContentBlock union: exactly one member key says what it is."""
    if not isinstance(blk, dict):
        w.value(loc, blk, expand=tool)
        return
    handled: set[str] = set()
    text = blk.get("text")
    if isinstance(text, str):
        w.block_text(loc, field(loc, "text"), text, tool=tool)
        handled.add("text")
    if "json" in blk:
        w.structured(field(loc, "json"), blk["json"])
        handled.add("json")
    for key in _MEDIA & blk.keys():
        if _media(w, field(loc, key), blk[key]):
            handled.add(key)
    if isinstance(blk.get("document"), dict):
        _document(w, field(loc, "document"), blk["document"])
        handled.add("document")
    use = blk.get("toolUse")
    if isinstance(use, dict) and "input" in use:
        w.structured(f"{loc}.toolUse.input", use["input"])
        w.rest(field(loc, "toolUse"), use, frozenset({"input"}))
        handled.add("toolUse")
    result = blk.get("toolResult")
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        for k, inner in enumerate(result["content"]):
            _block(w, f"{loc}.toolResult.content[{k}]", inner, True)
        w.rest(field(loc, "toolResult"), result, frozenset({"content"}), expand=True)
        handled.add("toolResult")
    reasoning = blk.get("reasoningContent")
    if isinstance(reasoning, dict):
        _reasoning(w, field(loc, "reasoningContent"), reasoning)
        handled.add("reasoningContent")
    w.rest(loc, blk, frozenset(handled), expand=tool)


def _media(w: Walker, loc: str, media: JSON) -> bool:
    """Image or video: counted; inline bytes not scanned (an S3 location still is)."""
    if not isinstance(media, dict):
        return False
    w.attachment()
    src = media.get("source")
    if isinstance(src, dict) and isinstance(src.get("bytes"), str):
        w.rest(field(loc, "source"), src, frozenset({"bytes"}))
        w.rest(loc, media, frozenset({"source"}))
    else:
        w.rest(loc, media, frozenset())
    return True


def _document(w: Walker, loc: str, doc: dict[str, JSON]) -> None:
    """Text formats are decoded from base64 and scanned; PDFs counted; other formats scanned if they are text."""
    src = doc.get("source")
    if not isinstance(src, dict):
        w.rest(loc, doc, frozenset())
        return
    sloc = field(loc, "source")
    handled: set[str] = set()
    if "bytes" in src:
        fmt = doc.get("format")
        w.document(field(sloc, "bytes"), src["bytes"], _DOC_TYPES.get(fmt) if isinstance(fmt, str) else None)
        handled.add("bytes")
    if isinstance(src.get("text"), str):
        w.text(field(sloc, "text"), src["text"])
        handled.add("text")
    if isinstance(src.get("content"), list):
        for k, inner in enumerate(src["content"]):
            _block(w, f"{sloc}.content[{k}]", inner, False)
        handled.add("content")
    w.rest(sloc, src, frozenset(handled))
    w.rest(loc, doc, frozenset({"source"}))


def _reasoning(w: Walker, loc: str, reasoning: dict[str, JSON]) -> None:
    """`reasoningText.text` is scanned; its `signature` and `redactedContent` are opaque: not scanned."""
    handled: set[str] = set()
    if isinstance(reasoning.get("redactedContent"), str):
        handled.add("redactedContent")
    inner = reasoning.get("reasoningText")
    if isinstance(inner, dict):
        inner_handled: set[str] = set()
        if isinstance(inner.get("text"), str):
            w.text(f"{loc}.reasoningText.text", inner["text"])
            inner_handled.add("text")
        if isinstance(inner.get("signature"), str):
            inner_handled.add("signature")
        w.rest(field(loc, "reasoningText"), inner, frozenset(inner_handled))
        handled.add("reasoningText")
    w.rest(loc, reasoning, frozenset(handled))


# -- InvokeModel ----------------------------------------------------------------------------------------
def is_anthropic(model: str | None, doc: dict[str, JSON]) -> bool:
    return (model is not None and "anthropic." in model) or "anthropic_version" in doc


def decode_invoke(doc: dict[str, JSON], w: Walker, model: str | None) -> bool:
    """Anthropic bodies use the Messages decoder; other vendors' bodies are scanned raw (False).

    The output-token cap is still read from the vendors' usual fields so budgets can reserve it.
    """
    if is_anthropic(model, doc) and decode_anthropic(doc, w):
        return True
    sections = [doc] + [doc[k] for k in ("textGenerationConfig", "inferenceConfig") if isinstance(doc.get(k), dict)]
    for section in sections:
        for key in ("max_tokens", "max_gen_len", "max_new_tokens", "maxTokens", "maxTokenCount"):
            tokens = as_int(section.get(key))
            if tokens is not None:
                w.max_output_tokens = tokens
                return False
    return False
