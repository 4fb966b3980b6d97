"""Which API a request targets, from its path (any prefix before the API's own path is allowed)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from filter.model import Envelope

PROVIDERS = frozenset({"anthropic", "openai", "azure", "gemini", "bedrock", "mistral", "groq"})
_STREAM_OPS = frozenset({"streamGenerateContent", "converse-stream", "invoke-with-response-stream"})
_GEMINI = (
    r"/(?:v1|v1beta|v1alpha|v1beta1)/(?:projects/[^/]+/locations/[^/]+/publishers/[^/]+/)?"
    r"(?:models|tunedModels)/(?P<model>[^/:]+):(?P<op>generateContent|streamGenerateContent|countTokens)$"
)
_ROUTES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), provider, api)
    for pattern, provider, api in (
        (r"/openai/deployments/(?P<model>[^/]+)/chat/completions$", "azure", "openai.chat"),
        (r"/openai/deployments/(?P<model>[^/]+)/completions$", "azure", "openai.completions"),
        (r"/openai/deployments/(?P<model>[^/]+)/embeddings$", "azure", "openai.embeddings"),
        (r"/v1/messages(?:/count_tokens)?$", "anthropic", "anthropic.messages"),
        (r"/v1beta/openai/chat/completions$", "gemini", "openai.chat"),
        (r"/(?:v1|openai)/chat/completions$", "openai", "openai.chat"),
        (r"/(?:v1|openai)/responses$", "openai", "openai.responses"),
        (r"/(?:v1|openai)(?:/fim)?/completions$", "openai", "openai.completions"),
        (r"/(?:v1|openai)/embeddings$", "openai", "openai.embeddings"),
        (_GEMINI, "gemini", "gemini.generate_content"),
        (r"/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream)$", "bedrock", "bedrock.converse"),
        (r"/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)$", "bedrock", "bedrock.invoke"),
    )
)


@dataclass(frozen=True, slots=True)
class Route:
    provider: str  # "unknown" when the path names no API
    api: str  # e.g. "openai.chat"; "" when the path names no API
    model: str | None = None  # from the path: Gemini model, Bedrock model id, Azure deployment
    stream: bool = False  # a streaming variant of the path


UNKNOWN = Route("unknown", "")


def route(path: str) -> Route:
    """The API a path names; the query string and a trailing slash are ignored."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")
    for pattern, provider, api in _ROUTES:
        m = pattern.search(path)
        if m is None:
            continue
        groups = m.groupdict()
        model = unquote(groups["model"]) if groups.get("model") else None
        return Route(provider, api, model, groups.get("op") in _STREAM_OPS)
    return UNKNOWN


def header_provider(envelope: Envelope) -> str | None:
    hint = envelope.headers.get("x-llm-provider", "").strip().lower()
    return hint if hint in PROVIDERS else None


def detect_provider(envelope: Envelope) -> str:
    """`x-llm-provider` when it names a known provider, else the path's; "unknown" if neither says."""
    return header_provider(envelope) or route(envelope.path).provider
