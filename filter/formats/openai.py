"""OpenAI-style APIs (also Azure OpenAI, Mistral, Groq): chat completions, Responses, completions, embeddings."""

from __future__ import annotations

from filter.formats.walk import JSON, Walker, as_int, as_str, field, guess_media_type

_TYPE = frozenset({"type"})
_TOOL_ROLES = frozenset({"tool", "function"})


def _common(doc: dict[str, JSON], w: Walker, *token_keys: str) -> None:
    w.model = as_str(doc.get("model"))
    w.stream = doc.get("stream") is True
    for key in token_keys:
        tokens = as_int(doc.get(key))
        if tokens is not None:
            w.max_output_tokens = tokens
            return


# -- chat completions -----------------------------------------------------------------------------------
def decode_chat(doc: dict[str, JSON], w: Walker) -> bool:
    """`/v1/chat/completions`; False (raw fallback) without `messages`."""
    if "messages" not in doc:
        return False
    _common(doc, w, "max_completion_tokens", "max_tokens")
    messages = doc["messages"]
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            _chat_message(w, f"messages[{i}]", message)
    else:
        w.value("messages", messages)
    w.rest("", doc, frozenset({"messages"}))
    return True


def _chat_message(w: Walker, loc: str, message: JSON) -> None:
    if not isinstance(message, dict):
        w.value(loc, message)
        return
    tool = message.get("role") in _TOOL_ROLES
    handled = {"content", "tool_calls", "function_call"}
    if "content" in message:
        _chat_content(w, field(loc, "content"), message["content"], tool)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            _tool_call(w, f"{loc}.tool_calls[{j}]", call)
    elif "tool_calls" in message:
        w.value(field(loc, "tool_calls"), calls)
    if "function_call" in message:
        _function(w, field(loc, "function_call"), message["function_call"])
    w.rest(loc, message, frozenset(handled))


def _tool_call(w: Walker, loc: str, call: JSON) -> None:
    if not isinstance(call, dict):
        w.value(loc, call, expand=True)
        return
    if "function" in call:
        _function(w, field(loc, "function"), call["function"])
    w.rest(loc, call, frozenset({"function"}), expand=True)


def _function(w: Walker, loc: str, fn: JSON) -> None:
    """`{name, arguments}`: arguments is JSON text; its strings are scanned too."""
    if not isinstance(fn, dict):
        w.value(loc, fn, expand=True)
        return
    args = fn.get("arguments")
    if isinstance(args, str):
        w.json_text(field(loc, "arguments"), args)
    elif "arguments" in fn:
        w.structured(field(loc, "arguments"), args)
    w.rest(loc, fn, frozenset({"arguments"}))


def _chat_content(w: Walker, loc: str, value: JSON, tool: bool) -> None:
    if isinstance(value, str):
        (w.json_text if tool else w.text)(loc, value)
    elif isinstance(value, list):
        for j, part in enumerate(value):
            _part(w, f"{loc}[{j}]", part, tool)
    elif value is not None:
        w.value(loc, value, expand=tool)


# -- content parts (chat and Responses) -------------------------------------------------------------------
_TEXT_PARTS = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "summary_text": "text",
    "reasoning_text": "text",
    "refusal": "refusal",
}


def _part(w: Walker, loc: str, part: JSON, tool: bool) -> None:
    """One content part; images counted (http URLs still scanned), files decoded when they are text."""
    if not isinstance(part, dict):
        w.value(loc, part, expand=tool)
        return
    kind = part.get("type")
    if not isinstance(kind, str):
        w.value(loc, part, expand=tool)
        return
    if kind in _TEXT_PARTS:
        key = _TEXT_PARTS[kind]
        text = part.get(key)
        if isinstance(text, str):
            w.block_text(loc, field(loc, key), text, tool=tool)
            w.rest(loc, part, frozenset({"type", key}), expand=tool)
            return
    elif kind in ("image_url", "input_image"):
        _image(w, loc, part)
        return
    elif kind in ("file", "input_file"):
        _file(w, loc, part)
        return
    elif kind == "input_audio":
        audio = part.get("input_audio")
        if isinstance(audio, dict) and isinstance(audio.get("data"), str):
            w.attachment()  # audio is binary: counted, not scanned
            w.rest(field(loc, "input_audio"), audio, frozenset({"data"}))
            w.rest(loc, part, frozenset({"type", "input_audio"}))
            return
    w.value(loc, part, expand=tool)


def _image(w: Walker, loc: str, part: dict[str, JSON]) -> None:
    """Chat `{image_url: {url}}` or Responses `{image_url: "..."}`: counted; http URLs are still scanned."""
    w.attachment()
    inner = part.get("image_url")
    if isinstance(inner, dict):
        skip = frozenset({"url"}) if _inline_image(inner.get("url")) else frozenset()
        w.rest(field(loc, "image_url"), inner, skip)
        w.rest(loc, part, frozenset({"type", "image_url"}))
    else:
        w.rest(loc, part, frozenset({"type", "image_url"}) if _inline_image(inner) else _TYPE)


