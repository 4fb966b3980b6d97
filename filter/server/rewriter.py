"""envoy.service.ext_proc.v3.ExternalProcessor/Process for the gateway's rewriter: redaction of request bodies.

Envoy runs its rewriter filter (envoy.yaml, `llm_rewriter`) only on a request the Check marked with
`x-llm-filter-rewrite: <decision id>` (verdict rewrite, reason `redacted`); every other request skips it without a
call. For a marked request Envoy sends, on one stream:

1. the request headers: the answer removes the marks (and `accept-encoding` when the answer is to be rehydrated,
   so it comes back readable) and, for rehydration, asks for the response headers and body too (mode override);
2. the whole request body (BUFFERED): it is evaluated again with the live rule set and policy (the same verdict
   as the Check's for the same snapshot), rewritten by filter.rewrite (placeholders for the values), scanned once
   more to prove nothing to redact is left, and answered as a body mutation with its Content-Length (and
   Content-Encoding dropped when the body comes back uncompressed);
3. with rehydration, the response headers (Content-Length removed: the length changes) and each body chunk,
   answered with the chunk with every placeholder of this request put back (a placeholder split across chunks is
   held back until it is whole).

Fail closed: anything that goes wrong before the body leaves is an ImmediateResponse in the provider's error shape
(a 400 naming the finding's category when a value cannot be replaced, a 503 for a failure of the filter); Envoy's
`failure_mode_allow: false` refuses the request when this service cannot be reached. The placeholder map lives
in this stream's memory only and is never logged.

`RewriteExchange` is the logic of one stream (messages in, answers out, no gRPC); the servicer only loops.

The rewriter has a grpc.aio server of its own (`AsyncRewriterServer`, the filter's `rewriter_listen`), apart from
the Check server's threads: a rehydrated answer keeps its stream open for as long as the provider streams (minutes),
and on the Check threads a handful of those would starve every Check. Here an open stream costs no thread. The CPU
work (evaluating and rewriting a body of up to 16 MiB, rehydrating a big chunk) runs in a small thread pool of its
own; a small chunk is rehydrated on the event loop. Over `max_streams` open streams, or with `max_rewrites` bodies
(or `limits.max_inflight_bytes` of them) already being rewritten or waiting, a request is refused at once
(503 `overloaded`, Retry-After): never forwarded unrewritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.type.v3 import http_status_pb2

from filter import formats
from filter import headers as hdr
from filter.audit import AuditLog
from filter.model import Category, Decision, Envelope, Identity
from filter.pipeline import evaluate, new_decision_id
from filter.policy import DENY_STATUS, refuse, rewritable
from filter.reasons import Reason
from filter.rewrite import Placeholders, Rehydrator, RewriteError, rehydrator_for, rewrite
from filter.runtime import Runtime
from filter.server.admission import with_retry_after
from filter.server.aioserver import AioServerThread
from filter.server.extproc import EXT_AUTHZ_NAMESPACE, SERVICE_NAME, header_map, read_info
from filter.server.response import error_body
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter

log = logging.getLogger("llm_content_filter")

_BUFFERED = processing_mode_pb2.ProcessingMode
_REHYDRATE_MODE = processing_mode_pb2.ProcessingMode(
    request_header_mode=_BUFFERED.SEND,
    request_body_mode=_BUFFERED.BUFFERED,
    response_header_mode=_BUFFERED.SEND,
    response_body_mode=_BUFFERED.STREAMED,
    request_trailer_mode=_BUFFERED.SKIP,
    response_trailer_mode=_BUFFERED.SKIP,
)
# Measured on a development machine: an SSE chunk costs ~0.2 ms per KiB to
# rehydrate, a JSON one ~4 ms per MiB. Provider streams send small chunks (a few tokens): those stay on the event
# loop; a bigger one goes to the pool so it cannot stall the other streams.
LOOP_CHUNK_BYTES = 8 * 1024
REWRITE_THREADS = 2  # a worker's rewriting threads: next to its 8 Check threads, under the same GIL
DEFAULT_MAX_STREAMS = 1024  # open rewriter streams per worker (a rehydrated answer holds one while it streams)
# Bodies being rewritten or waiting for a thread, per thread (as many as the Check server holds RPCs): a burst of
# requests to redact waits its turn; more are refused. Their bytes are bounded too (limits.max_inflight_bytes).
_REWRITES_PER_THREAD = 16
_GRPC_OVERHEAD = 1024 * 1024  # headers and framing on top of the largest admitted body
_REASON = {Category.SECRET: Reason.SECRET_DETECTED, Category.FILE: Reason.RESTRICTED_FILE,
           Category.PII: Reason.PII_DETECTED}


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What the request headers told the rewriter: the request, the Check's decision id and identity."""

    method: str
    path: str
    headers: Mapping[str, str] = field(repr=False)
    decision_id: str
    rehydrate: bool
    identity: Identity


