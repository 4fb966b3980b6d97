"""Request factories: the pipeline's input (Envelope) and what Envoy sends the filter (CheckRequest)."""

from __future__ import annotations

import json

from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2

from filter.model import Envelope


def body_bytes(body: object) -> bytes:
    """Bytes as given, text as UTF-8, anything else as JSON."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return body.encode() if isinstance(body, str) else body


def make_envelope(body: object, path: str = "/v1/chat/completions", headers: dict[str, str] | None = None,
                  method: str = "POST", partial: bool = False) -> Envelope:
    """A request as the pipeline sees it; content-type application/json unless `headers` say otherwise."""
    return Envelope(method, path, {"content-type": "application/json", **(headers or {})}, body_bytes(body), partial)


def make_check_request(body: object, path: str = "/v1/chat/completions", headers: dict[str, str] | None = None,
                       method: str = "POST") -> external_auth_pb2.CheckRequest:
    """A CheckRequest as Envoy builds it with with_request_body + pack_as_bytes."""
    data = body_bytes(body)
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method=method, path=path, host="gateway", scheme="http", protocol="HTTP/1.1",
        headers={"content-type": "application/json", **(headers or {})}, raw_body=data, size=len(data),
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(request=attribute_context_pb2.AttributeContext.Request(http=http))
    )