def _inline_image(url: JSON) -> bool:
    return isinstance(url, str) and url[:11].lower() == "data:image/"


def _file(w: Walker, loc: str, part: dict[str, JSON]) -> None:
    """Chat `{file: {file_data, filename}}` or Responses `{file_data, filename}`: text files are scanned."""
    holder, hloc = part, loc
    inner = part.get("file")
    if isinstance(inner, dict):
        holder, hloc = inner, field(loc, "file")
        w.rest(loc, part, frozenset({"type", "file"}))
    data = holder.get("file_data")
    if isinstance(data, str):
        dloc = field(hloc, "file_data")
        if not (data.startswith("data:") and w.data_url(dloc, data)):
            w.document(dloc, data, guess_media_type(holder.get("filename")))
        w.rest(hloc, holder, frozenset({"type", "file_data"}))
    else:
        w.rest(hloc, holder, _TYPE)


# -- Responses API --------------------------------------------------------------------------------------
def decode_responses(doc: dict[str, JSON], w: Walker) -> bool:
    """`/v1/responses`; False (raw fallback) without `input` or `instructions`."""
    if "input" not in doc and "instructions" not in doc:
        return False
    _common(doc, w, "max_output_tokens")
    for key in ("instructions", "input"):
        if key not in doc:
            continue
        value = doc[key]
        if isinstance(value, str):
            w.text(key, value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                _item(w, f"{key}[{i}]", item)
        else:
            w.value(key, value)
    w.rest("", doc, frozenset({"instructions", "input"}))
    return True


def _item(w: Walker, loc: str, item: JSON) -> None:
    """One input item: a message, a tool call (arguments expanded) or a tool output; others generically."""
    if not isinstance(item, dict):
        w.value(loc, item)
        return
    kind = item.get("type")
    if kind == "message" or (kind is None and "role" in item):
        tool = item.get("role") in _TOOL_ROLES
        if "content" in item:
            _chat_content(w, field(loc, "content"), item["content"], tool)
        w.rest(loc, item, frozenset({"content"}))
    elif kind in ("function_call", "custom_tool_call") and isinstance(item.get(_call_key(kind)), str):
        key = _call_key(kind)
        w.json_text(field(loc, key), item[key])
        w.rest(loc, item, frozenset({key}))
    elif isinstance(kind, str) and kind.endswith("_output") and "output" in item:
        output = item["output"]
        if isinstance(output, str):
            w.json_text(field(loc, "output"), output)
        elif isinstance(output, list):
            for j, part in enumerate(output):
                _part(w, f"{loc}.output[{j}]", part, True)
        else:
            w.value(field(loc, "output"), output, expand=True)
        w.rest(loc, item, frozenset({"output"}), expand=True)
    elif kind == "reasoning":
        # `encrypted_content` is OpenAI's opaque reasoning state, not text: not scanned
        w.rest(loc, item, frozenset({"encrypted_content"} if isinstance(item.get("encrypted_content"), str) else ()))
    else:
        w.value(loc, item, expand=True)


def _call_key(kind: str) -> str:
    return "arguments" if kind == "function_call" else "input"


# -- legacy completions and embeddings ------------------------------------------------------------------
def _prompt(doc: dict[str, JSON], w: Walker, key: str) -> None:
    value = doc[key]
    if isinstance(value, str):
        w.text(key, value)
    elif isinstance(value, list):
        for i, piece in enumerate(value):
            if isinstance(piece, str):
                w.text(f"{key}[{i}]", piece)
            else:
                w.value(f"{key}[{i}]", piece)  # token-id arrays hold no text to scan
    else:
        w.value(key, value)
    w.rest("", doc, frozenset({key}))


def decode_completions(doc: dict[str, JSON], w: Walker) -> bool:
    """`/v1/completions` (and Mistral FIM): `prompt` (and `suffix`)."""
    if "prompt" not in doc:
        return False
    _common(doc, w, "max_tokens")
    _prompt(doc, w, "prompt")
    return True


def decode_embeddings(doc: dict[str, JSON], w: Walker) -> bool:
    """`/v1/embeddings`: `input`."""
    if "input" not in doc:
        return False
    _common(doc, w)
    _prompt(doc, w, "input")
    return True


def decode_any(doc: dict[str, JSON], w: Walker) -> bool:
    """An OpenAI-style body on a path that does not say which API: chosen by its fields."""
    if "messages" in doc:
        return decode_chat(doc, w)
    if "input" in doc or "instructions" in doc:
        return decode_responses(doc, w)
    return decode_completions(doc, w)
