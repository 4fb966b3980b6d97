"""Redaction end to end: real Envoy (rendered from envoy/envoy.yaml) + the real filter server + a fake provider that
records exactly what reached it (real providers cannot be called from tests) and echoes the prompt back, so the
client's answer shows rehydration.

The filter runs with `BLOCK_PII=false` (personal data redacted, the default `redact_pii`); workspace `rehydrating`
has `rehydrate: true` in the policy file. A request is sent with a customer's e-mail address in one place of each
provider's format; the provider must receive valid JSON equal to what was sent except that address, replaced by
the same `<EMAIL_…>` placeholder every time.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ports import free_port
from tests.support.recording import RecordingServer
from tests.support.waiting import wait_until

from .envoy_harness import EnvoyProcess, start_envoy
from .filter_harness import FilterProcess, write_config

pytestmark = pytest.mark.e2e

EMAIL = "maria.schmidt@gmail.com"
PLACEHOLDER = re.compile(r"<EMAIL_[0-9a-f]{8}>")
REWRITER_STREAMS = "http.llm_gateway.ext_proc.rewriter.streams_started"
FINGERPRINT_KEY = "redaction-e2e-key"


# --- the fake provider ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> bytes:
        """The body as JSON text (decompressed when it came compressed)."""
        return gzip.decompress(self.body) if self.headers.get("content-encoding") == "gzip" else self.body


def _last_text(doc: dict[str, Any]) -> str:
    """The last user text of an OpenAI chat request (what the fake answers with)."""
    content = doc["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Any

    def do_POST(self) -> None:  # noqa: N802 (http.server name)
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
        self.server.owner.record(received)
        try:
            doc = json.loads(received.text())
            echo = f"You wrote: {_last_text(doc)}"
        except (ValueError, KeyError, IndexError, TypeError):
            doc, echo = {}, "ok"
        if doc.get("stream"):  # OpenAI SSE, the echo cut in two HTTP chunks in the middle of its first placeholder
            events = [{"choices": [{"index": 0, "delta": {"content": echo}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
            data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
            found = PLACEHOLDER.search(data.decode())
            cut = found.start() + 6 if found else len(data) // 2
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in (data[:cut], data[cut:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        answer = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": echo}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass


class EchoProvider(RecordingServer[Received]):
    thread_name = "echo-provider"

    def __init__(self) -> None:
        super().__init__(_Handler)


# --- the stack --------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    provider: EchoProvider
    filter: FilterProcess
    envoy: EnvoyProcess
    workdir: Path
    rewriter: str  # the filter's rewriter_listen

    def send(self, path: str, doc: dict[str, Any] | bytes, **headers: str) -> tuple[int, dict[str, str], bytes]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return self.envoy.request("POST", path, body, {k.replace("_", "-"): v for k, v in headers.items()})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("redaction")
    policy = workdir / "policy.yaml"
    policy.write_text(yaml.safe_dump({"workspaces": {"rehydrating": {"rehydrate": True}}}))
    config = write_config(workdir / "filter.yaml", {"policy": {"block_pii": False}, "policy_file": str(policy)})
    rewriter = f"127.0.0.1:{free_port()}"
    with EchoProvider() as provider, FilterProcess(workdir, config=config, env={
            "LLM_FILTER_FINGERPRINT_KEY": FINGERPRINT_KEY, "LLM_FILTER_REWRITER_LISTEN": rewriter}) as flt:
        envoy = start_envoy(workdir, "--upstream", provider.url, "--filter", flt.address, "--rewriter", rewriter,
                            "--no-usage")
        try:
            yield Stack(provider, flt, envoy, workdir, rewriter)
        finally:
            envoy.stop()


@pytest.fixture
def gateway(stack: Stack) -> Stack:
    stack.provider.clear()
    return stack


def only_received(stack: Stack) -> Received:
    (received,) = stack.provider.requests
    return received


def assert_redacted_only(sent: bytes, received: bytes) -> str:
    """The provider got valid JSON equal to what was sent except each copy of the address, replaced by one
    placeholder; returns the placeholder."""
    text = received.decode()
    json.loads(text)
    assert EMAIL not in text
    placeholders = set(PLACEHOLDER.findall(text))
    assert len(placeholders) == 1, placeholders
    (placeholder,) = placeholders
    assert received == sent.replace(EMAIL.encode(), placeholder.encode())
    return placeholder


# --- every provider format and placement ------------------------------------------------------------------------

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.0-flash:generateContent"
BEDROCK = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
TOOL_ARGS = json.dumps({"to": EMAIL, "subject": "Invoice 42"})  # a tool call's arguments: JSON inside a string

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("openai-system", OPENAI, {"model": "gpt-4o", "messages": [
        {"role": "system", "content": f"The customer is {EMAIL}."}, {"role": "user", "content": "Draft a reply."}]}),
    ("openai-user", OPENAI, {"model": "gpt-4o", "messages": [{"role": "user", "content": f"Mail {EMAIL} today."}]}),
    ("openai-assistant", OPENAI, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Who complained?"}, {"role": "assistant", "content": f"It was {EMAIL}."},
        {"role": "user", "content": "Draft a reply."}]}),
    ("openai-tool-call-arguments", OPENAI, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Send the invoice."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "send_mail", "arguments": TOOL_ARGS}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sent"}]}),
    ("openai-tool-result", OPENAI, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Look up the customer."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "crm_lookup", "arguments": "{\"id\": 7}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"id": 7, "email": EMAIL})}]}),
    ("openai-escaped-json", OPENAI, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Fix this config:\n" + json.dumps({"owner": {"email": EMAIL}}, indent=2)}]}),
    ("anthropic-system", ANTHROPIC, {"model": "claude-sonnet-4-5", "max_tokens": 64,
                                     "system": [{"type": "text", "text": f"Customer: {EMAIL}"}],
                                     "messages": [{"role": "user", "content": "Draft a reply."}]}),
    ("anthropic-tool-use-input", ANTHROPIC, {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "Send it."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "send_mail",
                                           "input": {"to": EMAIL}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "sent"}]}]}),
    ("anthropic-tool-result", ANTHROPIC, {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "Who?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "crm", "input": {"id": 7}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1",
                                      "content": [{"type": "text", "text": f"owner={EMAIL}"}]}]}]}),
    ("gemini-user", GEMINI, {"contents": [{"role": "user", "parts": [{"text": f"Mail {EMAIL} today."}]}]}),
    ("gemini-system-instruction", GEMINI, {"systemInstruction": {"parts": [{"text": f"Customer: {EMAIL}"}]},
                                           "contents": [{"role": "user", "parts": [{"text": "Draft a reply."}]}]}),
    ("gemini-function-call-args", GEMINI, {"contents": [
        {"role": "user", "parts": [{"text": "Send it."}]},
        {"role": "model", "parts": [{"functionCall": {"name": "send_mail", "args": {"to": EMAIL}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "send_mail", "response": {"ok": True}}}]}]}),
    ("bedrock-user", BEDROCK, {"messages": [{"role": "user", "content": [{"text": f"Mail {EMAIL} today."}]}]}),
    ("bedrock-system", BEDROCK, {"system": [{"text": f"Customer: {EMAIL}"}],
                                 "messages": [{"role": "user", "content": [{"text": "Draft a reply."}]}]}),
    ("bedrock-tool-result", BEDROCK, {"messages": [
        {"role": "user", "content": [{"text": "Who?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "crm", "input": {"id": 7}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"email": EMAIL}}]}}]}]}),
]


@pytest.mark.parametrize(("name", "path", "doc"), [pytest.param(*c, id=c[0]) for c in CASES])
def test_each_format_and_place_reaches_the_provider_redacted(gateway: Stack, name: str, path: str,
                                                              doc: dict[str, Any]) -> None:
    sent = json.dumps(doc).encode()
    status, headers, _ = gateway.send(path, sent)
    assert status == 200, name
    received = only_received(gateway)
    assert_redacted_only(sent, received.body)
    assert received.headers["content-length"] == str(len(received.body))
    assert received.headers["x-llm-filter-decision"] == "rewrite"
    assert "x-llm-filter-rewrite" not in received.headers  # the gateway's own mark stays inside it


def test_gzip_body_is_rewritten_and_stays_gzip(gateway: Stack) -> None:
    text = json.dumps(CASES[1][2]).encode()
    status, _, _ = gateway.send(OPENAI, gzip.compress(text), content_encoding="gzip")
    assert status == 200
    received = only_received(gateway)
    assert received.headers.get("content-encoding") == "gzip"
    assert_redacted_only(text, received.text())


def test_placeholders_are_stable_over_a_ten_turn_conversation(gateway: Stack) -> None:
    """Every turn resends the conversation: the provider must receive each earlier turn byte for byte as before,
    so its prompt cache keeps hitting."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": f"Account owner: {EMAIL}."}]
    received: list[bytes] = []
    for turn in range(10):
        messages.append({"role": "user", "content": f"Turn {turn}: write to {EMAIL} again."})
        status, _, answer = gateway.send(OPENAI, {"model": "gpt-4o", "messages": messages})
        assert status == 200
        received.append(gateway.provider.requests[-1].body)
        messages.append(json.loads(answer)["choices"][0]["message"])  # the model's answer, placeholders and all
    assert len({p for body in received for p in PLACEHOLDER.findall(body.decode())}) == 1
    for earlier, later in zip(received, received[1:], strict=False):
        assert later.startswith(earlier[:-2])  # everything but the closing `]}`
    assert all(EMAIL.encode() not in body for body in received)


