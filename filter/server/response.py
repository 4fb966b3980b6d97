"""Decision -> CheckResponse: OK with header mutations, or a deny in the provider's own error shape."""

from __future__ import annotations

import json
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from filter import headers
from filter.model import Decision

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
                    429: "rate_limit_error", 503: "api_error"}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
_BEDROCK_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 413: "ValidationException",
                  415: "ValidationException", 429: "ThrottlingException", 503: "ServiceUnavailableException"}


def _details(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id,
        "reason": decision.reason,
        "findings": [
            {"rule": f.rule_id, "category": f.category.value, "location": f.location, "start": f.start, "end": f.end}
            for f in decision.findings
        ],
    }


# Providers whose errors come in another provider's shape: Vertex AI answers as Google APIs do, SageMaker as AWS.
_SHAPE_OF = {"vertex": "gemini", "sagemaker": "bedrock"}


def error_shape(provider: str) -> str:
    """The provider whose error shape `provider`'s clients read (OpenAI's for the OpenAI-compatible ones)."""
    return _SHAPE_OF.get(provider, provider)


def error_body(decision: Decision) -> tuple[dict[str, Any], dict[str, str]]:
    """The deny body a client of this provider already knows how to read, plus extra headers."""
    status, message, details = decision.http_status, decision.message, _details(decision)
    provider = error_shape(decision.provider)
    if provider == "anthropic":
        error_type = _ANTHROPIC_TYPES.get(status, "invalid_request_error")
        return {"type": "error", "error": {"type": error_type, "message": message, "llm_filter": details}}, {}
    if provider == "gemini":
        return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
                          "details": [{"@type": "llm-content-filter/decision", **details}]}}, {}
    if provider == "bedrock":
        error_type = _BEDROCK_TYPES.get(status, "ValidationException")
        return {"message": message, "llm_filter": details}, {headers.AMZN_ERROR_TYPE: error_type}
    # as OpenAI types its own errors: a 429 (token budget) must read as a rate limit, not a bad request
    error_type = "rate_limit_exceeded" if status == 429 else "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": error_type, "code": details["reason"], "param": None,
                      "llm_filter": details}}, {}


def rate_limited_body(provider: str, message: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A 429 in the shape each provider's SDK reads as its own rate limit (and so retries after `retry-after`)."""
    provider = error_shape(provider)
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}, {}
    if provider == "gemini":
        return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}, {}
    if provider == "bedrock":
        return {"message": message}, {headers.AMZN_ERROR_TYPE: "ThrottlingException"}
    # OpenAI and the OpenAI-compatible APIs (Azure OpenAI, Mistral, Groq), and any route that names no provider
    return {"error": {"message": message, "type": "rate_limit_exceeded", "param": None,
                      "code": "rate_limit_exceeded"}}, {}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE)


MAX_METADATA_MODEL = 256  # a longer model name is left out of the metadata (the usage observer reads it instead)


def dynamic_metadata(decision: Decision, path: str) -> struct_pb2.Struct:
    """What Envoy's rate limit descriptors and access log read (namespace envoy.filters.http.ext_authz): verified
    identity only (a field is left out when unknown), the masked path without query, the decision id and reason.

    On allow also what the usage observer needs, as Envoy forwards this namespace to it and its stream may reach
    another worker than the Check did: the identity's `source` (jwt | headers | none: which values may become
    metric labels), the request's `model`, and `usd_in`/`usd_out` (USD per million tokens) when a USD budget
    reservation was made, so it is settled at the real cost there."""
    metadata = struct_pb2.Struct()
    values: dict[str, str | float] = {"decision_id": decision.decision_id, "reason": decision.reason, "path": path}
    for name, value in headers.identity_values(decision.identity).items():
        if value:
            values[f"{name}_id"] = value
    if decision.allowed:
        values["source"] = decision.identity.source
        if decision.model and len(decision.model) <= MAX_METADATA_MODEL:
            values["model"] = decision.model
        if decision.usd_price is not None:
            values["usd_in"], values["usd_out"] = decision.usd_price
    metadata.update(values)
    return metadata


def to_check_response(decision: Decision, path: str = "") -> external_auth_pb2.CheckResponse:
    """`path` is the request path as it may be written out (masked, no query)."""
    metadata = dynamic_metadata(decision, path)
    if decision.allowed:
        # A request to rewrite carries x-llm-filter-rewrite (the gateway runs its rewriter on it); any other never
        # does (Envoy strips client copies before routing; removed here again so no config can let one through).
        unmarked = [] if decision.rewrite else [h for h in (headers.REWRITE, headers.REHYDRATE)
                                                 if h not in decision.headers]
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=[_header(k, v) for k, v in (*decision.headers.items(), *decision.edits.set_headers)],
                headers_to_remove=[*headers.identity_headers_to_remove(decision.identity),
                                   *decision.edits.remove_headers, *unmarked],
                query_parameters_to_remove=decision.edits.remove_query,  # a client's key (credential injection)
            ),
            dynamic_metadata=metadata,
        )
    body, extra = error_body(decision)
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.http_status),
            headers=[_header(k, v) for k, v in headers.deny_headers(decision, extra).items()],
            body=json.dumps(body, separators=(",", ":")),
        ),
        dynamic_metadata=metadata,
    )
