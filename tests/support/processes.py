"""The real filter server (`python -m filter serve`) as its own process, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def grpc_serving(address: str, service: str = "") -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            request = health_pb2.HealthCheckRequest(service=service)
            return bool(health_pb2_grpc.HealthStub(channel).Check(request, timeout=1).status == 1)
        except grpc.RpcError:
            return False


def wait_grpc_ready(address: str, timeout: float = 30.0, service: str = "") -> None:
    """Wait until gRPC health at `address` says SERVING."""
    wait_until(f"gRPC server at {address} ready", lambda: grpc_serving(address, service), timeout, error=TimeoutError)


def start_filter(port: int, *extra: str, env: dict[str, str] | None = None,
                 stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`llm-content-filter serve` on 127.0.0.1:`port` (plus `extra` arguments); ready on return."""
    cmd = [sys.executable, "-m", "filter", "serve", "--listen", f"127.0.0.1:{port}", "--metrics-port", "0", *extra]
    full_env = {**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "bench-key", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=stdout, stderr=subprocess.PIPE)
    try:
        wait_grpc_ready(f"127.0.0.1:{port}")
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"filter did not start: {proc.stderr.read().decode() if proc.stderr else ''}") from None
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait for the drain; SIGKILL if it takes longer than 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    """A process's peak resident memory so far (VmHWM), in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