# --- rehydration ----------------------------------------------------------------------------------------------


def test_rehydration_puts_the_value_back_into_a_json_answer(gateway: Stack) -> None:
    status, headers, answer = gateway.send(OPENAI, CASES[1][2], x_workspace_id="rehydrating")
    assert status == 200
    assert EMAIL.encode() not in only_received(gateway).body
    content = json.loads(answer)["choices"][0]["message"]["content"]
    assert content == f"You wrote: Mail {EMAIL} today."
    assert int(headers.get("content-length", len(answer))) == len(answer)


def test_rehydration_of_an_sse_answer_with_a_placeholder_split_across_chunks(gateway: Stack) -> None:
    doc = {**CASES[1][2], "stream": True}
    status, _, answer = gateway.send(OPENAI, doc, x_workspace_id="rehydrating")
    assert status == 200
    assert EMAIL.encode() not in only_received(gateway).body
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                   for line in answer.decode().splitlines() if line.startswith("data: {"))
    assert text == f"You wrote: Mail {EMAIL} today."


def test_without_rehydration_the_answer_keeps_its_placeholders(gateway: Stack) -> None:
    status, _, answer = gateway.send(OPENAI, CASES[1][2])
    assert status == 200
    content = json.loads(answer)["choices"][0]["message"]["content"]
    assert EMAIL not in content and PLACEHOLDER.search(content)


