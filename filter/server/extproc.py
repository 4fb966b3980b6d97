"""envoy.service.ext_proc.v3.ExternalProcessor/Process: reads token usage off provider responses.

Envoy streams each exchange to Process: request headers (the path names the provider and API; ext_authz has
added `x-llm-filter-id` and `x-llm-prompt-tokens`), response headers (status, content type) and the response
body chunk by chunk. Nothing is ever changed: each message is answered at once with an empty CONTINUE
response, or not at all when Envoy runs the filter in observability mode (it then waits for no answer). When
the response ends, or the exchange is cut off, `on_usage(decision_id, provider, model, usage, status)` is
called once: `usage` is None for an error status (>= 400) or when no response arrived (status 0), and
`estimated` when the response carried no usage. A callback that takes an `info` keyword also gets the
`UsageInfo` of the allow the filter's Check answered (ext_authz's dynamic metadata, which Envoy forwards here):
the Check may have run in another worker, so this is what the request itself says about its identity and price.
Malformed input is logged and read past, never raised.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from filter import headers as hdr
from filter.formats.routes import PROVIDERS, route
from filter.model import Identity
from filter.scopes import Price
from filter.server.aioserver import AioServerThread
from filter.usage import Usage, UsageParser
from filter.usage.estimate import CountText

log = logging.getLogger("llm_content_filter")

SERVICE_NAME = "envoy.service.ext_proc.v3.ExternalProcessor"
OnUsage = Callable[..., None]  # (decision_id, provider, model, usage, status[, info=UsageInfo | None])
EXT_AUTHZ_NAMESPACE = "envoy.filters.http.ext_authz"  # its dynamic metadata carries decision_id too
_DECISION_ID_MAX = 64
_DECISION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # the filter's ids; anything else is not one of them
_SOURCES = frozenset({"jwt", "headers", "none"})
_MAX_PRICE = 1e9  # USD per million tokens; anything above is not a price the filter set
_MAX_VALUE = 4096  # a longer identity value or model name is not one the filter forwarded
_MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a streamed body chunk is one of Envoy's buffer slices, far smaller
_SKIP_BODY = processing_mode_pb2.ProcessingMode(
    response_body_mode=processing_mode_pb2.ProcessingMode.NONE,
    response_trailer_mode=processing_mode_pb2.ProcessingMode.SKIP,
)


@dataclass(frozen=True, slots=True)
class UsageInfo:
    """What the filter's Check put in ext_authz's dynamic metadata for this request: the verified identity (its
    `source` says whether the values came from a verified JWT or from trusted headers), the request's model, and
    the USD price of its USD budget reservation (None: no reservation to settle in USD)."""

    identity: Identity
    model: str | None = None
    usd_price: Price | None = None


def read_info(fields: struct_pb2.Struct) -> UsageInfo:
    """The usage info in ext_authz's metadata; a field of the wrong type or out of range is left out."""
    def text(name: str, limit: int = _DECISION_ID_MAX) -> str | None:
        value = fields.fields.get(name)
        if value is None or value.WhichOneof("kind") != "string_value" or not value.string_value:
            return None
        return value.string_value if len(value.string_value) <= limit else None

    def number(name: str) -> float | None:
        value = fields.fields.get(name)
        if value is None or value.WhichOneof("kind") != "number_value":
            return None
        found = value.number_value
        return found if math.isfinite(found) and 0 <= found <= _MAX_PRICE else None

    source = text("source")
    identity = Identity(
        workspace=text("workspace_id", _MAX_VALUE), team=text("team_id", _MAX_VALUE),
        project=text("project_id", _MAX_VALUE), agent=text("agent_id", _MAX_VALUE),
        # an older filter wrote no source: its values count as header values (labels only if the policy names them)
        source=source if source in _SOURCES else "headers",
    )
    usd_in, usd_out = number("usd_in"), number("usd_out")
    price = Price(usd_in, usd_out) if usd_in is not None and usd_out is not None else None
    return UsageInfo(identity, text("model", _MAX_VALUE), price)


def _takes_info(on_usage: Callable[..., None]) -> bool:
    """Whether a usage callback accepts the `info` keyword (older callbacks take the five values only)."""
    try:
        parameters = inspect.signature(on_usage).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "info" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def header_map(message: base_pb2.HeaderMap) -> dict[str, str]:
    """Lower-case names; Envoy sends values in raw_value (bytes) or, older, in value."""
    out: dict[str, str] = {}
    for h in message.headers:
        out[h.key.lower()] = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
    return out


def log_usage(decision_id: str | None, provider: str, model: str | None, usage: Usage | None, status: int) -> None:
    """The default callback: one log line per exchange. The model is not logged: it may come from the request
    path, which is client text (the filter's own log writes only the masked path)."""
    if usage is None:
        log.info("usage decision=%s provider=%s status=%d none", decision_id, provider, status)
        return
    log.info("usage decision=%s provider=%s status=%d input=%d output=%d cache_read=%d cache_write=%d%s",
             decision_id, provider, status, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
             usage.cache_write_tokens, " estimated" if usage.estimated else "")


