"""Amazon SageMaker runtime InvokeEndpoint (`/endpoints/<name>/invocations[-response-stream]`).

The body is whatever the endpoint's model container takes. The common shapes of LLM containers are read
field by field: a Messages API (`messages`, as TGI, vLLM and LMI serve it), Hugging Face `inputs` (or
JumpStart's `text_inputs`) with `parameters`, and completion-style `prompt`. Any other JSON is scanned string
by string from `$` (raw fallback), and a body that is not JSON (text/csv, text/plain, ...) is scanned as text.
Either way every string the container can read is scanned; the shape only gives better locations and the
output-token cap budgets reserve.
"""

from __future__ import annotations

from filter.formats import openai
from filter.formats.walk import JSON, Walker, as_int, as_str

_INPUT_KEYS = ("inputs", "text_inputs")
_TOKEN_KEYS = ("max_new_tokens", "max_tokens", "max_length")


def decode(doc: dict[str, JSON], w: Walker) -> bool:
    """Walk a known LLM container body; False (raw fallback) for any other shape."""
    if isinstance(doc.get("messages"), list):
        return openai.decode_chat(doc, w)
    for key in _INPUT_KEYS:
        if key in doc:
            _inputs(doc, w, key)
            return True
    if "prompt" in doc:
        return openai.decode_completions(doc, w)
    return False


def _inputs(doc: dict[str, JSON], w: Walker, key: str) -> None:
    """`{"inputs": "..." | ["...", ...] | <chat turns>, "parameters": {"max_new_tokens": ...}}`."""
    w.model = as_str(doc.get("model"))
    w.stream = doc.get("stream") is True
    params = doc.get("parameters")
    if isinstance(params, dict):
        for name in _TOKEN_KEYS:
            tokens = as_int(params.get(name))
            if tokens is not None:
                w.max_output_tokens = tokens
                break
    value = doc[key]
    if isinstance(value, str):
        w.text(key, value)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                w.text(f"{key}[{i}]", item)
            else:
                w.value(f"{key}[{i}]", item, expand=True)  # chat turns, or tool output with JSON inside
    else:
        w.value(key, value, expand=True)
    w.rest("", doc, frozenset({key}))
