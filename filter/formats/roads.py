"""Roads to the provider outside the body: the URL path, each query parameter, each request header.

Locations: `path` (the path without the query), `query.<name>` (one per parameter; `query[#i]` when the name
is not a plain key or repeats, and then the text is the whole `name=value` so the name is scanned too) and
`headers.<name>` (lower-case; `headers[#i]` holding `name: value` when the name is not a plain key). Texts
are as sent, percent-escapes kept, so finding offsets point into what the client sent; derive.py adds the
percent-decoded copies (`path#urldecoded`). These are scanned for every request, with or without a body.

Not scanned: the credentials the provider itself reads (they are meant to reach it): `authorization` and the
provider's key header (`x-api-key`, `api-key`, `x-goog-api-key`), SigV4's `x-amz-*` for Bedrock and SageMaker,
Gemini's and Vertex AI's `key` query parameter; for a path that names no provider, all of them. Transport headers that carry no
text for the model: host/`:authority` and other pseudo-headers, content-*, accept*, connection and hop-by-hop
headers, `x-envoy-*`, `x-forwarded-*`, `x-request-id`, trace context, and `x-llm-gateway-token` (a JWT the
gateway verifies).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from filter.formats.routes import Route
from filter.formats.walk import plain_key
from filter.model import Envelope, TextSegment

_CREDENTIAL_HEADERS: dict[str, frozenset[str]] = {
    "openai": frozenset({"authorization"}),
    "mistral": frozenset({"authorization"}),
    "groq": frozenset({"authorization"}),
    "anthropic": frozenset({"authorization", "x-api-key"}),
    "azure": frozenset({"authorization", "api-key"}),
    "gemini": frozenset({"authorization", "x-goog-api-key"}),
    "bedrock": frozenset({"authorization"}),
    "vertex": frozenset({"authorization", "x-goog-api-key"}),
    "sagemaker": frozenset({"authorization"}),
    "copilot": frozenset({"authorization"}),
    "copilot-proxy": frozenset({"authorization"}),
    "cursor": frozenset({"authorization"}),
    "codeium": frozenset({"authorization"}),
}
_ANY_CREDENTIAL_HEADER = frozenset().union(*_CREDENTIAL_HEADERS.values())
_SIGV4_PREFIX = "x-amz-"  # SigV4 signature, date, content hash and session token (Bedrock, SageMaker)
_SIGV4_PROVIDERS = frozenset({"bedrock", "sagemaker", "unknown"})
_CREDENTIAL_PARAMS: dict[str, frozenset[str]] = {"gemini": frozenset({"key"}), "vertex": frozenset({"key"})}
_ANY_CREDENTIAL_PARAM = frozenset({"key"})
_TRANSPORT = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "connection",
        "te",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "x-request-id",
        "traceparent",
        "tracestate",
        "x-llm-gateway-token",
    }
)
_TRANSPORT_PREFIXES = (":", "accept", "x-envoy-", "x-forwarded-")


def road_segments(envelope: Envelope, path_route: Route) -> list[TextSegment]:
    """Segments for the path, query parameters and headers of one request."""
    known = path_route.provider != "unknown"
    path, _, query = envelope.path.partition("?")
    path = path.partition("#")[0]
    out: list[TextSegment] = []
    if path.strip("/"):
        out.append(TextSegment("path", path))
    if query:
        skip = _CREDENTIAL_PARAMS.get(path_route.provider, frozenset()) if known else _ANY_CREDENTIAL_PARAM
        out.extend(_query(query.partition("#")[0], skip))
    credentials = _CREDENTIAL_HEADERS.get(path_route.provider, _ANY_CREDENTIAL_HEADER)
    sigv4 = path_route.provider in _SIGV4_PROVIDERS
    for i, (name, value) in enumerate(envelope.headers.items()):
        if not value or name in credentials or name in _TRANSPORT or name.startswith(_TRANSPORT_PREFIXES):
            continue
        if sigv4 and name.startswith(_SIGV4_PREFIX):
            continue
        if plain_key(name):
            out.append(TextSegment(f"headers.{name}", value))
        else:  # a name that could itself be a secret is not spelled; it is scanned with its value
            out.append(TextSegment(f"headers[#{i}]", f"{name}: {value}"))
    return out


def _query(query: str, skip: frozenset[str]) -> list[TextSegment]:
    out: list[TextSegment] = []
    seen: set[str] = set()
    for i, pair in enumerate(query.split("&")):
        if not pair:
            continue
        raw_name, eq, value = pair.partition("=")
        name = unquote_plus(raw_name)
        if name in skip:
            continue
        if plain_key(name) and name not in seen:
            seen.add(name)
            if value:
                out.append(TextSegment(f"query.{name}", value))
        else:
            out.append(TextSegment(f"query[#{i}]", pair))
    return out
