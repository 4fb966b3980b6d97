"""Per-API readers of response JSON (whole bodies, stream events): usage, model and the generated text.

Each reader takes one parsed JSON value and updates a Tally. Readers never raise on odd shapes: a field of the
wrong type is ignored. Text is collected only to estimate output tokens when no usage arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from filter.usage.estimate import TextTokens


@dataclass
class Tally:
    """What a response has told so far."""

    text: TextTokens
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    final: bool = False  # the provider's final usage arrived
    model: str | None = None
    stop_seen: bool = False  # a streamed response said it finished (Gemini finishReason)
    notes: list[str] = field(default_factory=list)


Reader = Callable[[Any, Tally, bool], None]  # (value, tally, streamed)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    return None


def _text(tally: Tally, value: Any) -> None:
    if isinstance(value, str):
        tally.text.add(value)
    elif isinstance(value, dict | list) and value:
        tally.text.add(json.dumps(value, separators=(",", ":")))  # tool call arguments as JSON


def _model(tally: Tally, value: Any) -> None:
    if isinstance(value, str) and value and len(value) <= 256:
        tally.model = value


# OpenAI chat completions / completions / embeddings, and the OpenAI-compatible APIs (Azure, Mistral, Groq,
# Gemini's OpenAI endpoint). Streams carry usage in a last chunk only with stream_options.include_usage
# (Groq also under x_groq.usage; Mistral always).
def openai_chat(value: Any, tally: Tally, streamed: bool) -> None:
    obj = _dict(value)
    _model(tally, obj.get("model"))
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        usage = _dict(obj.get("x_groq")).get("usage")
    if isinstance(usage, dict):
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        if prompt is not None or completion is not None:
            tally.input_tokens = prompt or 0
            tally.output_tokens = completion or 0
            tally.cache_read_tokens = _int(_dict(usage.get("prompt_tokens_details")).get("cached_tokens")) or 0
            tally.final = True
    for choice in _list(obj.get("choices")):
        choice = _dict(choice)
        part = _dict(choice.get("delta") if streamed else choice.get("message"))
        content = part.get("content")
        if isinstance(content, list):  # content parts
            for piece in content:
                _text(tally, _dict(piece).get("text"))
        else:
            _text(tally, content)
        for key in ("reasoning_content", "reasoning", "refusal"):
            _text(tally, part.get(key))
        for call in _list(part.get("tool_calls")):
            _text(tally, _dict(_dict(call).get("function")).get("arguments"))
        _text(tally, choice.get("text"))  # legacy completions


def _responses_usage(tally: Tally, response: dict[str, Any]) -> None:
    usage = response.get("usage")
    if not isinstance(usage, dict) or (_int(usage.get("input_tokens")) is None
                                       and _int(usage.get("output_tokens")) is None):
        return
    tally.input_tokens = _int(usage.get("input_tokens")) or 0
    tally.output_tokens = _int(usage.get("output_tokens")) or 0
    tally.cache_read_tokens = _int(_dict(usage.get("input_tokens_details")).get("cached_tokens")) or 0
    tally.final = True


def _responses_output(tally: Tally, output: Any) -> None:
    for item in _list(output):
        item = _dict(item)
        for piece in _list(item.get("content")):
            _text(tally, _dict(piece).get("text"))
        for piece in _list(item.get("summary")):
            _text(tally, _dict(piece).get("text"))
        _text(tally, item.get("arguments"))


# OpenAI Responses: a JSON response object, or SSE events whose `type` names them; response.completed
# (also .incomplete / .failed) carries response.usage.
def openai_responses(value: Any, tally: Tally, streamed: bool) -> None:
    obj = _dict(value)
    kind = obj.get("type")
    if not isinstance(kind, str):
        _model(tally, obj.get("model"))
        _responses_usage(tally, obj)
        _responses_output(tally, obj.get("output"))
        return
    if kind.endswith(".delta") and "audio" not in kind:
        _text(tally, obj.get("delta"))
    elif kind in ("response.created", "response.in_progress", "response.completed", "response.incomplete",
                  "response.failed"):
        response = _dict(obj.get("response"))
        _model(tally, response.get("model"))
        _responses_usage(tally, response)


def _anthropic_usage(tally: Tally, usage: dict[str, Any]) -> None:
    """Anthropic's input_tokens excludes cache reads and writes; they are added back."""
    uncached = _int(usage.get("input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    if read is not None:
        tally.cache_read_tokens = read
    if write is not None:
        tally.cache_write_tokens = write
    if uncached is not None or read is not None or write is not None:
        base = uncached if uncached is not None else max(0, (tally.input_tokens or 0) - tally.cache_read_tokens
                                                         - tally.cache_write_tokens)
        tally.input_tokens = base + tally.cache_read_tokens + tally.cache_write_tokens
    output = _int(usage.get("output_tokens"))
    if output is not None:
        tally.output_tokens = output


# Anthropic Messages: message_start carries the input usage, message_delta the (cumulative) output_tokens.
def anthropic_messages(value: Any, tally: Tally, streamed: bool) -> None:
    obj = _dict(value)
    kind = obj.get("type")
    if kind == "message":
        _model(tally, obj.get("model"))
        usage = obj.get("usage")
        if isinstance(usage, dict) and _int(usage.get("output_tokens")) is not None:
            _anthropic_usage(tally, usage)
            tally.final = True
        for block in _list(obj.get("content")):
            block = _dict(block)
            _text(tally, block.get("text"))
            _text(tally, block.get("thinking"))
            _text(tally, block.get("input"))
    elif kind == "message_start":
        message = _dict(obj.get("message"))
        _model(tally, message.get("model"))
        _anthropic_usage(tally, _dict(message.get("usage")))
    elif kind == "content_block_delta":
        delta = _dict(obj.get("delta"))
        for key in ("text", "partial_json", "thinking"):
            _text(tally, delta.get(key))
    elif kind == "content_block_start":
        _text(tally, _dict(obj.get("content_block")).get("text"))
    elif kind == "message_delta":
        usage = obj.get("usage")
        if isinstance(usage, dict) and _int(usage.get("output_tokens")) is not None:
            _anthropic_usage(tally, usage)
            tally.final = True


# Gemini generateContent / streamGenerateContent: usageMetadata in every (streamed) response, cumulative; a
# stream's last chunk (with finishReason) has the final counts.
def gemini(value: Any, tally: Tally, streamed: bool) -> None:
    obj = _dict(value)
    _model(tally, obj.get("modelVersion"))
    for candidate in _list(obj.get("candidates")):
        candidate = _dict(candidate)
        if candidate.get("finishReason"):
            tally.stop_seen = True
        for part in _list(_dict(candidate.get("content")).get("parts")):
            part = _dict(part)
            _text(tally, part.get("text"))
            _text(tally, _dict(part.get("functionCall")).get("args"))
    if _dict(obj.get("promptFeedback")).get("blockReason"):
        tally.stop_seen = True
    usage = obj.get("usageMetadata")
    if isinstance(usage, dict) and (_int(usage.get("promptTokenCount")) is not None
                                    or _int(usage.get("candidatesTokenCount")) is not None):
        prompt = (_int(usage.get("promptTokenCount")) or 0) + (_int(usage.get("toolUsePromptTokenCount")) or 0)
        output = (_int(usage.get("candidatesTokenCount")) or 0) + (_int(usage.get("thoughtsTokenCount")) or 0)
        tally.input_tokens = prompt
        tally.output_tokens = output
        tally.cache_read_tokens = _int(usage.get("cachedContentTokenCount")) or 0
        tally.final = not streamed or tally.stop_seen


def _bedrock_usage(tally: Tally, usage: dict[str, Any]) -> None:
    """Bedrock's inputTokens excludes cache reads and writes; they are added back."""
    if _int(usage.get("inputTokens")) is None and _int(usage.get("outputTokens")) is None:
        return
    read = _int(usage.get("cacheReadInputTokens")) or 0
    write = _int(usage.get("cacheWriteInputTokens")) or 0
    tally.input_tokens = (_int(usage.get("inputTokens")) or 0) + read + write
    tally.output_tokens = _int(usage.get("outputTokens")) or 0
    tally.cache_read_tokens = read
    tally.cache_write_tokens = write
    tally.final = True


# Bedrock Converse (JSON) and ConverseStream (event-stream messages, read here by payload; the `metadata`
# event carries usage).
def bedrock_converse(value: Any, tally: Tally, streamed: bool) -> None:
    obj = _dict(value)
    usage = obj.get("usage")
    if isinstance(usage, dict):
        _bedrock_usage(tally, usage)
    message = _dict(_dict(obj.get("output")).get("message"))
    for block in _list(message.get("content")):
        block = _dict(block)
        _text(tally, block.get("text"))
        _text(tally, _dict(block.get("toolUse")).get("input"))
        _text(tally, _dict(_dict(block.get("reasoningContent")).get("reasoningText")).get("text"))
    delta = _dict(obj.get("delta"))  # contentBlockDelta
    _text(tally, delta.get("text"))
    _text(tally, _dict(delta.get("toolUse")).get("input"))
    _text(tally, _dict(delta.get("reasoningContent")).get("text"))


# Bedrock InvokeModel: the body is the model's own format (Anthropic's for Claude); usage comes from the
# x-amzn-bedrock-*-token-count headers, or in a stream from the last chunk's amazon-bedrock-invocationMetrics.
def bedrock_invoke(value: Any, tally: Tally, streamed: bool) -> None:
    obj = _dict(value)
    metrics = obj.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):
        read = _int(metrics.get("cacheReadInputTokenCount")) or 0
        write = _int(metrics.get("cacheWriteInputTokenCount")) or 0
        tally.input_tokens = (_int(metrics.get("inputTokenCount")) or 0) + read + write
        tally.output_tokens = _int(metrics.get("outputTokenCount")) or 0
        tally.cache_read_tokens = read
        tally.cache_write_tokens = write
        tally.final = True
    anthropic_messages(obj, tally, streamed)


READERS: dict[str, Reader] = {
    "openai.chat": openai_chat,
    "openai.completions": openai_chat,
    "openai.embeddings": openai_chat,
    "openai.responses": openai_responses,
    "anthropic.messages": anthropic_messages,
    "gemini.generate_content": gemini,
    "bedrock.converse": bedrock_converse,
    "bedrock.invoke": bedrock_invoke,
}
