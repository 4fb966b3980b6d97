"""A fake Amazon Bedrock runtime that checks AWS Signature Version 4 the way AWS does.

A fake of an outside party (AWS cannot be reached from the tests). Like the real service it
recomputes the signature of every request it receives, with botocore's SigV4 implementation and
the credentials the test gave it, over the method, the path as received, the signed headers
(Host included) and the SHA-256 of the body, and answers:

- 200 with a Converse-shaped body when the signature, the credential scope (key id, date, region,
  service `bedrock`) and `x-amz-content-sha256` (the body's real hash) all match;
- 403 `InvalidSignatureException` (`x-amzn-errortype`) otherwise, with the reason.

Every request is recorded with its verdict, so a test can show what reached "AWS".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.recording import OwnedServer, RecordingServer

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r" ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes = field(repr=False)
    problem: str  # "" when the signature holds

    @property
    def valid(self) -> bool:
        return not self.problem


def signature_problem(
    method: str, path: str, headers: dict[str, str], body: bytes, credentials: Credentials, region: str,
    service: str = "bedrock",
) -> str:
    """Why AWS would reject this request ("" when it would accept it); `service`: the SigV4 service name."""
    m = _AUTH.match(headers.get("authorization", ""))
    if not m:
        return "no SigV4 Authorization header"
    if m["key"] != credentials.access_key:
        return f"signed with key id {m['key']}, not the gateway's"
    if (m["region"], m["service"]) != (region, service):
        return f"credential scope {m['region']}/{m['service']}, expected {region}/{service}"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(m["date"]):
        return "x-amz-date does not match the credential scope date"
    if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the SHA-256 of the body"
    if credentials.token and headers.get("x-amz-security-token") != credentials.token:
        return "x-amz-security-token is not the gateway's session token"
    signed = m["signature"]
    names = m["signed"].split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in names:
            return f"{required} is not signed"
    missing = [n for n in names if n not in headers]
    if missing:
        return f"signed headers missing from the request: {missing}"
    request = AWSRequest(
        method=method,
        url=f"https://{headers['host']}{path}",
        data=body,
        headers={n: headers[n] for n in names},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(credentials, service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, signed):
        return "signature does not match"
    return ""


_CONVERSE_OK = {
    "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
    "metrics": {"latencyMs": 1},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OwnedServer

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        owner = self.server.owner
        problem = signature_problem(self.command, self.path, headers, body, owner.credentials, owner.region)
        owner.record(SignedRequest(self.command, self.path, headers, body, problem))
        if problem:
            status, payload, extra = 403, {"message": problem}, {"x-amzn-errortype": "InvalidSignatureException"}
        else:
            status, payload, extra = 200, _CONVERSE_OK, {}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class FakeBedrock(RecordingServer[SignedRequest]):
    """Plain-HTTP fake of bedrock-runtime on 127.0.0.1 that verifies SigV4. Use as a context manager."""

    thread_name = "fake-bedrock"

    def __init__(self, credentials: Credentials, region: str = "us-east-1") -> None:
        self.credentials = credentials
        self.region = region
        super().__init__(_Handler)
