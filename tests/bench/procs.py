"""Start and stop the processes a benchmark or e2e test needs, on free 127.0.0.1 ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """P with P+1 also free: `serve --workers 2` listens on both."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def wait_grpc_ready(address: str, timeout: float = 30.0, service: str = "") -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"gRPC server at {address} not ready")
            time.sleep(0.1)


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def start_filter(port: int, *extra: str, env: dict[str, str] | None = None,
                 stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`llm-content-filter serve` as a user runs it, in its own process."""
    cmd = [sys.executable, "-m", "filter", "serve", "--listen", f"127.0.0.1:{port}", "--metrics-port", "0", *extra]
    full_env = {**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=stdout, stderr=subprocess.PIPE)
    try:
        wait_grpc_ready(f"127.0.0.1:{port}")
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"filter did not start: {proc.stderr.read().decode() if proc.stderr else ''}") from None
    return proc


def start_trivial(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.trivial_authz", f"127.0.0.1:{port}"], cwd=ROOT)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
