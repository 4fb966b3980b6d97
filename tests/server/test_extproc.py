"""ExternalProcessor through a real grpc server and client stream, messages shaped as Envoy's ext_proc filter
sends them (STREAMED response body). Provider responses are the recorded-shaped ones in tests/usage/samples."""

from __future__ import annotations

import functools
import http.client
import json
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from filter.model import Identity
from filter.scopes import Price
from filter.server.extproc import (
    SERVICE_NAME,
    AsyncUsageServer,
    ExternalProcessorServicer,
    UsageInfo,
    build_server,
    header_map,
)
from filter.tokens import TokenCounter, load_encoding
from filter.usage import Usage
from filter.usage.estimate import CountText
from tests.e2e.envoy_harness import EnvoyProcess
from tests.support.ports import free_port
from tests.usage import samples

WAIT = 10.0  # seconds a test waits for an answer before failing (never reached when things work)


@dataclass(frozen=True)
class Reported:
    decision_id: str | None
    provider: str
    model: str | None
    usage: Usage | None
    status: int


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Reported] = []
        self.called = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, decision_id: str | None, provider: str, model: str | None, usage: Usage | None,
                 status: int) -> None:
        with self._lock:
            self.calls.append(Reported(decision_id, provider, model, usage, status))
        self.called.set()

    def one(self) -> Reported:
        assert self.called.wait(WAIT), "on_usage was not called"
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter(load_encoding())


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=["threads", "asyncio"])
def stub(request: pytest.FixtureRequest, recorder: Recorder,
         counter: TokenCounter) -> Iterator[external_processor_pb2_grpc.ExternalProcessorStub]:
    """A client of the real servicer, on the thread-per-stream server and on the asyncio server."""
    if request.param == "threads":
        server, port = build_server("127.0.0.1:0", recorder, counter.count_text, max_streams=8)
        server.start()
        stop: Callable[[], object] = functools.partial(server.stop, None)
    else:
        aio = AsyncUsageServer("127.0.0.1:0", recorder, counter.count_text)
        port = aio.start()
        stop = functools.partial(aio.stop, None)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield external_processor_pb2_grpc.ExternalProcessorStub(channel)
    finally:
        channel.close()
        stop()


class EnvoyStream:
    """One Process stream driven message by message, as Envoy's filter does."""

    def __init__(self, stub: external_processor_pb2_grpc.ExternalProcessorStub) -> None:
        self._queue: queue.Queue[ep.ProcessingRequest | None] = queue.Queue()
        self._closed = False
        self.call = stub.Process(iter(self._queue.get, None), timeout=60)

    def send(self, request: ep.ProcessingRequest) -> ep.ProcessingResponse:
        """Sends one message and waits for its answer (Envoy holds the data until it comes)."""
        self._queue.put(request)
        answer: list[ep.ProcessingResponse] = []
        reader = threading.Thread(target=lambda: answer.append(next(self.call)), daemon=True)
        reader.start()
        reader.join(WAIT)
        assert answer, f"no answer to {request.WhichOneof('request')}"
        return answer[0]

    def post(self, request: ep.ProcessingRequest) -> None:
        """Sends without waiting (observability mode)."""
        self._queue.put(request)

    def close(self) -> list[ep.ProcessingResponse]:
        self._queue.put(None)
        return list(self.call)


def headers(pairs: dict[str, str], end_of_stream: bool = False) -> ep.HttpHeaders:
    """Values in raw_value, as Envoy sends them; surrogate escapes stand for bytes that are not UTF-8."""
    values = [base_pb2.HeaderValue(key=k, raw_value=v.encode("utf-8", "surrogateescape")) for k, v in pairs.items()]
    return ep.HttpHeaders(
        headers=base_pb2.HeaderMap(headers=values),
        end_of_stream=end_of_stream,
    )


