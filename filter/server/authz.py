"""envoy.service.auth.v3.Authorization/Check: CheckRequest -> Envelope -> pipeline -> CheckResponse."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import json_format

from filter import budgets, formats
from filter.audit import AuditLog
from filter.errors import DeadlineExceeded, Overloaded, WorkLimitExceeded
from filter.identity import identify
from filter.model import Envelope
from filter.pipeline import Evaluation, evaluate, new_decision_id, outer_redactor
from filter.policy import refuse, rewritable
from filter.reasons import Reason
from filter.redact import MASK, Redactor
from filter.runtime import Runtime, Snapshot
from filter.server.admission import Admission, with_retry_after
from filter.server.response import to_check_response
from filter.store import Store
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter

log = logging.getLogger("llm_content_filter")
JWT_METADATA_NAMESPACE = "envoy.filters.http.jwt_authn"
# gRPC metadata the gateway sends with each Check when it runs the rewriter (envoy.yaml, ext_authz initial_metadata).
# Without it a finding to redact blocks: no gateway config can forward a body the policy says to rewrite as is.
REWRITER_METADATA = "x-llm-filter-rewriter"


def gateway_rewrites(context: grpc.ServicerContext) -> bool:
    try:
        return any(k == REWRITER_METADATA and v == "1" for k, v in context.invocation_metadata() or ())
    except Exception:  # a test double without metadata
        return False


def read_envelope(request: external_auth_pb2.CheckRequest) -> Envelope:
    http = request.attributes.request.http
    headers = {k.lower(): v for k, v in http.headers.items()}
    for h in http.header_map.headers:  # Envoy's encode_raw_headers form
        headers[h.key.lower()] = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
    # Read the field once: each access copies it out of the message (16 MiB at the limit).
    body = http.raw_body or http.body.encode("utf-8", "surrogatepass")
    return Envelope(
        method=http.method or "POST",
        path=http.path or "/",
        headers=headers,
        body=body,  # a partial body (x-envoy-auth-partial-body) is refused by formats.encoding.check_size
    )


def jwt_claims(request: external_auth_pb2.CheckRequest) -> dict[str, Any] | None:
    """Verified JWT payload that Envoy's jwt_authn put in metadata (payload_in_metadata), if any."""
    meta = request.attributes.metadata_context.filter_metadata
    if JWT_METADATA_NAMESPACE not in meta:
        return None
    entries = json_format.MessageToDict(meta[JWT_METADATA_NAMESPACE])
    # Either {"<payload_in_metadata name>": {claims}} or the claims themselves.
    for value in entries.values():
        if isinstance(value, dict):
            return value
    return entries or None


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, runtime: Runtime, counter: TokenCounter, audit: AuditLog, telemetry: Telemetry,
                 store: Store | None = None, rewriter: bool = True) -> None:
        self.runtime = runtime
        self.rewriter = rewriter  # this worker serves the rewriter (rewriter_listen); False: redaction blocks
        self.counter = counter
        self.audit = audit
        self.telemetry = telemetry
        self.store = store  # token budgets shared by all workers (filter/store); None: no store configured
        self.admission = Admission()  # this worker's in-flight byte budget, shared by its Check threads

    def Check(self, request: external_auth_pb2.CheckRequest, context: grpc.ServicerContext) -> external_auth_pb2.CheckResponse:  # noqa: N802
        started = time.perf_counter()
        snapshot = self.runtime.current  # read once: a reload mid-request does not mix rule sets
        decision_id = new_decision_id()
        envelope = read_envelope(request)
        try:
            identity = identify(envelope.headers, jwt_claims(request), snapshot.settings.policy.trust_identity_headers)
            # Bounded work: a byte budget per worker, CPU seconds and Envoy's deadline per Check (admission.py).
            with self.admission.admit(len(envelope.body), snapshot.settings.limits, context.time_remaining()):
                outcome = evaluate(envelope, snapshot, self.counter, identity, decision_id,
                                   rewritable if self.rewriter and gateway_rewrites(context) else None)
            # Token budgets (filter.budgets): outside the admission block, as a store call may wait on a lock.
            reserved = budgets.reserve(outcome.decision, outcome.parsed, outcome.scope, snapshot.policy, self.store)
            if reserved is not outcome.decision:
                outcome = replace(outcome, decision=reserved)
            redactor: Redactor | None = outcome.redactor
        except (Overloaded, DeadlineExceeded, WorkLimitExceeded) as e:  # work bounds (admission.py), after the parse too
            outcome = Evaluation(refuse(
                e.http_status, e.reason, e.message, decision_id=decision_id,
                provider=formats.detect_provider(envelope), identity=identify({}, None, False),
                body_bytes=len(envelope.body), pack_digest=snapshot.ruleset.digest,
            ), None)  # fmt: skip
            redactor = _fallback_redactor(envelope, snapshot)
        except Exception:  # fail closed: any bug answers a deny, never an allow, never a hang
            log.exception("check %s failed", decision_id)
            outcome = Evaluation(refuse(
                503, Reason.INTERNAL_ERROR, "The content filter failed on this request.", decision_id=decision_id,
                provider=formats.detect_provider(envelope), identity=identify({}, None, False),
                body_bytes=len(envelope.body), pack_digest=snapshot.ruleset.digest,
            ), None)  # fmt: skip
            redactor = _fallback_redactor(envelope, snapshot)
        decision = with_retry_after(outcome.decision)
        # The query string can carry a provider key (Gemini `?key=`): only the path is written out, masked.
        path = redactor.path(envelope.path) if redactor is not None else MASK
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            self.audit.record(decision, outcome.parsed, latency_ms, path, envelope.method, redactor)
            self.telemetry.observe(decision, latency_ms)
            if outcome.scope is not None:
                self.telemetry.saw_budgets((*outcome.scope.budgets, *outcome.scope.usd_budgets))
        except Exception:
            log.exception("audit of %s failed", decision_id)
        return to_check_response(decision, path)


def _fallback_redactor(envelope: Envelope, snapshot: Snapshot) -> Redactor | None:
    """After a failed check: mask what the rules find in the path; None (write no path) if that fails too."""
    try:
        return outer_redactor(envelope, snapshot)
    except Exception:
        log.exception("scanning the path of a failed check failed")
        return None
