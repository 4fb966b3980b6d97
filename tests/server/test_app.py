"""The server process as Envoy sees it: receive limit, health, byte limit, SIGHUP reload, SIGTERM drain."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from filter.audit import AuditLog
from filter.runtime import Runtime
from filter.server.app import build_server
from filter.settings import load_settings
from filter.telemetry import Telemetry
from tests.support.envelopes import make_check_request
from tests.support.ports import free_port, free_ports
from tests.support.processes import cpu_seconds, start_filter, stop, wait_grpc_ready
from tests.support.waiting import wait_until

BIG = 64 * 1024 * 1024


def big_chat(n_bytes: int) -> bytes:
    """A chat body of at least n_bytes - 8 KB and at most n_bytes + 8 KB."""
    chunk = "def handler(event):\n    return process(event['records'])\n" * 100
    message = json.dumps({"role": "user", "content": chunk})
    count = max(1, n_bytes // (len(message) + 2))
    return ('{"model": "gpt-4o", "messages": [' + ", ".join([message] * count) + "]}").encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cfg = tmp_path_factory.mktemp("cfg") / "config.yaml"
    cfg.write_text("limits: {max_body_bytes: 16777216}\npolicy: {max_prompt_tokens: 100000000}\n")
    runtime = Runtime(str(cfg), load_settings(str(cfg), env={}))
    server, _health, port = build_server(runtime, Telemetry(), AuditLog(stream=io.StringIO()), "127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", BIG)]) as channel:
        yield channel
    server.stop(0)


def test_health_reports_serving_for_both_services(served: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(served)
    for service in ("", "envoy.service.auth.v3.Authorization", "envoy.service.ratelimit.v3.RateLimitService"):
        assert stub.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING


def test_receive_limit_admits_a_16_mib_body(served: grpc.Channel) -> None:
    body = big_chat(16 * 1024 * 1024 - 10_000)
    assert 16 * 1024 * 1024 - 20_000 < len(body) <= 16 * 1024 * 1024
    resp = external_auth_pb2_grpc.AuthorizationStub(served).Check(make_check_request(body), timeout=60)
    assert resp.status.code == code_pb2.OK


def test_body_over_the_byte_limit_is_413(served: grpc.Channel) -> None:
    body = big_chat(16 * 1024 * 1024 + 10_000)
    assert len(body) > 16 * 1024 * 1024
    resp = external_auth_pb2_grpc.AuthorizationStub(served).Check(make_check_request(body), timeout=60)
    assert resp.denied_response.status.code == 413
    assert "16777216" in json.loads(resp.denied_response.body)["error"]["message"]


def test_message_carrying_the_body_twice_is_refused_by_grpc(served: grpc.Channel) -> None:
    # Envoy sends a body once (raw_body, or body without pack_as_bytes); room for one copy is all a worker holds.
    body = big_chat(16 * 1024 * 1024 - 10_000)
    request = make_check_request(body)
    request.attributes.request.http.body = body.decode()
    with pytest.raises(grpc.RpcError) as e:
        external_auth_pb2_grpc.AuthorizationStub(served).Check(request, timeout=60)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _check(port: int, body: bytes, timeout: float = 60) -> object:
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", BIG)]) as ch:
        return external_auth_pb2_grpc.AuthorizationStub(ch).Check(make_check_request(body), timeout=timeout)


def test_sighup_reloads_packs_from_disk(tmp_path: Path) -> None:
    pack = tmp_path / "packs" / "extra.yaml"
    pack.parent.mkdir()
    rule = """pack: extra
version: 1
rules:
  - id: {id}
    category: secret
    description: internal token
    pattern: 'itk_[a-z0-9]{{16}}'
    examples: {{match: ['itk_q8z2k4m9x7w3v5b1'], no_match: ['itk_']}}