def request_headers(path: str, decision_id: str | None = "d-1", extra: dict[str, str] | None = None,
                    observe: bool = False) -> ep.ProcessingRequest:
    pairs = {":method": "POST", ":path": path, ":authority": "gateway", "content-type": "application/json",
             **({"x-llm-filter-id": decision_id} if decision_id else {}), **(extra or {})}
    return ep.ProcessingRequest(request_headers=headers(pairs), observability_mode=observe)


def response_headers(status: int, content_type: str, observe: bool = False,
                     extra: dict[str, str] | None = None) -> ep.ProcessingRequest:
    pairs = {":status": str(status), "content-type": content_type, **(extra or {})}
    return ep.ProcessingRequest(response_headers=headers(pairs), observability_mode=observe)


def body(chunk: bytes, end: bool = False, observe: bool = False) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(response_body=ep.HttpBody(body=chunk, end_of_stream=end), observability_mode=observe)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def assert_continue(answer: ep.ProcessingResponse, kind: str) -> None:
    """The answer matches the message and changes nothing."""
    assert answer.WhichOneof("response") == kind
    assert getattr(answer, kind) == type(getattr(answer, kind))()  # empty: CONTINUE, no mutation
    assert not answer.HasField("dynamic_metadata")


def test_streamed_response_is_answered_at_once_and_usage_reported_at_its_end(
        stub: external_processor_pb2_grpc.ExternalProcessorStub, recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    assert_continue(stream.send(request_headers("/anthropic/v1/messages", "d-anthropic")), "request_headers")
    assert_continue(stream.send(response_headers(200, "text/event-stream; charset=utf-8")), "response_headers")
    pieces = chunks(samples.anthropic_sse(), 37)
    for piece in pieces[:-1]:
        assert_continue(stream.send(body(piece)), "response_body")
        assert not recorder.called.is_set()
    assert_continue(stream.send(body(pieces[-1], end=True)), "response_body")
    # Reported at end of stream, before Envoy closes the stream.
    assert recorder.one() == Reported("d-anthropic", "anthropic", "claude-opus-4-1-20250805",
                                      Usage(472 + 1800, 89, cache_read_tokens=1800), 200)
    assert stream.close() == []
    assert len(recorder.calls) == 1


def test_observability_mode_gets_no_answers(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                           recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    stream.post(request_headers("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "d-g",
                                observe=True))
    stream.post(response_headers(200, "text/event-stream", observe=True))
    for piece in chunks(samples.GEMINI_SSE, 50):
        stream.post(body(piece, observe=True))
    stream.post(body(b"", end=True, observe=True))
    assert recorder.one() == Reported("d-g", "gemini", "gemini-2.5-flash", Usage(8, 1038, cache_read_tokens=4), 200)
    assert stream.close() == []


def test_client_gone_mid_stream_reports_an_estimate(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                                    recorder: Recorder, counter: TokenCounter) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/openai/v1/chat/completions", "d-cut", {"x-llm-prompt-tokens": "812"}))
    stream.send(response_headers(200, "text/event-stream"))
    sent = samples.openai_chat_sse(include_usage=True)
    half = sent[: len(sent) // 2]
    for piece in chunks(half, 64):
        stream.send(body(piece))
    stream.call.cancel()  # Envoy resets the stream when the client disconnects
    reported = recorder.one()
    assert reported.decision_id == "d-cut" and reported.status == 200
    assert reported.usage is not None and reported.usage.estimated
    assert reported.usage.input_tokens == 812  # the filter's own prompt count: the provider sent none yet
    assert reported.usage.output_tokens > 0


def test_stream_without_include_usage_is_estimated_from_text(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                                             recorder: Recorder, counter: TokenCounter) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/groq/openai/v1/chat/completions", "d-groq", {"x-llm-prompt-tokens": "40"}))
    stream.send(response_headers(200, "text/event-stream"))
    stream.send(body(samples.openai_chat_sse(include_usage=False), end=True))
    expected = Usage(40, counter.count_text("".join(samples.CHAT_TEXT)), estimated=True)
    assert recorder.one() == Reported("d-groq", "groq", "gpt-4o-mini-2024-07-18", expected, 200)
    stream.close()


def test_error_status_reports_no_usage_and_skips_the_body(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                                         recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/openai/v1/responses", "d-429"))
    answer = stream.send(response_headers(429, "application/json"))
    assert answer.WhichOneof("response") == "response_headers"
    assert answer.response_headers == ep.HeadersResponse()
    assert answer.mode_override.response_body_mode == processing_mode_pb2.ProcessingMode.NONE
    assert recorder.one() == Reported("d-429", "openai", None, None, 429)
    assert_continue(stream.send(body(b'{"error": {"code": "rate_limit_exceeded"}}', end=True)), "response_body")
    stream.close()
    assert len(recorder.calls) == 1


def test_bedrock_event_stream_model_from_path(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                             recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", "d-b"))
    stream.send(response_headers(200, "application/vnd.amazon.eventstream"))
    for piece in chunks(samples.converse_stream(), 100):
        stream.send(body(piece))
    stream.send(body(b"", end=True))
    assert recorder.one() == Reported("d-b", "bedrock", "anthropic.claude-3-haiku-20240307-v1:0", Usage(19, 21), 200)
    stream.close()


def test_decision_id_from_ext_authz_metadata(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                            recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    first = request_headers("/v1/chat/completions", decision_id=None)
    first.metadata_context.filter_metadata["envoy.filters.http.ext_authz"].CopyFrom(
        struct_pb2.Struct(fields={"decision_id": struct_pb2.Value(string_value="d-meta")}))
    stream.send(first)
    stream.send(response_headers(200, "application/json", extra={"content-encoding": "identity"}))
    stream.send(body(samples.OPENAI_CHAT_JSON, end=True))
    assert recorder.one() == Reported("d-meta", "openai", "gpt-4.1-2025-04-14", Usage(19, 10), 200)
    stream.close()


class InfoRecorder(Recorder):
    """A callback that takes the `info` keyword: gets what the Check's metadata said about the request."""

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[UsageInfo | None] = []

    def __call__(self, decision_id: str | None, provider: str, model: str | None, usage: Usage | None,
                 status: int, info: UsageInfo | None = None) -> None:
        self.infos.append(info)
        super().__call__(decision_id, provider, model, usage, status)


def with_authz_metadata(header_id: str, values: dict[str, str | float]) -> ep.ProcessingRequest:
    """Request headers as Envoy sends them with ext_authz's dynamic metadata forwarded."""
    first = request_headers("/v1/chat/completions", decision_id=header_id)
    meta = struct_pb2.Struct()
    meta.update(values)
    first.metadata_context.filter_metadata["envoy.filters.http.ext_authz"].CopyFrom(meta)
    return first


@pytest.mark.parametrize("asyncio", [False, True])
def test_the_checks_metadata_reaches_a_callback_that_takes_info(asyncio: bool, counter: TokenCounter) -> None:
    recorder = InfoRecorder()
    if asyncio:
        aio = AsyncUsageServer("127.0.0.1:0", recorder, counter.count_text)
        port, stop = aio.start(), functools.partial(aio.stop, None)
    else:
        server, port = build_server("127.0.0.1:0", recorder, counter.count_text, max_streams=4)
        server.start()
        stop = functools.partial(server.stop, None)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
        sent: list[tuple[str, dict[str, str | float]]] = [
            # the allow of a worker that reserved USD: verified JWT identity, model, price per million tokens
            ("d-usd", {"decision_id": "d-usd", "reason": "allowed", "path": "/v1/chat/completions",
                       "team_id": "payments", "agent_id": "ci-bot", "source": "jwt", "model": "gpt-4.1",
                       "usd_in": 2.5, "usd_out": 10.0}),
            # no USD reservation; an older filter wrote no source: its values never count as JWT-verified
            ("d-plain", {"decision_id": "d-plain", "team_id": "t1"}),
            # metadata of another decision than the header names, and prices of the wrong type: not used
            ("d-header", {"decision_id": "d-other", "source": "jwt", "team_id": "t9"}),
            ("d-typed", {"decision_id": "d-typed", "source": "jwt", "usd_in": "2.5", "usd_out": 10.0}),
        ]
        for header_id, values in sent:
            recorder.called.clear()
            stream = EnvoyStream(stub)
            stream.send(with_authz_metadata(header_id, values))
            stream.send(response_headers(200, "application/json", extra={"content-encoding": "identity"}))
            stream.send(body(samples.OPENAI_CHAT_JSON, end=True))
            assert recorder.called.wait(WAIT)
            stream.close()
    finally:
        channel.close()
        stop()
    assert [c.decision_id for c in recorder.calls] == ["d-usd", "d-plain", "d-header", "d-typed"]
    assert recorder.infos == [
        UsageInfo(Identity(team="payments", agent="ci-bot", source="jwt"), "gpt-4.1", Price(2.5, 10.0)),
        UsageInfo(Identity(team="t1", source="headers"), None, None),
        None,
        UsageInfo(Identity(source="jwt"), None, None),  # a price must be a number, both directions
    ]


def test_upstream_gone_before_response_reports_status_zero(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                                          recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/anthropic/v1/messages", "d-reset"))
    assert stream.close() == []
    assert recorder.one() == Reported("d-reset", "anthropic", None, None, 0)


def test_malformed_messages_are_read_past(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                          recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    assert_continue(stream.send(body(b"body before headers")), "response_body")
    bad_path = request_headers("\udcff/../v1/messages?x=%zz", "d-bad")
    assert_continue(stream.send(bad_path), "request_headers")
    weird = ep.ProcessingRequest(response_headers=headers({":status": "abc", "content-type": "\x00"}))
    assert_continue(stream.send(weird), "response_headers")
    stream.post(ep.ProcessingRequest())  # no message kind: nothing to answer (the next answer is the next's)
    for junk in (b"\xff\xfe", json.dumps({"usage": [1, 2]}).encode(), b"\x00" * 1000):
        assert_continue(stream.send(body(junk)), "response_body")
    assert_continue(stream.send(ep.ProcessingRequest(response_trailers=ep.HttpTrailers())), "response_trailers")
    stream.close()
    reported = recorder.one()
    assert reported.decision_id == "d-bad" and reported.usage is None and reported.status == 0


def test_concurrent_streams_are_kept_apart(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                          recorder: Recorder) -> None:
    streams = [EnvoyStream(stub) for _ in range(4)]
    for i, stream in enumerate(streams):
        stream.send(request_headers("/anthropic/v1/messages", f"d-{i}"))
        stream.send(response_headers(200, "application/json" if i % 2 else "text/event-stream"))
    for i, stream in enumerate(streams):
        stream.send(body(samples.ANTHROPIC_JSON if i % 2 else samples.anthropic_sse(), end=True))
        stream.close()
    assert recorder.called.wait(WAIT)
    by_id = {c.decision_id: c.usage for c in recorder.calls}
    assert len(recorder.calls) == 4
    assert by_id["d-0"] == by_id["d-2"] == Usage(2272, 89, cache_read_tokens=1800)
    assert by_id["d-1"] == by_id["d-3"] == Usage(4195, 503, cache_read_tokens=2000, cache_write_tokens=100)


def test_health_is_served_next_to_the_processor(recorder: Recorder) -> None:
    shared = health.HealthServicer()
    server, port = build_server("127.0.0.1:0", recorder, health_servicer=shared)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            answer = check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=WAIT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            shared.enter_graceful_shutdown()  # the worker draining: Envoy stops sending new streams here
            answer = check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=WAIT)
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop(None)


# -- through real Envoy: the ext_proc filter as the gateway would configure it ------------------------------------
#
# The provider is a fake (real providers cannot be reached from tests): it streams recorded-shaped Anthropic
# events and holds the rest of the stream until the test has read the first event through Envoy, so a response
# held back anywhere on the way (Envoy or the processor) fails the test instead of passing slowly.

EXT_PROC_FILTER = """
- name: envoy.filters.http.ext_proc
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
    grpc_service: {{envoy_grpc: {{cluster_name: usage}}}}
    failure_mode_allow: true
    observability_mode: {observe}
    deferred_close_timeout: 5s
    message_timeout: 1s
    send_body_without_waiting_for_header_response: true
    allow_mode_override: true
    processing_mode:
      request_header_mode: SEND
      response_header_mode: SEND
      request_body_mode: NONE
      response_body_mode: STREAMED
      request_trailer_mode: SKIP
      response_trailer_mode: SKIP
    metadata_options:
      forwarding_namespaces: {{untyped: [envoy.filters.http.ext_authz]}}
    # Only what usage needs reaches the processor: never the provider credentials.
    forward_rules:
      allowed_headers:
        patterns:
        - exact: ":path"
        - exact: ":status"
        - exact: content-type
        - exact: content-encoding
        - prefix: x-llm-
        - prefix: x-amzn-bedrock-
"""

ENVOY_CONFIG = """
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: test
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /anthropic/}}
                route: {{cluster: provider, prefix_rewrite: /, timeout: 60s}}
          http_filters:
{filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: provider
    type: STATIC
    load_assignment:
      cluster_name: provider
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {provider}}}}}}}
  - name: usage
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: usage
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {usage}}}}}}}
"""


class StreamingProvider:
    """Fake Anthropic endpoint: streams `samples.anthropic_sse()` event by event (chunked), holding all but
    the first event until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.events = [e + b"\n\n" for e in samples.anthropic_sse().split(b"\n\n") if e]
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server name)
                self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("x-test-status"):  # an error answer, as Anthropic sends it
                    error = b'{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}'
                    self.send_response(int(self.headers["x-test-status"]))
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                try:
                    for i, event in enumerate(provider.events):
                        if i == 1 and not provider.release.wait(WAIT):
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client went away

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def provider() -> Iterator[StreamingProvider]:
    fake = StreamingProvider()
    yield fake
    fake.close()


class TeeServicer(ExternalProcessorServicer):
    """The real servicer; the header names Envoy sent are kept for assertions."""

    def __init__(self, recorder: Recorder, count_text: CountText) -> None:
        super().__init__(recorder, count_text)
        self.header_names: set[str] = set()

    def Process(self, request_iterator: Iterator[ep.ProcessingRequest],  # noqa: N802 (grpc method name)
                context: grpc.ServicerContext) -> Iterator[ep.ProcessingResponse]:
        def tee() -> Iterator[ep.ProcessingRequest]:
            for request in request_iterator:
                for kind in ("request_headers", "response_headers"):
                    if request.HasField(kind):
                        self.header_names |= set(header_map(getattr(request, kind).headers))
                yield request

        return super().Process(tee(), context)


def run_envoy(workdir: Path, usage_port: int, provider_port: int, observe: bool) -> EnvoyProcess:
    listen, admin = free_port(), free_port()
    filters = "\n".join("          " + line for line in EXT_PROC_FILTER.format(observe=str(observe).lower())
                        .strip("\n").splitlines())
    config = workdir / "envoy.yaml"
    config.write_text(ENVOY_CONFIG.format(admin=admin, listen=listen, provider=provider_port, usage=usage_port,
                                          filters=filters))
    return EnvoyProcess(config, listen_port=listen, admin_port=admin, workdir=workdir).start()


@pytest.mark.e2e
@pytest.mark.parametrize("observe", [True, False], ids=["observability-mode", "streamed-mode"])
def test_through_envoy_stream_passes_unchanged_and_usage_is_reported(
        tmp_path: Path, provider: StreamingProvider, recorder: Recorder, counter: TokenCounter,
        observe: bool) -> None:
    servicer = TeeServicer(recorder, counter.count_text)
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    envoy = run_envoy(tmp_path, port, provider.port, observe)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.listen_port, timeout=WAIT)
        conn.request("POST", "/anthropic/v1/messages", body=b'{"stream": true}',
                     headers={"content-type": "application/json", "x-llm-filter-id": "d-envoy",
                              "x-api-key": "sk-ant-not-for-the-processor"})
        response = conn.getresponse()
        assert response.status == 200
        first = b""
        while not first.endswith(b"\n\n"):
            first += response.readline()  # arrives while the provider still holds the rest
        assert first == provider.events[0]
        provider.release.set()
        rest = response.read()
        assert first + rest == samples.anthropic_sse()  # byte for byte: nothing altered
        conn.close()
        assert recorder.one() == Reported("d-envoy", "anthropic", "claude-opus-4-1-20250805",
                                          Usage(472 + 1800, 89, cache_read_tokens=1800), 200)
        assert servicer.header_names <= {":path", ":status", "content-type", "content-encoding", "x-llm-filter-id"}
        assert {":path", ":status", "x-llm-filter-id"} <= servicer.header_names
        # Envoy's own view: every message answered in kind (none in observability mode), nothing failed open.
        sent = envoy.stat("http.test.ext_proc.stream_msgs_sent")
        assert sent >= 4  # request headers, response headers, body chunks
        assert envoy.stat("http.test.ext_proc.stream_msgs_received") == (0 if observe else sent)
        for counter_name in ("spurious_msgs_received", "streams_failed", "failure_mode_allowed", "message_timeouts"):
            assert envoy.stat(f"http.test.ext_proc.{counter_name}") == 0, counter_name
    finally:
        envoy.stop()
        server.stop(None)


@pytest.mark.e2e
def test_through_envoy_client_gone_mid_stream_reports_an_estimate(
        tmp_path: Path, provider: StreamingProvider, recorder: Recorder, counter: TokenCounter) -> None:
    server, port = build_server("127.0.0.1:0", recorder, counter.count_text, max_streams=8)
    server.start()
    envoy = run_envoy(tmp_path, port, provider.port, observe=True)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.listen_port, timeout=WAIT)
        conn.request("POST", "/anthropic/v1/messages", body=b"{}",
                     headers={"content-type": "application/json", "x-llm-filter-id": "d-gone",
                              "x-llm-prompt-tokens": "3000"})
        response = conn.getresponse()
        first = b""
        while not first.endswith(b"\n\n"):
            first += response.readline()
        conn.close()  # the client disconnects while the provider is still streaming
        reported = recorder.one()
        assert reported.decision_id == "d-gone" and reported.status == 200
        assert reported.usage is not None and reported.usage.estimated
        assert reported.usage.input_tokens == 472 + 1800  # message_start's, the provider's own count
    finally:
        provider.release.set()
        envoy.stop()
        server.stop(None)


@pytest.mark.e2e
def test_through_envoy_error_answer_passes_unchanged_and_reports_no_usage(
        tmp_path: Path, provider: StreamingProvider, recorder: Recorder) -> None:
    server, port = build_server("127.0.0.1:0", recorder, max_streams=8)
    server.start()
    envoy = run_envoy(tmp_path, port, provider.port, observe=False)
    try:
        status, _, answer = envoy.request("POST", "/anthropic/v1/messages", b"{}",
                                          headers={"x-llm-filter-id": "d-err", "x-test-status": "429"})
        assert (status, answer) == (429, b'{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}')
        assert recorder.one() == Reported("d-err", "anthropic", None, None, 429)
        # Every message answered in kind (the answer to the response headers carries a mode override), no failure.
        assert envoy.stat("http.test.ext_proc.stream_msgs_received") == envoy.stat("http.test.ext_proc.stream_msgs_sent")
        for counter_name in ("spurious_msgs_received", "streams_failed", "failure_mode_allowed", "message_timeouts"):
            assert envoy.stat(f"http.test.ext_proc.{counter_name}") == 0, counter_name
    finally:
        envoy.stop()
        server.stop(None)


@pytest.mark.parametrize("path", ["/anthropic/v1/messages/count_tokens",
                                  "/gemini/v1beta/models/gemini-2.5-pro:countTokens"])
def test_token_counting_calls_cost_nothing(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                           recorder: Recorder, path: str) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers(path, "d-count", {"x-llm-prompt-tokens": "500"}))
    stream.send(response_headers(200, "application/json"))
    stream.send(body(b'{"input_tokens": 498}', end=True))
    reported = recorder.one()
    assert (reported.decision_id, reported.usage, reported.status) == ("d-count", Usage(0, 0), 200)
    stream.close()


def test_provider_header_names_the_provider(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                           recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/openai/v1/chat/completions", "d-x", {"x-llm-provider": "Groq"}))
    stream.send(response_headers(200, "application/json"))
    stream.send(body(samples.OPENAI_CHAT_JSON, end=True))
    assert recorder.one().provider == "groq"
    stream.close()


def test_decision_id_that_is_not_the_filters_is_dropped(stub: external_processor_pb2_grpc.ExternalProcessorStub,
                                                       recorder: Recorder) -> None:
    stream = EnvoyStream(stub)
    stream.send(request_headers("/anthropic/v1/messages", "not one of ours\n" + "x" * 100))
    stream.close()
    assert recorder.one().decision_id is None


def test_default_callback_logs_counts_not_the_model(caplog: pytest.LogCaptureFixture) -> None:
    from filter.server.extproc import log_usage

    with caplog.at_level("INFO", logger="llm_content_filter"):
        log_usage("d-1", "gemini", "models/sk-live-0123456789abcdef", Usage(10, 5, estimated=True), 200)
    assert "input=10 output=5" in caplog.text and "estimated" in caplog.text
    assert "sk-live" not in caplog.text


@pytest.mark.e2e
def test_through_envoy_asyncio_server_in_streamed_mode(tmp_path: Path, provider: StreamingProvider,
                                                      recorder: Recorder, counter: TokenCounter) -> None:
    usage = AsyncUsageServer("127.0.0.1:0", recorder, counter.count_text)
    envoy = run_envoy(tmp_path, usage.start(), provider.port, observe=False)
    try:
        provider.release.set()
        status, _, answer = envoy.request("POST", "/anthropic/v1/messages", b"{}", headers={"x-llm-filter-id": "d-aio"})
        assert (status, answer) == (200, samples.anthropic_sse())
        assert recorder.one() == Reported("d-aio", "anthropic", "claude-opus-4-1-20250805",
                                          Usage(472 + 1800, 89, cache_read_tokens=1800), 200)
        assert envoy.stat("http.test.ext_proc.stream_msgs_received") == envoy.stat("http.test.ext_proc.stream_msgs_sent")
        for counter_name in ("spurious_msgs_received", "streams_failed", "failure_mode_allowed", "message_timeouts"):
            assert envoy.stat(f"http.test.ext_proc.{counter_name}") == 0, counter_name
    finally:
        envoy.stop()
        usage.stop(None)


def test_asyncio_server_health_and_busy_port(recorder: Recorder) -> None:
    usage = AsyncUsageServer("127.0.0.1:0", recorder)
    port = usage.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                                                               timeout=WAIT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises((OSError, RuntimeError)):
            AsyncUsageServer(f"127.0.0.1:{port}", recorder).start()
    finally:
        usage.stop(None)
