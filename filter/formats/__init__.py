"""Request decoding: Envelope -> ParsedRequest, every text the provider will read, located.

    decode_body      size checks, Content-Encoding (gzip, deflate, br, zstd, stacked) with caps
    detect_provider  `x-llm-provider` header, else the path
    parse            the decoder the path names (the header picks one only when the path names none);
                     unknown paths and shapes fall back to a raw scan of every string; protobuf APIs
                     (Connect / gRPC / gRPC-web, connect.py) are walked by wire format

Location scheme: decoders use the request's own field names and indices (`messages[3].content[1].text`);
JSON found inside a string continues after `$` (`...function.arguments$.path`); the raw fallback roots at
`$` (`$.a.b[2]`); a non-JSON body is `body`. Object keys are scanned too: long or unusual ones as
`<object location>#keys`, short field-like ones once each in a document-wide `#keys`. Outside the body:
`path`, `query.<name>`, `headers.<name>` (roads.py). Decoded, normalised and joined copies of text
(derive.py: `#urldecoded`, `$#decoded`, `#normalized`, `#base64`, `#joined`) carry an `origin`: their
findings are reported at the original location and offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from filter.formats import anthropic, bedrock, connect, gemini, openai, raw, sagemaker
from filter.formats.derive import derived, json_unescaped
from filter.formats.encoding import decode_body
from filter.formats.jsonload import JSONSyntaxError, has_lone_surrogates, load_json
from filter.formats.limits import DecodeLimits
from filter.formats.roads import road_segments
from filter.formats.routes import Route, detect_provider, provider_of, route
from filter.formats.walk import JSON, Walker
from filter.model import Envelope, ParsedRequest

__all__ = ["DecodeLimits", "decode_body", "detect_provider", "parse"]

_INVOKE = "bedrock.invoke"
_SAGEMAKER = "sagemaker.invocations"
_CONNECT = "connect"  # protobuf over Connect / gRPC / gRPC-web: not JSON (connect.py)
_Decoder = Callable[[dict[str, JSON], Walker], bool]
_DECODERS: dict[str, _Decoder] = {
    "openai.chat": openai.decode_chat,
    "openai.responses": openai.decode_responses,
    "openai.completions": openai.decode_completions,
    "openai.embeddings": openai.decode_embeddings,
    "openai": openai.decode_any,
    "anthropic.messages": anthropic.decode,
    "gemini.generate_content": gemini.decode,
    "bedrock.converse": bedrock.decode_converse,
    _SAGEMAKER: sagemaker.decode,
}
# When the path names no API, the provider header chooses the format.
_BY_PROVIDER = {
    "anthropic": "anthropic.messages",
    "openai": "openai",
    "azure": "openai",
    "mistral": "openai",
    "groq": "openai",
    "gemini": "gemini.generate_content",
    "bedrock": "bedrock.converse",
    "sagemaker": _SAGEMAKER,
    "copilot": "openai",
    "copilot-proxy": "openai.completions",
    "cursor": _CONNECT,
    "codeium": _CONNECT,
}
_DEFAULT_LIMITS = DecodeLimits()
_LOOKS_JSON = re.compile(rb'[ \t\r\n]*[\[{"]')
_JSON_MEDIA = re.compile(r"\s*application/(?:[\w.+-]*\+)?json\s*(?:;|$)")


class _NotJSON:
    pass


_NOT_JSON = _NotJSON()


def _load(body: bytes, limits: DecodeLimits, json_api: bool, content_type: str) -> JSON | _NotJSON:
    """JSON for a JSON API (errors are 400s); elsewhere JSON only if the body parses as JSON.

    A known JSON API is parsed as JSON whenever the body looks like JSON, whatever its content type says,
    because providers parse it anyway and only parsing undoes escapes.
    """
    looks_json = _LOOKS_JSON.match(body) is not None
    if json_api and (looks_json or "json" in content_type or not content_type):
        return load_json(body, limits)
    if not looks_json:
        return _NOT_JSON
    try:
        return load_json(body, limits)
    except JSONSyntaxError:
        return _NOT_JSON


def parse(envelope: Envelope, limits: DecodeLimits = _DEFAULT_LIMITS) -> ParsedRequest:
    """Decode, pick the decoder by path, and collect every segment. Raises only RequestError subclasses."""
    path_route = route(envelope.path)
    provider = provider_of(envelope, path_route)
    api = path_route.api or _BY_PROVIDER.get(provider, "")
    body = decode_body(envelope, limits)
    shown_provider = "raw" if provider == "unknown" else provider
    roads = road_segments(envelope, path_route)
    if not body or body.isspace():
        segments = (*roads, *derived(roads))
        return ParsedRequest(shown_provider, api or "raw", path_route.model, segments, stream=path_route.stream)

    if api == _CONNECT:
        w = Walker(limits, raw=True)
        stream = connect.decode(body, envelope.headers, w)
        body_segments = w.result()
        segments = (*body_segments, *roads, *derived((*body_segments, *roads), w.block_runs()))
        return ParsedRequest(shown_provider, _CONNECT, path_route.model, segments, stream=stream)

    content_type = envelope.headers.get("content-type", "").lower()
    # A SageMaker container takes any body: JSON only when it says so (else parsed if it parses, scanned as text if
    # not: JSON Lines, CSV, ...).
    json_api = bool(api) and (api != _SAGEMAKER or _JSON_MEDIA.match(content_type) is not None)
    doc = _load(body, limits, json_api, content_type)
    if isinstance(doc, _NotJSON):
        body_segments = raw.text_segments(body, content_type)
        if api == _SAGEMAKER:  # JSON Lines and the like: their \u escapes undone too (`body$#decoded`)
            unescaped = json_unescaped(body_segments[0])
            body_segments = body_segments if unescaped is None else (*body_segments, unescaped)
        segments = (*body_segments, *roads, *derived((*body_segments, *roads)))
        shown_api = _SAGEMAKER if api == _SAGEMAKER else "raw"  # a text body is one of SageMaker's own formats
        return ParsedRequest(shown_provider, shown_api, path_route.model, segments, stream=path_route.stream)

    w = Walker(limits, scrub_surrogates=has_lone_surrogates(body))
    api = _decode(doc, w, api, path_route)
    body_segments = w.result()
    return ParsedRequest(
        provider=shown_provider,
        api=api,
        model=path_route.model or w.model,
        segments=(*body_segments, *roads, *derived((*body_segments, *roads), w.block_runs())),
        max_output_tokens=w.max_output_tokens,
        image_count=w.image_count,
        stream=path_route.stream or w.stream,
    )


def _decode(doc: JSON, w: Walker, api: str, path_route: Route) -> str:
    """Run the decoder; on a shape it does not know, scan raw. Returns the api name to report.

    Valid JSON is never refused for its shape: the provider decides what it accepts, the filter only has
    to see every string in it.
    """
    if isinstance(doc, dict):
        if api == _INVOKE:
            if not bedrock.decode_invoke(doc, w, path_route.model):
                raw.walk_json(doc, w)
            return _INVOKE
        decoder = _DECODERS.get(api)
        if decoder is not None and decoder(doc, w):
            return _api_name(api, doc)
    raw.walk_json(doc, w)
    return _SAGEMAKER if api == _SAGEMAKER else "raw"  # any body is one of a SageMaker container's formats


def _api_name(api: str, doc: dict[str, JSON]) -> str:
    if api != "openai":
        return api
    if "messages" in doc:
        return "openai.chat"
    return "openai.responses" if "input" in doc or "instructions" in doc else "openai.completions"