# --- the rewriter only for requests that need it, and fail closed --------------------------------------------


def test_a_request_without_anything_to_redact_never_reaches_the_rewriter(gateway: Stack) -> None:
    before = gateway.envoy.stat(REWRITER_STREAMS)
    clean = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Refactor src/app.py"}]}
    for _ in range(3):
        assert gateway.send(OPENAI, clean)[0] == 200
    # a client cannot ask for the rewriter either: Envoy strips x-llm-filter-* before routing
    assert gateway.send(OPENAI, clean, x_llm_filter_rewrite="forged", x_llm_filter_rehydrate="1")[0] == 200
    assert gateway.envoy.stat(REWRITER_STREAMS) == before
    assert gateway.send(OPENAI, CASES[1][2])[0] == 200
    assert gateway.envoy.stat(REWRITER_STREAMS) == before + 1
    assert [r.body for r in gateway.provider.requests[:4]] == [json.dumps(clean).encode()] * 4


def test_a_dead_rewriter_refuses_the_request_and_nothing_reaches_the_provider(gateway: Stack) -> None:
    rewriter = f"127.0.0.1:{free_port()}"
    second = FilterProcess(gateway.workdir, config=gateway.filter.config, name="rewriter", env={
        "LLM_FILTER_FINGERPRINT_KEY": FINGERPRINT_KEY, "LLM_FILTER_REWRITER_LISTEN": rewriter}).start()
    envoy = start_envoy(gateway.workdir, "--upstream", gateway.provider.url, "--filter", gateway.filter.address,
                        "--rewriter", rewriter, "--no-usage", name="dead-rewriter")
    try:
        body = json.dumps(CASES[1][2]).encode()
        assert envoy.request("POST", OPENAI, body)[0] == 200  # alive: rewritten by the second process
        assert EMAIL.encode() not in only_received(gateway).body
        gateway.provider.clear()
        second.kill()
        status, _, _ = envoy.request("POST", OPENAI, body)
        assert status >= 500
        assert gateway.provider.requests == []
        clean = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
        assert envoy.request("POST", OPENAI, clean)[0] == 200  # what needs no rewrite still flows
    finally:
        envoy.stop()
        second.stop()


def test_a_gateway_without_the_rewriter_refuses_what_it_would_redact(gateway: Stack) -> None:
    envoy = start_envoy(gateway.workdir, "--upstream", gateway.provider.url, "--filter", gateway.filter.address,
                        "--no-usage", "--no-rewriter", name="no-rewriter")
    try:
        status, headers, body = envoy.request("POST", OPENAI, json.dumps(CASES[1][2]).encode())
        assert status == 400 and headers["x-llm-filter-reason"] == "pii_detected"
        assert EMAIL.encode() not in body
        assert gateway.provider.requests == []
    finally:
        envoy.stop()


def test_a_filter_without_a_rewriter_refuses_what_it_would_redact(gateway: Stack) -> None:
    """The gateway runs the rewriter but this filter serves none (no rewriter_listen): the Check refuses at once,
    with the finding's reason, rather than marking a request nobody would rewrite."""
    plain = FilterProcess(gateway.workdir, config=gateway.filter.config, name="no-rewriter-filter",
                          env={"LLM_FILTER_FINGERPRINT_KEY": FINGERPRINT_KEY}).start()
    envoy = start_envoy(gateway.workdir, "--upstream", gateway.provider.url, "--filter", plain.address,
                        "--rewriter", f"127.0.0.1:{free_port()}", "--no-usage", name="filter-without-rewriter")
    try:
        status, headers, body = envoy.request("POST", OPENAI, json.dumps(CASES[1][2]).encode())
        assert status == 400 and headers["x-llm-filter-reason"] == "pii_detected"
        assert EMAIL.encode() not in body
        assert gateway.provider.requests == []
        assert "rewriter_listen is not set" in plain.log()
    finally:
        envoy.stop()
        plain.stop()