"""
    pack.write_text(rule.format(id="internal-token-v1"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("packs: [packs/]\nreload_interval_seconds: 3600\n")  # only SIGHUP can reload here
    port = free_port()
    proc = start_filter(port, "--config", str(cfg))
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "use itk_q8z2k4m9x7w3v5b1"}]}).encode()
        assert "internal-token-v1" in _check(port, body).denied_response.body  # type: ignore[attr-defined]
        pack.write_text(rule.format(id="internal-token-v2"))
        proc.send_signal(signal.SIGHUP)
        wait_until("SIGHUP reloads", lambda: "internal-token-v2" in _check(port, body).denied_response.body)  # type: ignore[attr-defined]
    finally:
        stop(proc)


def test_sigterm_drains_an_in_flight_check() -> None:
    port = free_port()
    # A 12 MB prompt: the server works on it for a few tenths of a second, long enough to catch it in flight.
    proc = start_filter(port, env={"MAX_PROMPT_TOKENS": "100000000"})
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["response"] = _check(port, big_chat(12 * 1024 * 1024))
        except grpc.RpcError as e:
            result["error"] = e

    idle = cpu_seconds(proc.pid)
    thread = threading.Thread(target=call)
    thread.start()
    # In flight: the otherwise idle server has spent 50 ms of CPU on the request (its headers came first, so
    # the call is open; the whole check takes a few times that).
    wait_until("the Check in flight", lambda: cpu_seconds(proc.pid) > idle + 0.05 or not thread.is_alive(),
               timeout=60, interval=0.01)
    proc.send_signal(signal.SIGTERM)
    thread.join(60)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert "error" not in result, result.get("error")
    assert result["response"].status.code == code_pb2.OK  # type: ignore[attr-defined]
    assert code == 0


def test_workers_listen_on_consecutive_ports_and_stop_together() -> None:
    port = free_ports(2)
    proc = start_filter(port, "--workers", "2")
    try:
        wait_grpc_ready(f"127.0.0.1:{port + 1}")
        clean = json.dumps({"messages": [{"role": "user", "content": "rename this variable"}]}).encode()
        for p in (port, port + 1):
            assert _check(p, clean).status.code == code_pb2.OK  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for p in (port, port + 1):
            with pytest.raises(grpc.RpcError):
                _check(p, clean, timeout=2)
    finally:
        stop(proc)


def test_prometheus_metrics_count_decisions_and_findings() -> None:
    import urllib.request

    port, metrics = free_port(), free_port()
    proc = start_filter(port, "--metrics-port", str(metrics))
    try:
        clean = json.dumps({"messages": [{"role": "user", "content": "rename this variable"}]}).encode()
        dirty = json.dumps({"messages": [{"role": "user", "content": "key AKIAZ5XQ3HR2LMNPQ7TW"}]}).encode()
        assert _check(port, clean).status.code == code_pb2.OK  # type: ignore[attr-defined]
        assert _check(port, dirty).denied_response.status.code == 400  # type: ignore[attr-defined]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
    finally:
        stop(proc)
    assert 'llm_filter_decisions_total{' in text
    assert 'reason="secret_detected"' in text and 'reason="allowed"' in text
    assert 'llm_filter_findings_total{category="secret"' in text
    assert "llm_filter_check_duration_milliseconds_bucket" in text


def test_each_worker_gets_its_own_usage_and_rewriter_ports() -> None:
    from dataclasses import replace

    from filter.server.app import worker_env

    settings = replace(load_settings(None, env={}), workers=3, usage_listen="127.0.0.1:9101",
                       rewriter_listen="127.0.0.1:9201")
    envs = [worker_env(settings, i, {"PATH": "/bin"}) for i in range(3)]
    assert [(e["LLM_FILTER_USAGE_LISTEN"], e["LLM_FILTER_REWRITER_LISTEN"]) for e in envs] == [
        ("127.0.0.1:9101", "127.0.0.1:9201"), ("127.0.0.1:9102", "127.0.0.1:9202"), ("127.0.0.1:9103", "127.0.0.1:9203")]
    assert all(e["PATH"] == "/bin" for e in envs)
    bare = worker_env(replace(settings, usage_listen=None, rewriter_listen=None), 1, {"PATH": "/bin"})
    assert bare == {"PATH": "/bin"}  # none configured: none set
