"""Gemini generateContent / streamGenerateContent / countTokens (Google AI and Vertex AI).

Google's JSON accepts both camelCase and snake_case field names; both are read, and locations keep
whichever spelling the request used.
"""

from __future__ import annotations

from filter.formats.walk import JSON, Walker, as_int, as_str, field


def _get(obj: dict[str, JSON], camel: str, snake: str) -> tuple[str, JSON] | None:
    """(key as spelled, value) for a field sent in either spelling."""
    for key in (camel, snake):
        if key in obj:
            return key, obj[key]
    return None


def decode(doc: dict[str, JSON], w: Walker) -> bool:
    """Walk a GenerateContentRequest; False (raw fallback) without `contents` or a system instruction."""
    system = _get(doc, "systemInstruction", "system_instruction")
    if "contents" not in doc and system is None:
        return False
    w.model = as_str(doc.get("model"))
    config = _get(doc, "generationConfig", "generation_config")
    if config is not None and isinstance(config[1], dict):
        tokens = _get(config[1], "maxOutputTokens", "max_output_tokens")
        w.max_output_tokens = as_int(tokens[1]) if tokens else None
    handled = {"contents"}
    if system is not None:
        handled.add(system[0])
        _content(w, system[0], system[1])
    contents = doc.get("contents")
    if isinstance(contents, list):
        for i, item in enumerate(contents):
            _content(w, f"contents[{i}]", item)
    elif "contents" in doc:
        _content(w, "contents", contents)
    w.rest("", doc, frozenset(handled))
    return True


def _content(w: Walker, loc: str, content: JSON, tool: bool = False) -> None:
    """A Content `{role, parts}` (a bare string is accepted too)."""
    if isinstance(content, str):
        w.text(loc, content)
        return
    if not isinstance(content, dict):
        w.value(loc, content, expand=tool)
        return
    parts = content.get("parts")
    if isinstance(parts, list):
        for j, part in enumerate(parts):
            _part(w, f"{loc}.parts[{j}]", part, tool)
        w.rest(loc, content, frozenset({"parts"}))
    else:
        w.rest(loc, content, frozenset(), expand=tool)


def _part(w: Walker, loc: str, part: JSON, tool: bool) -> None:
    """text; inlineData (text MIME types decoded, images/PDF counted); function calls and responses."""
    if not isinstance(part, dict):
        w.value(loc, part, expand=tool)
        return
    handled: set[str] = set()
    text = part.get("text")
    if isinstance(text, str):
        w.block_text(loc, field(loc, "text"), text, tool=tool)
        handled.add("text")
    inline = _get(part, "inlineData", "inline_data")
    if inline is not None and isinstance(inline[1], dict):
        key, blob = inline
        mime = _get(blob, "mimeType", "mime_type")
        media = mime[1] if mime and isinstance(mime[1], str) else None
        if "data" in blob:
            w.document(f"{loc}.{key}.data", blob["data"], media)
            w.rest(field(loc, key), blob, frozenset({"data"}))
            handled.add(key)
    call = _get(part, "functionCall", "function_call")
    if call is not None and isinstance(call[1], dict) and "args" in call[1]:
        key, fn = call
        w.structured(f"{loc}.{key}.args", fn["args"])
        w.rest(field(loc, key), fn, frozenset({"args"}))
        handled.add(key)
    response = _get(part, "functionResponse", "function_response")
    if response is not None and isinstance(response[1], dict):
        key, fn = response
        fn_handled = set()
        if "response" in fn:
            w.structured(f"{loc}.{key}.response", fn["response"])
            fn_handled.add("response")
        if isinstance(fn.get("parts"), list):
            for k, inner in enumerate(fn["parts"]):
                _part(w, f"{loc}.{key}.parts[{k}]", inner, True)
            fn_handled.add("parts")
        w.rest(field(loc, key), fn, frozenset(fn_handled), expand=True)
        handled.add(key)
    signature = _get(part, "thoughtSignature", "thought_signature")
    if signature is not None and isinstance(signature[1], str):
        handled.add(signature[0])  # opaque bytes from Google, not text: not scanned
    w.rest(loc, part, frozenset(handled), expand=tool)