class RewriteExchange:
    """One request (and its answer) through the rewriter. `handle` answers each of Envoy's messages."""

    def __init__(self, runtime: Runtime, counter: TokenCounter, telemetry: Telemetry,
                 audit: AuditLog | None = None) -> None:
        self._runtime = runtime
        self._counter = counter
        self._telemetry = telemetry
        self._audit = audit
        self.head: RequestHead | None = None
        self._replaced: Mapping[str, str] = {}  # placeholder -> value: this stream's memory only
        self._rehydrator: Rehydrator | None = None
        self.result: str | None = None  # llm_filter_rewrites result, once the body was handled
        self._rehydration: str | None = None

    # -- messages --------------------------------------------------------------------------------------------

    def handle(self, request: ep.ProcessingRequest) -> ep.ProcessingResponse | None:
        kind = request.WhichOneof("request")
        if kind == "request_headers":
            return self._on_request_headers(request)
        if kind == "request_body":
            return self._on_request_body(request.request_body)
        if kind == "response_headers":
            return self._on_response_headers(request.response_headers)
        if kind == "response_body":
            return self._on_response_body(request.response_body)
        if kind == "request_trailers":
            return ep.ProcessingResponse(request_trailers=ep.TrailersResponse())
        if kind == "response_trailers":
            return ep.ProcessingResponse(response_trailers=ep.TrailersResponse())
        return None

    def cut_off(self) -> None:
        """The stream ended early (Envoy reset it, the client went away)."""
        if self._rehydrator is not None and self._rehydration is None:
            self._rehydration = "failed"
            self._telemetry.rehydrations.add(1, {"result": "failed"})

    def _on_request_headers(self, request: ep.ProcessingRequest) -> ep.ProcessingResponse:
        found = header_map(request.request_headers.headers)
        decision_id = found.get(hdr.REWRITE, "")
        metadata = request.metadata_context.filter_metadata.get(EXT_AUTHZ_NAMESPACE)
        identity = Identity()
        if metadata is not None and decision_id and metadata.fields.get("decision_id") is not None \
                and metadata.fields["decision_id"].string_value == decision_id:
            identity = read_info(metadata).identity  # the Check's own (masked) identity: the same scope
        rehydrate = found.get(hdr.REHYDRATE) == "1"
        self.head = RequestHead(
            method=found.get(":method", "POST"), path=found.get(":path", "/"),
            headers={k: v for k, v in found.items() if not k.startswith(":")},
            decision_id=decision_id or new_decision_id(), rehydrate=rehydrate, identity=identity,
        )  # fmt: skip
        # The marks are for this gateway only; with rehydration the answer must come back readable.
        remove = [hdr.REWRITE, hdr.REHYDRATE] + (["accept-encoding"] if rehydrate else [])
        answer = ep.ProcessingResponse(request_headers=ep.HeadersResponse(response=ep.CommonResponse(
            header_mutation=ep.HeaderMutation(remove_headers=remove))))
        if rehydrate:
            answer.mode_override.CopyFrom(_REHYDRATE_MODE)
        return answer

    def _on_request_body(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        head = self.head
        started = time.perf_counter()
        if head is None or not body.end_of_stream:  # BUFFERED sends the whole body at once, after the headers
            return self._fail("the rewriter got a request body it cannot handle (not buffered)")
        try:
            return self._rewrite(head, body.body)
        except Exception:  # fail closed: never forward the body as sent
            log.exception("rewrite of %s failed", head.decision_id)
            return self._fail("the content filter failed to redact this request")
        finally:
            log.debug("rewrite of %s: %s in %.1f ms", head.decision_id, self.result,
                      (time.perf_counter() - started) * 1000)

    def _rewrite(self, head: RequestHead, body: bytes) -> ep.ProcessingResponse:
        envelope = Envelope(head.method, head.path, head.headers, body)
        snapshot = self._runtime.current
        outcome = evaluate(envelope, snapshot, self._counter, head.identity, head.decision_id, rewritable)
        decision = outcome.decision
        if not decision.allowed:  # the live policy refuses it now (a reload since the Check): its own deny
            return self._refuse(decision, outcome.parsed is not None)
        if not decision.rewrite or outcome.parsed is None:
            self._count("unchanged")
            return ep.ProcessingResponse(request_body=ep.BodyResponse())
        placeholders = Placeholders(self._runtime.key, head.identity.workspace or "")
        try:
            out = rewrite(envelope, outcome.parsed, outcome.to_redact, placeholders, rules=snapshot.ruleset,
                          limits=snapshot.settings.limits)
        except RewriteError as e:
            category = min((f.category for f in outcome.to_redact), key=_severity)
            return self._refuse(refuse(
                DENY_STATUS, _REASON[category], f"Request blocked by the content filter: {category.value} found "
                f"that cannot be redacted ({e})", decision_id=head.decision_id, provider=decision.provider,
                identity=decision.identity, body_bytes=len(body), pack_digest=snapshot.ruleset.digest,
            ), True)  # fmt: skip
        rewritten = Envelope(head.method, head.path, {**head.headers, "content-encoding": out.content_encoding},
                             out.body)
        check = evaluate(rewritten, snapshot, self._counter, head.identity, head.decision_id, rewritable)
        if not check.decision.allowed or check.decision.rewrite:  # a value survived: never send it
            log.error("rewrite of %s left a value to redact in the body (%s); refused", head.decision_id,
                      ", ".join(sorted({f.rule_id for f in check.decision.findings})))
            return self._fail("the content filter could not redact this request")
        self._replaced = out.replaced
        self._count("rewritten" if out.changed else "unchanged")
        mutation = ep.HeaderMutation(set_headers=[_header("content-length", str(len(out.body)))])
        if out.content_encoding != envelope.content_encoding:
            if out.content_encoding:
                mutation.set_headers.append(_header("content-encoding", out.content_encoding))
            else:
                mutation.remove_headers.append("content-encoding")
        return ep.ProcessingResponse(request_body=ep.BodyResponse(response=ep.CommonResponse(
            header_mutation=mutation, body_mutation=ep.BodyMutation(body=out.body))))

    def _on_response_headers(self, message: ep.HttpHeaders) -> ep.ProcessingResponse:
        found = header_map(message.headers)
        answer = ep.ProcessingResponse(response_headers=ep.HeadersResponse())
        coding = found.get("content-encoding", "").strip().lower()
        if self.head is None or not self.head.rehydrate or not self._replaced or coding not in ("", "identity"):
            return answer  # nothing to put back (or an encoded answer: it keeps its placeholders)
        self._rehydrator = rehydrator_for(found.get("content-type", ""), self._replaced)
        answer.response_headers.response.header_mutation.remove_headers.append("content-length")
        return answer

    def _on_response_body(self, message: ep.HttpBody) -> ep.ProcessingResponse:
        rehydrator = self._rehydrator
        if rehydrator is None:
            return ep.ProcessingResponse(response_body=ep.BodyResponse())
        try:
            chunk = rehydrator.feed(message.body)
            if message.end_of_stream or message.end_of_stream_without_message:
                chunk += rehydrator.finish()
                self._rehydration = "completed"
                self._telemetry.rehydrations.add(1, {"result": "completed"})
        except Exception:  # headers are gone already: the stream is reset rather than sent half rehydrated
            log.exception("rehydration of %s failed", self.head.decision_id if self.head else "-")
            self._rehydration = "failed"
            self._telemetry.rehydrations.add(1, {"result": "failed"})
            return _immediate(502, b'{"error":{"message":"The gateway could not finish this answer."}}', {})
        return ep.ProcessingResponse(response_body=ep.BodyResponse(response=ep.CommonResponse(
            body_mutation=ep.BodyMutation(body=chunk))))

    # -- answers ---------------------------------------------------------------------------------------------

    def _count(self, result: str) -> None:
        self.result = result
        self._telemetry.rewrites.add(1, {"result": result})

    def _refuse(self, decision: Decision, parsed: bool) -> ep.ProcessingResponse:
        """The live policy's deny, or a value that cannot be replaced: the provider's own error shape."""
        self._count("refused")
        self._record(decision)
        body, extra = error_body(decision)
        return _immediate(decision.http_status, json.dumps(body, separators=(",", ":")).encode(),
                          hdr.deny_headers(decision, extra))

    def busy(self) -> ep.ProcessingResponse:
        """The answer when the rewriter is at its bounds: a 503 the client may retry, never the body as sent."""
        return self._fail("The content filter is redacting too many requests at once; retry later",
                          Reason.OVERLOADED, "busy")

    def _fail(self, message: str, reason: Reason = Reason.INTERNAL_ERROR,
              result: str = "failed") -> ep.ProcessingResponse:
        head = self.head
        decision = with_retry_after(refuse(
            503, reason, message, decision_id=head.decision_id if head else "-",
            provider=formats.detect_provider(Envelope(head.method, head.path, head.headers, b"")) if head
            else "unknown", identity=head.identity if head else Identity(), body_bytes=0, pack_digest=""))
        self._count(result)
        self._record(decision)
        body, extra = error_body(decision)
        return _immediate(503, json.dumps(body, separators=(",", ":")).encode(), hdr.deny_headers(decision, extra))

    def _record(self, decision: Decision) -> None:
        """An audit line for a request the rewriter refused (the Check's line said it would be rewritten)."""
        if self._audit is None:
            return
        try:
            self._audit.record(decision, None, 0.0, "", self.head.method if self.head else "")
        except Exception:
            log.exception("audit of %s failed", decision.decision_id)


def _severity(category: Category) -> int:
    return {Category.SECRET: 0, Category.FILE: 1, Category.PII: 2}[category]


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, raw_value=value.encode()))


