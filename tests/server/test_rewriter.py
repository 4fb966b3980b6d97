"""The rewriter's logic (filter/server/rewriter.py), message by message as Envoy sends them, without gRPC: what a
marked request leaves the gateway as, what comes back rehydrated, and every way it refuses instead of forwarding."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf import struct_pb2
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from filter.model import Envelope, Identity, Verdict
from filter.pipeline import evaluate
from filter.rewrite.placeholders import PATTERN
from filter.rules.engine import REDACTION_PLACEHOLDER
from filter.runtime import Runtime
from filter.server.rewriter import RewriteExchange
from filter.settings import load_settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding

EMAIL = "jane.roe@acme-corp.de"
PROMPT = f"Write to {EMAIL} about the invoice."
CHAT = {"model": "gpt-4o", "messages": [{"role": "system", "content": "You help."},
                                        {"role": "user", "content": PROMPT}]}
PATH = "/v1/chat/completions"
ENV = {"LLM_FILTER_FINGERPRINT_KEY": "k", "BLOCK_PII": "false"}


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter(load_encoding())


def runtime(**env: str) -> Runtime:
    return Runtime(None, load_settings(None, env={**ENV, **env}))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.telemetry = Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=self.registry)])

    def value(self, name: str, result: str) -> float:
        for line in generate_latest(self.registry).decode().splitlines():
            if line.startswith(f'{name}_total{{result="{result}"}}'):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name}{{result={result}}}")


def header_map(pairs: Mapping[str, str]) -> base_pb2.HeaderMap:
    return base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()])


def request_headers(decision_id: str = "d-1", rehydrate: bool = False, workspace: str | None = None,
                    extra: Mapping[str, str] | None = None) -> ep.ProcessingRequest:
    pairs = {":method": "POST", ":path": PATH, "content-type": "application/json",
             "x-llm-filter-rewrite": decision_id, **(extra or {})}
    if rehydrate:
        pairs["x-llm-filter-rehydrate"] = "1"
    message = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=header_map(pairs)))
    meta = struct_pb2.Struct()
    meta.update({"decision_id": decision_id, "source": "headers", **({"workspace_id": workspace} if workspace else {})})
    message.metadata_context.filter_metadata["envoy.filters.http.ext_authz"].CopyFrom(meta)
    return message


def request_body(body: bytes, end: bool = True) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=end))


def response_headers(content_type: str) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=header_map(
        {":status": "200", "content-type": content_type, "content-length": "99"})))


def response_body(chunk: bytes, end: bool = False) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(response_body=ep.HttpBody(body=chunk, end_of_stream=end))


def set_headers(mutation: ep.HeaderMutation) -> dict[str, str]:
    return {h.header.key: (h.header.raw_value or h.header.value.encode()).decode() for h in mutation.set_headers}


def exchange(rt: Runtime, counter: TokenCounter, metrics: Metrics | None = None) -> RewriteExchange:
    return RewriteExchange(rt, counter, (metrics or Metrics()).telemetry)


def rewritten(answer: ep.ProcessingResponse) -> tuple[bytes, dict[str, str], list[str]]:
    assert answer.WhichOneof("response") == "request_body", answer
    common = answer.request_body.response
    assert common.body_mutation.WhichOneof("mutation") == "body"
    return common.body_mutation.body, set_headers(common.header_mutation), list(common.header_mutation.remove_headers)


def test_marked_request_leaves_with_a_placeholder_and_its_length(counter: TokenCounter) -> None:
    metrics = Metrics()
    ex = exchange(runtime(), counter, metrics)
    first = ex.handle(request_headers())
    assert first is not None and first.WhichOneof("response") == "request_headers"
    assert set(first.request_headers.response.header_mutation.remove_headers) == {
        "x-llm-filter-rewrite", "x-llm-filter-rehydrate"}  # the marks never reach the provider
    assert not first.HasField("mode_override")  # no rehydration: the answer is not sent here
    original = json.dumps(CHAT).encode()
    body, headers, _ = rewritten(ex.handle(request_body(original)))  # type: ignore[arg-type]
    assert EMAIL.encode() not in body
    assert headers["content-length"] == str(len(body))
    sent = json.loads(body)
    (placeholder,) = PATTERN.findall(sent["messages"][1]["content"])
    assert placeholder.startswith("<EMAIL_")
    assert sent["messages"][1]["content"] == PROMPT.replace(EMAIL, placeholder)
    assert body == original.replace(EMAIL.encode(), placeholder.encode())  # every other byte as sent
    assert metrics.value("llm_filter_rewrites", "rewritten") == 1


def test_placeholders_are_stable_per_workspace_and_differ_between_workspaces(counter: TokenCounter) -> None:
    rt = runtime()
    bodies = []
    for workspace in ("ws-a", "ws-a", "ws-b"):
        ex = exchange(rt, counter)
        ex.handle(request_headers(workspace=workspace))
        bodies.append(rewritten(ex.handle(request_body(json.dumps(CHAT).encode())))[0])  # type: ignore[arg-type]
    assert bodies[0] == bodies[1] and bodies[0] != bodies[2]


def test_rehydration_asks_for_the_answer_and_puts_a_split_placeholder_back(counter: TokenCounter) -> None:
    metrics = Metrics()
    ex = exchange(runtime(), counter, metrics)
    first = ex.handle(request_headers(rehydrate=True))
    assert first is not None
    assert "accept-encoding" in first.request_headers.response.header_mutation.remove_headers  # readable answers
    mode = first.mode_override
    assert mode.response_body_mode == processing_mode_pb2.ProcessingMode.STREAMED
    assert mode.response_header_mode == processing_mode_pb2.ProcessingMode.SEND
    body, _, _ = rewritten(ex.handle(request_body(json.dumps(CHAT).encode())))  # type: ignore[arg-type]
    (placeholder,) = PATTERN.findall(body.decode())
    head = ex.handle(response_headers("text/event-stream"))
    assert head is not None and head.response_headers.response.header_mutation.remove_headers == ["content-length"]
    event = "data: " + json.dumps({"choices": [{"delta": {"content": f"Mail sent to {placeholder}."}}]}) + "\n\n"
    cut = event.index(placeholder) + 5  # inside the placeholder
    out = b""
    for chunk, end in ((event[:cut].encode(), False), (event[cut:].encode(), False), (b"data: [DONE]\n\n", True)):
        answer = ex.handle(response_body(chunk, end))
        assert answer is not None
        out += answer.response_body.response.body_mutation.body
    events = [e for e in out.decode().split("\n\n") if e]
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["content"] == f"Mail sent to {EMAIL}."
    assert events[1:] == ["data: [DONE]"]
    assert metrics.value("llm_filter_rehydrations", "completed") == 1


def test_answer_without_rehydration_passes_untouched(counter: TokenCounter) -> None:
    ex = exchange(runtime(), counter)
    ex.handle(request_headers())
    ex.handle(request_body(json.dumps(CHAT).encode()))
    chunk = b'{"choices":[{"message":{"content":"<EMAIL_00000000>"}}]}'
    answer = ex.handle(response_body(chunk, True))
    assert answer is not None and not answer.response_body.HasField("response")


def test_nothing_left_to_redact_is_forwarded_as_sent(counter: TokenCounter) -> None:
    metrics = Metrics()
    ex = exchange(runtime(), counter, metrics)
    ex.handle(request_headers())
    answer = ex.handle(request_body(json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()))
    assert answer == ep.ProcessingResponse(request_body=ep.BodyResponse())
    assert metrics.value("llm_filter_rewrites", "unchanged") == 1


def test_a_value_the_live_policy_blocks_is_refused_in_the_provider_shape(counter: TokenCounter) -> None:
    metrics = Metrics()
    ex = exchange(runtime(), counter, metrics)
    ex.handle(request_headers("d-9"))
    secret = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"{PROMPT} key AKIAZ5XQ3HR2LMNPQ7TW"}]}
    answer = ex.handle(request_body(json.dumps(secret).encode()))
    assert answer is not None and answer.WhichOneof("response") == "immediate_response"
    refusal = answer.immediate_response
    assert refusal.status.code == 400
    error = json.loads(refusal.body)["error"]
    assert error["code"] == "secret_detected" and "d-9" in error["message"]
    assert b"AKIAZ5XQ3HR2LMNPQ7TW" not in refusal.body and EMAIL.encode() not in refusal.body
    assert set_headers(refusal.headers)["x-llm-filter-reason"] == "secret_detected"
    assert metrics.value("llm_filter_rewrites", "refused") == 1


@pytest.mark.parametrize("what", ["a body in parts", "a body before its headers", "a body that is not JSON"])
def test_anything_unexpected_fails_closed(counter: TokenCounter, what: str) -> None:
    metrics = Metrics()
    ex = exchange(runtime(), counter, metrics)
    if what != "a body before its headers":
        ex.handle(request_headers())
    body = b"{not json" if what == "a body that is not JSON" else json.dumps(CHAT).encode()
    answer = ex.handle(request_body(body, end=what != "a body in parts"))
    assert answer is not None and answer.WhichOneof("response") == "immediate_response", what
    assert answer.immediate_response.status.code in (400, 503)
    assert EMAIL.encode() not in answer.immediate_response.body
    assert metrics.value("llm_filter_rewrites", "failed") + metrics.value("llm_filter_rewrites", "refused") == 1


def test_a_cut_off_rehydration_is_counted(counter: TokenCounter) -> None:
    metrics = Metrics()
    ex = exchange(runtime(), counter, metrics)
    ex.handle(request_headers(rehydrate=True))
    ex.handle(request_body(json.dumps(CHAT).encode()))
    ex.handle(response_headers("application/json"))
    ex.handle(response_body(b'{"choices":'))
    ex.cut_off()
    assert metrics.value("llm_filter_rehydrations", "failed") == 1


def test_a_rewritten_conversation_echoing_placeholders_is_not_blocked(counter: TokenCounter) -> None:
    """The gateway's own placeholders are no values: a later turn that sends them again (and a model that echoes
    `<SECRET:...>`) is redacted or allowed, never blocked as `secret = <...>`."""
    rt = runtime(REDACT_SECRETS="true")
    token = "ghp_" + "R8x2Lq7Vd0Kp3Wn5Ys9Ta1Bc4Fg6Hj8Mk2Np"
    first = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"my token = {token} and mail {EMAIL}"}]}
    ex = exchange(rt, counter)
    ex.handle(request_headers())
    body, _, _ = rewritten(ex.handle(request_body(json.dumps(first).encode())))  # type: ignore[arg-type]
    sent = json.loads(body)["messages"][0]["content"]
    assert token not in sent and any(p.startswith("<SECRET:") for p in PATTERN.findall(sent))
    later = {"model": "gpt-4o", "messages": [
        {"role": "user", "content": sent},
        {"role": "assistant", "content": f"I see api_key: {PATTERN.findall(sent)[0]} in your message."},
        {"role": "user", "content": "thanks"}]}
    outcome = evaluate(Envelope("POST", PATH, {"content-type": "application/json"}, json.dumps(later).encode()),
                       rt.current, counter, Identity())
    assert outcome.decision.verdict is Verdict.ALLOW, outcome.decision.findings


def test_the_engine_knows_every_placeholder_shape() -> None:
    for placeholder in ("<EMAIL_1a2b3c4d>", "<SECRET:github-pat_0f9e8d7c>", "<PII:us-passport_00ff00ff>"):
        assert PATTERN.fullmatch(placeholder) and REDACTION_PLACEHOLDER.fullmatch(placeholder.encode())
