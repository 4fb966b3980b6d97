"""Which API a request targets, from its path (any prefix before the API's own path is allowed).

The gateway exposes each provider under a path prefix (`/openai/v1/...`, `/anthropic/...`, `/gemini/...`,
`/mistral/v1/...`, `/groq/openai/v1/...`, `/azure/...`, `/bedrock/...`, `/vertex/...`, `/sagemaker/...`,
`/copilot/...`, `/copilot-proxy/...`, `/cursor/...`, `/codeium/...`) and strips it before forwarding, so a
leading known prefix names the provider; the rest of the path names the API as usual (a provider's own paths,
such as Copilot's `/chat/completions` without `/v1`, are read after its prefix first). Unprefixed paths keep
the path guess (`/v1/messages` is Anthropic, `/openai/deployments/...` is Azure). An `x-llm-provider` header
naming a known provider still wins over both (Groq's own path is `/openai/v1/...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from filter.model import Envelope

PROVIDERS = frozenset({
    "anthropic", "openai", "azure", "gemini", "bedrock", "mistral", "groq",
    "vertex", "sagemaker", "copilot", "copilot-proxy", "cursor", "codeium",
})  # fmt: skip
_STREAM_OPS = frozenset({
    "streamGenerateContent", "converse-stream", "invoke-with-response-stream", "streamRawPredict",
    "invocations-response-stream",
})  # fmt: skip
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
        # Claude on Vertex AI: an Anthropic Messages body (with `anthropic_version`), the model in the path.
        (r"/(?:v1|v1beta1)/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+)"
         r":(?P<op>rawPredict|streamRawPredict)$", "vertex", "anthropic.messages"),
        (r"/endpoints/(?P<model>[^/]+)/(?P<op>invocations|invocations-response-stream)$", "sagemaker",
         "sagemaker.invocations"),
    )
)
# Paths only one provider uses, read after its gateway prefix (before the shared table above).
_CONNECT = r"^/[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+/[A-Za-z_][A-Za-z0-9_]*$"
_OWN_ROUTES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    provider: tuple((re.compile(pattern), api) for pattern, api in table)
    for provider, table in {
        "copilot": (
            (r"^/chat/completions$", "openai.chat"),
            (r"^/responses$", "openai.responses"),
            (r"^/embeddings$", "openai.embeddings"),
        ),
        "copilot-proxy": ((r"^/v1/engines/(?P<model>[^/]+)/completions$", "openai.completions"),),
        # Connect / gRPC / gRPC-web: `/<package>.<Service>/<Method>`; the model is inside the protobuf: unknown.
        "cursor": ((_CONNECT, "connect"),),
        "codeium": ((_CONNECT, "connect"),),
    }.items()
}


@dataclass(frozen=True, slots=True)
class Route:
    provider: str  # "unknown" when the path names no API
    api: str  # e.g. "openai.chat"; "" when the path names no API
    model: str | None = None  # from the path: Gemini model, Bedrock model id, Azure deployment
    stream: bool = False  # a streaming variant of the path
    prefixed: bool = False  # the provider comes from a gateway prefix, not from a guess


UNKNOWN = Route("unknown", "")

# Gateway prefix -> provider. `/openai` only before `/v1/`: Azure's own paths start `/openai/deployments/`.
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("/openai/v1/", "/openai", "openai"),
    ("/anthropic/", "/anthropic", "anthropic"),
    ("/gemini/", "/gemini", "gemini"),
    ("/mistral/", "/mistral", "mistral"),
    ("/groq/", "/groq", "groq"),
    ("/azure/", "/azure", "azure"),
    ("/bedrock/", "/bedrock", "bedrock"),
    ("/vertex/", "/vertex", "vertex"),
    ("/sagemaker/", "/sagemaker", "sagemaker"),
    ("/copilot/", "/copilot", "copilot"),
    ("/copilot-proxy/", "/copilot-proxy", "copilot-proxy"),
    ("/cursor/", "/cursor", "cursor"),
    ("/codeium/", "/codeium", "codeium"),
)


def gateway_prefix(path: str) -> tuple[str, str] | None:
    """(provider, path after the prefix) when the path starts with a gateway provider prefix."""
    for lead, prefix, provider in _PREFIXES:
        if path.startswith(lead) or path + "/" == lead:
            return provider, path[len(prefix) :] or "/"
    return None


def route(path: str) -> Route:
    """The API a path names; the query string and a trailing slash are ignored. A gateway prefix names the
    provider (`prefixed`) whatever the rest of the path looks like."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")
    prefixed = gateway_prefix(path)
    if prefixed is not None:
        provider, rest = prefixed
        found = _own_match(provider, rest) or _match(rest)
        return Route(provider, found.api, found.model, found.stream, prefixed=True)
    return _match(path)


def _own_match(provider: str, path: str) -> Route | None:
    for pattern, api in _OWN_ROUTES.get(provider, ()):
        m = pattern.search(path)
        if m is not None:
            model = m.groupdict().get("model")
            return Route(provider, api, unquote(model) if model else None)
    return None


def _match(path: str) -> Route:
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


def provider_of(envelope: Envelope, path_route: Route) -> str:
    """`x-llm-provider` when it names a known provider, else the path's (gateway prefix, else path guess)."""
    return header_provider(envelope) or path_route.provider


def detect_provider(envelope: Envelope) -> str:
    """The provider a request goes to ("unknown" if neither prefix, header nor path says)."""
    return provider_of(envelope, route(envelope.path))