class _Exchange:
    """State of one HTTP exchange; `finish` runs once, from the stream's thread or grpc's cancel callback.
    `lock` is held around every message and `finish`, so a cancel never finishes a parser mid-feed."""

    def __init__(self, on_usage: OnUsage, count_text: CountText | None, takes_info: bool = False) -> None:
        self._on_usage = on_usage
        self._count_text = count_text
        self._takes_info = takes_info
        self.info: UsageInfo | None = None
        self.lock = threading.RLock()
        self._done = False
        self.seen = False  # any message arrived
        self.decision_id: str | None = None
        self.provider = "unknown"
        self.api = ""
        self.path_model: str | None = None
        self.count_only = False
        self.prompt_tokens: int | None = None
        self.status = 0
        self.parser: UsageParser | None = None
        self.ended = False  # the response is over: finish once the answer to its last message is out

    @property
    def done(self) -> bool:
        return self._done

    def on_request_headers(self, request: ep.ProcessingRequest) -> None:
        found = header_map(request.request_headers.headers)
        path = found.get(":path", "")
        where = route(path)
        hint = found.get("x-llm-provider", "").strip().lower()
        self.provider = hint if hint in PROVIDERS else where.provider
        self.api, self.path_model = where.api, where.model
        bare = path.split("?", 1)[0].rstrip("/")
        self.count_only = bare.endswith("/count_tokens") or bare.endswith(":countTokens")
        metadata = self._metadata(request)
        authz_id = metadata.fields["decision_id"].string_value if metadata and "decision_id" in metadata.fields else ""
        decision_id = found.get(hdr.DECISION_ID) or authz_id
        self.decision_id = decision_id if _DECISION_ID.fullmatch(decision_id) else None
        if metadata is not None and self.decision_id is not None and authz_id == self.decision_id:
            self.info = read_info(metadata)  # the metadata of this very decision, not of another one
        prompt = found.get(hdr.PROMPT_TOKENS, "").strip()
        self.prompt_tokens = int(prompt) if prompt.isdigit() else None

    @staticmethod
    def _metadata(request: ep.ProcessingRequest) -> struct_pb2.Struct | None:
        meta = request.metadata_context.filter_metadata
        return meta.get(EXT_AUTHZ_NAMESPACE)

    def on_response_headers(self, message: ep.HttpHeaders) -> None:
        found = header_map(message.headers)
        status = found.get(":status", "").strip()
        self.status = int(status) if status.isdigit() else 0
        self.parser = UsageParser(
            self.api, status=self.status, content_type=found.get("content-type", ""),
            content_encoding=found.get("content-encoding", ""), headers=found, count_text=self._count_text,
            prompt_tokens=self.prompt_tokens, count_only=self.count_only,
        )
        if message.end_of_stream or self.parser.ignored:
            self.ended = True

    def on_response_body(self, message: ep.HttpBody) -> None:
        if self.parser is None:
            log.warning("ext_proc: response body before response headers; ignored")
            return
        self.parser.feed(message.body)
        if message.end_of_stream or message.end_of_stream_without_message:
            self.ended = True

    def finish(self, complete: bool) -> None:
        with self.lock:
            if self._done or not self.seen:
                self._done = True
                return
            self._done = True
            usage: Usage | None = None
            model = self.path_model
            if self.parser is not None:
                usage = self.parser.finish(complete=complete)
                model = self.parser.model or model
            try:
                if self._takes_info:
                    self._on_usage(self.decision_id, self.provider, model, usage, self.status, info=self.info)
                else:
                    self._on_usage(self.decision_id, self.provider, model, usage, self.status)
            except Exception:
                log.exception("usage callback failed for decision %s", self.decision_id)


class _Observer:
    """What both servicers share: reading one message into the exchange and the empty answer to it."""

    def __init__(self, on_usage: OnUsage = log_usage, count_text: CountText | None = None) -> None:
        self._on_usage = on_usage
        self._count_text = count_text  # e.g. TokenCounter(load_encoding()).count_text
        self._takes_info = _takes_info(on_usage)

    def _exchange(self) -> _Exchange:
        return _Exchange(self._on_usage, self._count_text, self._takes_info)

    @staticmethod
    def _handle(exchange: _Exchange, request: ep.ProcessingRequest) -> ep.ProcessingResponse | None:
        kind = request.WhichOneof("request")
        try:
            with exchange.lock:
                exchange.seen = True
                _read(exchange, kind, request)
        except Exception:
            log.exception("ext_proc: %s message could not be read; continuing", kind)
        if request.observability_mode:
            return None  # Envoy does not wait for (and ignores) answers in observability mode
        return _answer(kind, skip_body=kind == "response_headers" and exchange.parser is not None
                       and exchange.parser.ignored)


