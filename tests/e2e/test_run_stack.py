"""`make run` (envoy/run_stack.py): filter + Envoy in the foreground, to the fake provider; Ctrl-C stops both."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

from .envoy_harness import REPO
from .fake_provider import FakeProvider

pytestmark = pytest.mark.e2e

RUN_STACK = REPO / "envoy" / "run_stack.py"


def post(port: int, text: str) -> tuple[int, bytes]:
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/messages", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def stack(tmp_path: Path, fake_provider: FakeProvider) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    listen_port = free_port()
    env = {
        **os.environ,
        "UPSTREAM": fake_provider.url,
        "LISTEN_ADDRESS": "127.0.0.1",
        "LISTEN_PORT": str(listen_port),
        "ADMIN_PORT": str(free_port()),
        "FILTER_PORT": str(free_port()),
        "REWRITER_PORT": str(free_port()),
        "METRICS_PORT": "0",
        "RUN_DIR": str(tmp_path),
        "ENVOY_ARGS": "--use-dynamic-base-id --concurrency 1",  # other Envoys of the test run may be up
        "LLM_FILTER_FINGERPRINT_KEY": "e2e-key",
    }
    log = tmp_path / "run_stack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(RUN_STACK)], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the teardown can remove every process it started
        )  # fmt: skip
    try:
        yield proc, listen_port, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_run_stack_serves_and_stops_both_on_ctrl_c(
    stack: tuple[subprocess.Popen[bytes], int, Path], fake_provider: FakeProvider
) -> None:
    proc, port, log = stack
    deadline = time.monotonic() + 60
    while True:  # the filter, then Envoy, come up
        assert proc.poll() is None, log.read_text()
        try:
            status, body = post(port, "Refactor the parser to use a dataclass.")
            if status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    assert json.loads(body)["type"] == "message"  # the fake provider's answer
    [sent] = fake_provider.requests
    assert sent.headers["x-llm-filter-decision"] == "allow"

    status, body = post(port, "deploy with AKIAZ5XQ3HR2LMNPQ7TW")
    assert status == 400
    assert json.loads(body)["type"] == "error"
    assert len(fake_provider.requests) == 1

    text = log.read_text()
    pids = {name: int(pid) for name, pid in re.findall(r"(filter|envoy) pid (\d+)", text)}
    assert set(pids) == {"filter", "envoy"}, text
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, log.read_text()
    deadline = time.monotonic() + 10
    while any(pid_exists(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [name for name, pid in pids.items() if pid_exists(pid)] == []
    assert "stopped" in log.read_text()