def _immediate(status: int, body: bytes, headers: Mapping[str, str]) -> ep.ProcessingResponse:
    return ep.ProcessingResponse(immediate_response=ep.ImmediateResponse(
        status=http_status_pb2.HttpStatus(code=status),
        headers=ep.HeaderMutation(set_headers=[_header(k, v) for k, v in headers.items()]),
        body=body,
    ))


class AsyncRewriterServicer(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """Thin: one RewriteExchange per stream, on a grpc.aio server. Bodies, and big response chunks, are handled in
    `pool`; small chunks and headers on the event loop. Bounds: `max_streams` open streams, `max_rewrites` bodies
    in the pool (running or waiting) and their bytes (`limits.max_inflight_bytes` of the live settings); beyond
    any of them the request is refused at once (`RewriteExchange.busy`)."""

    def __init__(self, runtime: Runtime, counter: TokenCounter, telemetry: Telemetry, audit: AuditLog | None,
                 pool: Executor, max_streams: int = DEFAULT_MAX_STREAMS,
                 max_rewrites: int = REWRITE_THREADS * _REWRITES_PER_THREAD) -> None:
        self.runtime = runtime
        self.counter = counter
        self.telemetry = telemetry
        self.audit = audit
        self._pool = pool
        self._max_streams = max_streams
        self._max_rewrites = max_rewrites
        self._open = 0  # streams and bodies: counted on the event loop's thread only
        self._rewriting = 0
        self._rewriting_bytes = 0

    async def Process(self, request_iterator: AsyncIterator[ep.ProcessingRequest],  # noqa: N802 (grpc name)
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[ep.ProcessingResponse]:
        exchange = RewriteExchange(self.runtime, self.counter, self.telemetry, self.audit)
        if self._open >= self._max_streams:
            async for request in request_iterator:  # the request headers: read for the error's shape only
                exchange.handle(request)
                yield exchange.busy()
                return
            return
        self._open += 1
        try:
            async for request in request_iterator:
                answer = await self._answer(exchange, request)
                if answer is not None:
                    yield answer
                    if answer.WhichOneof("response") == "immediate_response":
                        return
        finally:  # also on cancellation (Envoy reset the stream, the client went away)
            self._open -= 1
            exchange.cut_off()  # counts a rehydration that did not complete

    async def _answer(self, exchange: RewriteExchange,
                      request: ep.ProcessingRequest) -> ep.ProcessingResponse | None:
        kind = request.WhichOneof("request")
        if kind == "request_body":
            size = len(request.request_body.body)
            if self._rewriting >= self._max_rewrites or self._rewriting and \
                    self._rewriting_bytes + size > self.runtime.current.settings.limits.max_inflight_bytes:
                return exchange.busy()
            self._rewriting += 1
            self._rewriting_bytes += size
            try:
                return await asyncio.get_running_loop().run_in_executor(self._pool, exchange.handle, request)
            finally:
                self._rewriting -= 1
                self._rewriting_bytes -= size
        if kind == "response_body" and len(request.response_body.body) > LOOP_CHUNK_BYTES:
            return await asyncio.get_running_loop().run_in_executor(self._pool, exchange.handle, request)
        return exchange.handle(request)


class AsyncRewriterServer(AioServerThread):
    """The rewriter (and gRPC health for it) on a grpc.aio server in its own thread and event loop, with its own
    thread pool for the CPU work:

        rewriter = AsyncRewriterServer("127.0.0.1:9201", runtime, counter, telemetry, audit)
        port = rewriter.start()
        ...
        rewriter.stop(grace=10.0)
    """

    def __init__(self, listen: str, runtime: Runtime, counter: TokenCounter, telemetry: Telemetry,
                 audit: AuditLog | None = None, max_streams: int = DEFAULT_MAX_STREAMS,
                 threads: int = REWRITE_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rewrite")
        servicer = AsyncRewriterServicer(runtime, counter, telemetry, audit, self._pool, max_streams,
                                         threads * _REWRITES_PER_THREAD)
        # Envoy sends a body of up to max_body_bytes in one message; the answer carries the rewritten body.
        message_limit = runtime.current.settings.limits.max_body_bytes + _GRPC_OVERHEAD
        super().__init__(
            listen, "rewriter", SERVICE_NAME,
            lambda server: external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(servicer, server),
            # a backstop behind the servicer's own bound (which answers in the provider's shape): Envoy answers
            # RESOURCE_EXHAUSTED with its fail-closed 503
            max_streams=max_streams + 64,
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
                ("grpc.so_reuseport", 0),
                ("grpc.http2.bdp_probe", 0),  # no window growth: a waiting stream holds ~64 KiB, not its body
            ])

    def stop(self, grace: float | None = None) -> None:
        super().stop(grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