# --- long rehydrated answers never starve the Checks -----------------------------------------------------------

HELD = 12  # rehydrated answers held open at once: more than the 8 threads of the filter's Check server


class _HoldingHandler(BaseHTTPRequestHandler):
    """An OpenAI SSE answer that echoes the prompt in its first event, then holds the stream open until the test
    releases it (a long generation)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Any

    def do_POST(self) -> None:  # noqa: N802 (http.server name)
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        owner: HoldingProvider = self.server.owner
        owner.record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
        doc = json.loads(raw)
        if not doc.get("stream"):
            answer = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                              "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        first = {"choices": [{"index": 0, "delta": {"content": f"You wrote: {_last_text(doc)}"}}]}
        self._chunk(b"data: " + json.dumps(first).encode() + b"\n\n")
        owner.release.wait(120)
        last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self._chunk(b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass


class HoldingProvider(RecordingServer[Received]):
    thread_name = "holding-provider"

    def __init__(self) -> None:
        super().__init__(_HoldingHandler)
        self.release = threading.Event()


def _sse_text(answer: bytes) -> str:
    return "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                   for line in answer.decode().splitlines() if line.startswith("data: {"))


def test_long_rehydrated_answers_never_starve_the_checks(tmp_path: Path) -> None:
    """HELD rehydrated answers stream at once (more than the Check server has threads, and exactly the rewriter's
    stream cap): clean requests are still checked and allowed, a further request to redact is refused at once
    (503 overloaded, nothing reaches the provider), and the held answers all end rehydrated."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"workspaces": {"rehydrating": {"rehydrate": True}}}))
    config = write_config(tmp_path / "filter.yaml", {"policy": {"block_pii": False}, "policy_file": str(policy),
                                                     "rewriter_max_streams": HELD})
    rewriter = f"127.0.0.1:{free_port()}"
    with HoldingProvider() as provider, FilterProcess(tmp_path, config=config, env={
            "LLM_FILTER_FINGERPRINT_KEY": FINGERPRINT_KEY, "LLM_FILTER_REWRITER_LISTEN": rewriter}) as flt:
        envoy = start_envoy(tmp_path, "--upstream", provider.url, "--filter", flt.address, "--rewriter", rewriter,
                            "--no-usage")
        held_doc = json.dumps({"model": "gpt-4o", "stream": True,
                               "messages": [{"role": "user", "content": f"Mail {EMAIL} today."}]}).encode()
        pool = ThreadPoolExecutor(max_workers=HELD)
        try:
            held = [pool.submit(envoy.request, "POST", OPENAI, held_doc, {"x-workspace-id": "rehydrating"}, 120.0)
                    for _ in range(HELD)]
            # every held request has reached the provider (rewritten) and its answer is streaming
            wait_until("the held answers stream", lambda: len(provider.requests) >= HELD, timeout=60)
            assert len(provider.requests) == HELD
            assert envoy.stat(REWRITER_STREAMS) == HELD
            assert not any(f.done() for f in held)

            clean = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Refactor app.py"}]})
            for _ in range(5):
                status, _, _ = envoy.request("POST", OPENAI, clean.encode(), timeout=30.0)
                assert status == 200
                # the filter checked it: its allow is on the request the provider got
                assert provider.requests[-1].headers["x-llm-filter-decision"] == "allow"
            allowed = [a for a in flt.audit() if a.get("verdict") == "allow"]
            assert len(allowed) >= 5  # each one checked by the filter, not let through

            before = len(provider.requests)
            status, headers, body = envoy.request("POST", OPENAI, held_doc, {"x-workspace-id": "rehydrating"},
                                                  timeout=30.0)
            assert status == 503 and headers["x-llm-filter-reason"] == "overloaded"
            assert "retry-after" in headers and EMAIL.encode() not in body
            assert len(provider.requests) == before  # refused, never forwarded unrewritten
            assert not any(f.done() for f in held)

            provider.release.set()
            for future in held:
                status, _, answer = future.result(timeout=60)
                assert status == 200
                assert _sse_text(answer) == f"You wrote: Mail {EMAIL} today."
            assert all(EMAIL.encode() not in r.body for r in provider.requests)
        finally:
            provider.release.set()
            pool.shutdown(wait=True, cancel_futures=True)
            envoy.stop()