def _read(exchange: _Exchange, kind: str | None, request: ep.ProcessingRequest) -> None:
    if exchange.done:
        return  # cancelled meanwhile, or a message after the end
    if kind == "request_headers":
        exchange.on_request_headers(request)
    elif kind == "response_headers":
        exchange.on_response_headers(request.response_headers)
    elif kind == "response_body":
        exchange.on_response_body(request.response_body)
    elif kind == "response_trailers":
        exchange.ended = True


class ExternalProcessorServicer(_Observer, external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """Observes responses for their token usage; never delays or alters them. The answer to a response's
    last message goes out before `on_usage` runs, so a slow callback delays nothing Envoy waits for.

    Each Process stream holds a server thread for the whole response (minutes for a long stream): serve it
    from its own grpc server (`build_server`) so long streams cannot starve Check calls, or use the asyncio
    server (`AsyncUsageServer`) for thousands of concurrent streams."""

    def Process(self, request_iterator: Iterator[ep.ProcessingRequest],  # noqa: N802 (grpc method name)
                context: grpc.ServicerContext) -> Iterator[ep.ProcessingResponse]:
        exchange = self._exchange()
        context.add_callback(lambda: exchange.finish(complete=False))  # cancelled, deadline, Envoy went away
        try:
            for request in request_iterator:
                answer = self._handle(exchange, request)
                if answer is not None:
                    yield answer  # grpc sends it before asking for more: the code below runs after
                if exchange.ended:
                    exchange.finish(complete=True)
        except grpc.RpcError:
            pass  # the stream was cancelled: finished below as cut off
        finally:
            exchange.finish(complete=False)


class AsyncExternalProcessorServicer(_Observer, external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """The same for a grpc.aio server: a stream costs no thread. `on_usage` runs on the event loop (keep it
    quick: hand slow work, such as a network call, to another thread or task)."""

    async def Process(self, request_iterator: AsyncIterator[ep.ProcessingRequest],  # noqa: N802 (grpc name)
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[ep.ProcessingResponse]:
        exchange = self._exchange()
        try:
            async for request in request_iterator:
                answer = self._handle(exchange, request)
                if answer is not None:
                    yield answer
                if exchange.ended:
                    exchange.finish(complete=True)
        finally:  # also on cancellation (the task is cancelled when Envoy resets the stream)
            exchange.finish(complete=False)


def _answer(kind: str | None, skip_body: bool = False) -> ep.ProcessingResponse | None:
    """The empty answer to a message: CONTINUE, no mutation."""
    if kind == "request_headers":
        return ep.ProcessingResponse(request_headers=ep.HeadersResponse())
    if kind == "response_headers":
        if skip_body:  # an error or counting call: its body is not needed (used when allow_mode_override is on)
            return ep.ProcessingResponse(response_headers=ep.HeadersResponse(), mode_override=_SKIP_BODY)
        return ep.ProcessingResponse(response_headers=ep.HeadersResponse())
    if kind == "request_body":
        return ep.ProcessingResponse(request_body=ep.BodyResponse())
    if kind == "response_body":
        return ep.ProcessingResponse(response_body=ep.BodyResponse())
    if kind == "request_trailers":
        return ep.ProcessingResponse(request_trailers=ep.TrailersResponse())
    if kind == "response_trailers":
        return ep.ProcessingResponse(response_trailers=ep.TrailersResponse())
    return None


def add_to_server(server: grpc.Server, on_usage: OnUsage = log_usage, count_text: CountText | None = None) -> None:
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
        ExternalProcessorServicer(on_usage, count_text), server)


def build_server(listen: str, on_usage: OnUsage = log_usage, count_text: CountText | None = None,
                 max_streams: int = 256, health_servicer: health.HealthServicer | None = None) -> tuple[grpc.Server, int]:
    """A grpc server for ExternalProcessor alone: one thread per open response stream, `max_streams` at most
    (more are refused with RESOURCE_EXHAUSTED; with failure_mode_allow Envoy then passes the response on
    unobserved). `health_servicer`: the worker's, served here too so Envoy can health-check this port.
    Returns the server (not started) and its port."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_streams, thread_name_prefix="usage"),
        maximum_concurrent_rpcs=max_streams,
        options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)],
    )
    add_to_server(server, on_usage, count_text)
    if health_servicer is not None:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, port


class AsyncUsageServer(AioServerThread):
    """ExternalProcessor on a grpc.aio server in its own thread and event loop: open response streams cost
    no thread, so `max_streams` can be in the thousands. Serves gRPC health for SERVICE_NAME too.

        usage = AsyncUsageServer("127.0.0.1:9101", on_usage, counter.count_text)
        port = usage.start()
        ...
        usage.stop(grace=10.0)
    """

    def __init__(self, listen: str, on_usage: OnUsage = log_usage, count_text: CountText | None = None,
                 max_streams: int = 4096) -> None:
        servicer = AsyncExternalProcessorServicer(on_usage, count_text)
        super().__init__(
            listen, "usage", SERVICE_NAME,
            lambda server: external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(servicer, server),
            max_streams=max_streams,
            options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)])
