"""Provider-neutral conversations rendered as real request bodies (OpenAI chat / Responses, Anthropic, Gemini,
Bedrock Converse), with the location prefix of every turn as the filter names it."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from filter.model import Envelope
from tests.support.envelopes import make_envelope

APIS = ("openai.chat", "anthropic", "gemini", "bedrock", "openai.responses", "azure", "bedrock.invoke")
PATHS = {
    "openai.chat": "/v1/chat/completions",
    "azure": "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
    "bedrock.invoke": "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke",
    "openai.responses": "/v1/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-pro:generateContent",
    "bedrock": "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse",
}
HEADERS = {
    "openai.chat": {"content-type": "application/json", "user-agent": "OpenAI/Python 1.54.4"},
    "azure": {"content-type": "application/json", "user-agent": "AzureOpenAI/Python 1.54.4"},
    "bedrock.invoke": {"content-type": "application/json", "accept": "application/json",
                       "user-agent": "Boto3/1.35.40 md/Botocore#1.35.40"},
    "openai.responses": {"content-type": "application/json", "user-agent": "OpenAI/Python 1.54.4"},
    "anthropic": {"content-type": "application/json", "anthropic-version": "2023-06-01",
                  "user-agent": "claude-cli/1.0.72 (external, cli)"},
    "gemini": {"content-type": "application/json", "user-agent": "google-genai-sdk/1.20.0 gl-python/3.11.7"},
    "bedrock": {"content-type": "application/json", "user-agent": "Boto3/1.35.40 md/Botocore#1.35.40"},
}
PROVIDER = {"openai.chat": "openai", "openai.responses": "openai", "anthropic": "anthropic", "gemini": "gemini",
            "bedrock": "bedrock", "azure": "azure", "bedrock.invoke": "bedrock"}


@dataclass
class Turn:
    kind: str  # user | assistant | tool_call | tool_result | document | image (text: a data: URL)
    text: str = ""
    name: str = ""  # tool name
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""
    filename: str = "notes.txt"


@dataclass
class Conversation:
    system: str
    turns: list[Turn]


@dataclass
class Rendered:
    api: str
    body: dict[str, Any]
    locs: dict[int, str]  # turn index (-1: system) -> location prefix of the text the filter will report


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _image_b64(data_url: str) -> str:
    return data_url.split(",", 1)[1]


def render(api: str, conv: Conversation) -> Rendered:
    if api == "azure":  # Azure OpenAI: the chat body, the deployment in the path
        r = _openai_chat(conv)
        del r.body["model"]
        return Rendered(api, r.body, r.locs)
    if api == "bedrock.invoke":  # InvokeModel with an Anthropic model: the Messages body, Bedrock's version field
        r = _anthropic(conv)
        for key in ("model", "stream"):
            del r.body[key]
        return Rendered(api, {"anthropic_version": "bedrock-2023-05-31", **r.body}, r.locs)
    return {"openai.chat": _openai_chat, "openai.responses": _responses, "anthropic": _anthropic,
            "gemini": _gemini, "bedrock": _bedrock}[api](conv)


def _openai_chat(conv: Conversation) -> Rendered:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": conv.system}]
    locs = {-1: "messages[0].content"}
    for i, t in enumerate(conv.turns):
        n = len(msgs)
        if t.kind in ("user", "assistant"):
            msgs.append({"role": t.kind, "content": t.text})
            locs[i] = f"messages[{n}].content"
        elif t.kind == "tool_call":
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": t.call_id, "type": "function", "function": {"name": t.name, "arguments": json.dumps(t.args)}}]})
            locs[i] = f"messages[{n}].tool_calls[0].function.arguments"
        elif t.kind == "tool_result":
            msgs.append({"role": "tool", "tool_call_id": t.call_id, "content": t.text})
            locs[i] = f"messages[{n}].content"
        elif t.kind == "image":
            msgs.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": t.text}},
                                                     {"type": "text", "text": "What is wrong in this screenshot?"}]})
            locs[i] = f"messages[{n}].content[0]"
        elif t.kind == "document":
            msgs.append({"role": "user", "content": [
                {"type": "file", "file": {"filename": t.filename, "file_data": "data:text/plain;base64," + _b64(t.text)}},
                {"type": "text", "text": "The attached file is what I have locally; what is wrong with it?"}]})
            locs[i] = f"messages[{n}].content[0]"
    body = {"model": "gpt-4o-2024-11-20", "messages": msgs, "temperature": 0.2, "stream": True,
            "tools": [_openai_tool(name) for name in _tool_names(conv)] or None}
    if body["tools"] is None:
        del body["tools"]
    return Rendered("openai.chat", body, locs)


def _tool_names(conv: Conversation) -> list[str]:
    return sorted({t.name for t in conv.turns if t.kind == "tool_call"})


def _openai_tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": f"{name} tool of the coding agent",
                                             "parameters": {"type": "object", "properties": {}}}}


def _responses(conv: Conversation) -> Rendered:
    items: list[dict[str, Any]] = []
    locs = {-1: "instructions"}
    for i, t in enumerate(conv.turns):
        n = len(items)
        if t.kind == "user":
            items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": t.text}]})
            locs[i] = f"input[{n}].content[0]"
        elif t.kind == "assistant":
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": t.text}]})
            locs[i] = f"input[{n}].content[0]"
        elif t.kind == "tool_call":
            items.append({"type": "function_call", "call_id": t.call_id, "name": t.name,
                          "arguments": json.dumps(t.args)})
            locs[i] = f"input[{n}].arguments"
        elif t.kind == "tool_result":
            items.append({"type": "function_call_output", "call_id": t.call_id, "output": t.text})
            locs[i] = f"input[{n}].output"
        elif t.kind == "image":
            items.append({"type": "message", "role": "user", "content": [
                {"type": "input_image", "image_url": t.text},
                {"type": "input_text", "text": "What is wrong in this screenshot?"}]})
            locs[i] = f"input[{n}].content[0]"
        elif t.kind == "document":
            items.append({"type": "message", "role": "user", "content": [
                {"type": "input_file", "filename": t.filename, "file_data": "data:text/plain;base64," + _b64(t.text)},
                {"type": "input_text", "text": "Here is the file; what is wrong with it?"}]})
            locs[i] = f"input[{n}].content[0]"
    body = {"model": "gpt-4.1", "instructions": conv.system, "input": items, "store": False}
    names = _tool_names(conv)
    if names:
        body["tools"] = [{"type": "function", "name": n, "parameters": {"type": "object", "properties": {}}}
                         for n in names]
    return Rendered("openai.responses", body, locs)


def _anthropic(conv: Conversation) -> Rendered:
    msgs: list[dict[str, Any]] = []
    locs = {-1: "system"}
    for i, t in enumerate(conv.turns):
        n = len(msgs)
        if t.kind in ("user", "assistant"):
            msgs.append({"role": t.kind, "content": [{"type": "text", "text": t.text}]})
        elif t.kind == "tool_call":
            msgs.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": t.call_id, "name": t.name, "input": t.args}]})
        elif t.kind == "tool_result":
            msgs.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": t.call_id, "content": [{"type": "text", "text": t.text}]}]})
        elif t.kind == "image":
            msgs.append({"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _image_b64(t.text)}},
                {"type": "text", "text": "What is wrong in this screenshot?"}]})
        elif t.kind == "document":
            msgs.append({"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": _b64(t.text)},
                 "title": t.filename},
                {"type": "text", "text": "This is the attached file; what is wrong with it?"}]})
        locs[i] = f"messages[{n}].content[0]"
    body = {"model": "claude-sonnet-4-20250514", "max_tokens": 8192, "system": conv.system, "messages": msgs,
            "stream": True}
    names = _tool_names(conv)
    if names:
        body["tools"] = [{"name": n, "description": f"{n} tool", "input_schema": {"type": "object"}} for n in names]
    return Rendered("anthropic", body, locs)


def _gemini(conv: Conversation) -> Rendered:
    contents: list[dict[str, Any]] = []
    locs = {-1: "systemInstruction.parts[0]"}
    for i, t in enumerate(conv.turns):
        n = len(contents)
        if t.kind == "user":
            contents.append({"role": "user", "parts": [{"text": t.text}]})
        elif t.kind == "assistant":
            contents.append({"role": "model", "parts": [{"text": t.text}]})
        elif t.kind == "tool_call":
            contents.append({"role": "model", "parts": [{"functionCall": {"name": t.name, "args": t.args}}]})
        elif t.kind == "tool_result":
            contents.append({"role": "user", "parts": [
                {"functionResponse": {"name": t.name, "response": {"name": t.name, "content": t.text}}}]})
        elif t.kind == "image":
            contents.append({"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": _image_b64(t.text)}},
                                                       {"text": "What is wrong in this screenshot?"}]})
        elif t.kind == "document":
            contents.append({"role": "user", "parts": [{"inlineData": {"mimeType": "text/plain", "data": _b64(t.text)}},
                                                       {"text": "This is the attached file; what is wrong with it?"}]})
        locs[i] = f"contents[{n}].parts[0]"
    body: dict[str, Any] = {"systemInstruction": {"parts": [{"text": conv.system}]}, "contents": contents,
                            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 8192}}
    names = _tool_names(conv)
    if names:
        body["tools"] = [{"functionDeclarations": [{"name": n, "description": f"{n} tool"} for n in names]}]
    return Rendered("gemini", body, locs)


def _bedrock(conv: Conversation) -> Rendered:
    msgs: list[dict[str, Any]] = []
    locs = {-1: "system[0]"}
    for i, t in enumerate(conv.turns):
        n = len(msgs)
        if t.kind in ("user", "assistant"):
            msgs.append({"role": t.kind, "content": [{"text": t.text}]})
        elif t.kind == "tool_call":
            msgs.append({"role": "assistant", "content": [
                {"toolUse": {"toolUseId": t.call_id, "name": t.name, "input": t.args}}]})
        elif t.kind == "tool_result":
            msgs.append({"role": "user", "content": [
                {"toolResult": {"toolUseId": t.call_id, "content": [{"text": t.text}], "status": "success"}}]})
        elif t.kind == "image":
            msgs.append({"role": "user", "content": [
                {"image": {"format": "png", "source": {"bytes": _image_b64(t.text)}}},
                {"text": "What is wrong in this screenshot?"}]})
        elif t.kind == "document":
            msgs.append({"role": "user", "content": [
                {"document": {"format": "txt", "name": "attached notes", "source": {"bytes": _b64(t.text)}}},
                {"text": "This is the attached file; what is wrong with it?"}]})
        locs[i] = f"messages[{n}].content[0]"
    body: dict[str, Any] = {"system": [{"text": conv.system}], "messages": msgs,
                            "inferenceConfig": {"maxTokens": 4096, "temperature": 0.2}}
    names = _tool_names(conv)
    if names:
        body["toolConfig"] = {"tools": [{"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}}
                                        for n in names]}
    return Rendered("bedrock", body, locs)


def envelope(api: str, text: str, encoding: str = "") -> Envelope:
    """The HTTP request: serialised body, optionally compressed with `encoding` (gzip | deflate)."""
    data = text.encode("utf-8")
    headers = dict(HEADERS[api])
    if encoding == "gzip":
        data = gzip.compress(data, mtime=0)
        headers["content-encoding"] = "gzip"
    elif encoding == "deflate":
        data = zlib.compress(data)
        headers["content-encoding"] = "deflate"
    return make_envelope(data, PATHS[api], headers)


def serialise(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)
