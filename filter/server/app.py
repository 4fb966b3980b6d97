"""Process wiring: grpc server, health, reload on SIGHUP / file change, drain on SIGTERM, worker processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from filter.audit import AuditLog
from filter.runtime import Runtime
from filter.server.authz import AuthorizationServicer
from filter.server.extproc import AsyncUsageServer
from filter.server.ratelimit import RateLimitServicer, RequestCounter
from filter.server.usage_sink import InstrumentedStore, UsageSink
from filter.settings import REWRITER_LISTEN_ENV, USAGE_LISTEN_ENV, Settings
from filter.store import Store, StoreError, open_store
from filter.telemetry import Telemetry, prometheus_telemetry
from filter.tokens import TokenCounter, load_encoding

if TYPE_CHECKING:
    from filter.server.rewriter import AsyncRewriterServer

log = logging.getLogger("llm_content_filter")
DRAIN_SECONDS = 10.0
_GRPC_OVERHEAD = 1024 * 1024  # headers and framing on top of the largest admitted body
# RPCs a worker holds at once (running or waiting for a thread); more are refused with RESOURCE_EXHAUSTED,
# which Envoy answers fail closed. Waiting RPCs cost little: a handler thread reads the message.
# Checks are CPU-bound under one GIL: 8 threads keep small Checks moving past big ones, and bound the bodies
# held at once (filter/server/admission.py bounds what the admitted ones may cost).
_RPCS_PER_THREAD = 4


def build_server(runtime: Runtime, telemetry: Telemetry, audit: AuditLog, listen: str,
                 threads: int = 8, store: Store | None = None, counter: TokenCounter | None = None,
                 rewriter: bool = True) -> tuple[grpc.Server, health.HealthServicer, int]:
    """A ready-to-start grpc server with Check, ShouldRateLimit and health. Returns the bound port.
    `store`: shared rate-limit counts and token budgets (None: counts in this process, no budgets).
    `rewriter`: this worker serves the rewriter (its own server, `AsyncRewriterServer`); False: Check never
    answers "allow once redacted", whatever the gateway says, so a value to redact blocks."""
    settings = runtime.current.settings
    # Envoy may buffer up to max_body_bytes and sends it once (raw_body, or body without pack_as_bytes); the
    # message also carries headers and metadata. A message with both fields full is refused here.
    receive_limit = settings.limits.max_body_bytes + _GRPC_OVERHEAD
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="check"),
        maximum_concurrent_rpcs=threads * _RPCS_PER_THREAD,
        options=[
            ("grpc.max_receive_message_length", receive_limit),
            ("grpc.so_reuseport", 0),
            # No window growth (BDP probing): an RPC waiting for a thread holds ~64 KiB, not its 16 MiB body.
            ("grpc.http2.bdp_probe", 0),
        ],
    )
    if counter is None:
        counter = TokenCounter(load_encoding(settings.token_encoding_file))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
        AuthorizationServicer(runtime, counter, audit, telemetry, store=store, rewriter=rewriter), server
    )
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(
        RateLimitServicer(runtime, RequestCounter(), telemetry, store=store), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    for name in ("", "envoy.service.auth.v3.Authorization", "envoy.service.ratelimit.v3.RateLimitService"):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, port


def serve_one(config_file: str | None, settings: Settings) -> int:
    """Run one worker in this process until SIGTERM/SIGINT; in-flight checks are drained."""
    # Metrics are served on the gRPC listen host: loopback locally, the pod address where the filter listens on it.
    telemetry = prometheus_telemetry(settings.metrics_port, settings.listen.rsplit(":", 1)[0],
                                     settings.max_identity_values, settings.metric_models)
    runtime = Runtime(config_file, settings, on_reload=lambda result, _detail: telemetry.reload(result))
    telemetry.track(runtime)  # gauges of the live rule set (filter.telemetry)
    audit = AuditLog(settings.audit_path, settings.log_prompts)
    store = _open_store(settings, telemetry)
    telemetry.track_store(store)  # budget gauges read the store at scrape time
    counter = TokenCounter(load_encoding(settings.token_encoding_file))
    server, health_servicer, port = build_server(runtime, telemetry, audit, settings.listen, store=store,
                                                 counter=counter, rewriter=settings.rewriter_listen is not None)
    sink = UsageSink(store, telemetry)
    usage_server: AsyncUsageServer | None = None
    if settings.usage_listen:
        # Response streams last minutes: served on an event loop of their own, apart from the Check threads.
        usage_server = AsyncUsageServer(settings.usage_listen, sink.on_usage, counter.count_text)
        try:
            usage_server.start()
        except (OSError, RuntimeError) as e:  # grpc reports a port in use as either
            raise OSError(f"cannot listen on {settings.usage_listen} (usage_listen): {e}") from None
    rewriter = _start_rewriter(settings, runtime, counter, telemetry, audit)
    server.start()
    runtime.watch()
    log.info("serving %s (%d rules, digest %s), usage observer %s, rewriter %s, store %s, pid %d", settings.listen,
             len(runtime.current.ruleset.rules), runtime.current.ruleset.digest, settings.usage_listen or "off",
             settings.rewriter_listen or "off", _store_kind(settings), os.getpid())
    stopping = threading.Event()

    def on_term(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=runtime.reload, name="sighup-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    while not stopping.wait(0.5):
        pass
    health_servicer.enter_graceful_shutdown()
    stopped = server.stop(DRAIN_SECONDS)
    if usage_server is not None:
        usage_server.stop(DRAIN_SECONDS)  # open response streams get the same grace, then count as cut off
    if rewriter is not None:
        rewriter.stop(DRAIN_SECONDS)  # rehydrated answers too; a stream still open then is reset
    stopped.wait()
    sink.stop(DRAIN_SECONDS)  # settle what the last responses reported
    if store is not None:
        store.close()
    runtime.stop()
    log.info("stopped")
    return 0


def _start_rewriter(settings: Settings, runtime: Runtime, counter: TokenCounter, telemetry: Telemetry,
                    audit: AuditLog) -> AsyncRewriterServer | None:
    """The redaction rewriter on its own port and event loop (a rehydrated answer streams for minutes: never on a
    Check thread). Without `rewriter_listen` there is none, and Check refuses what it would have redacted."""
    if not settings.rewriter_listen:
        log.warning("rewriter_listen is not set: no redaction rewriter; a value the policy would redact is refused "
                    "(400) instead of replaced by a placeholder")
        return None
    # Imported only when configured: the rewriter and filter.rewrite cost ~2.7 MiB per worker.
    from filter.server.rewriter import AsyncRewriterServer

    rewriter = AsyncRewriterServer(settings.rewriter_listen, runtime, counter, telemetry, audit,
                                   max_streams=settings.rewriter_max_streams)
    try:
        rewriter.start()
    except (OSError, RuntimeError) as e:  # grpc reports a port in use as either
        raise OSError(f"cannot listen on {settings.rewriter_listen} (rewriter_listen): {e}") from None
    return rewriter


def worker_env(settings: Settings, index: int, env: dict[str, str]) -> dict[str, str]:
    """The environment of worker `index`: its own usage observer and rewriter ports, PORT + index."""
    out = dict(env)
    if settings.usage_listen:
        out[USAGE_LISTEN_ENV] = worker_addresses(settings.usage_listen, settings.workers)[index]
    if settings.rewriter_listen:
        out[REWRITER_LISTEN_ENV] = worker_addresses(settings.rewriter_listen, settings.workers)[index]
    return out


def _open_store(settings: Settings, telemetry: Telemetry) -> Store | None:
    if settings.store is None:
        return None
    try:
        store = open_store(settings.store.url, tz=settings.store.timezone, timeout=settings.store.timeout_seconds,
                           reservation_timeout=settings.store.reservation_timeout_seconds)
    except (StoreError, ValueError) as e:
        raise OSError(f"cannot open the store ({_store_kind(settings)}): {e}") from None
    return InstrumentedStore(store, telemetry)


def _store_kind(settings: Settings) -> str:
    """The store's scheme only: a Redis URL may carry a password."""
    return settings.store.url.split(":", 1)[0] if settings.store is not None else "off"


def worker_addresses(listen: str, workers: int) -> list[str]:
    host, port = listen.rsplit(":", 1)
    return [f"{host}:{int(port) + i}" for i in range(workers)]


def serve(config_file: str | None, settings: Settings) -> int:
    """One worker in-process, or N worker processes on consecutive ports (Envoy lists each as an endpoint)."""
    if settings.workers == 1:
        return serve_one(config_file, settings)
    children: list[subprocess.Popen[bytes]] = []
    for i, address in enumerate(worker_addresses(settings.listen, settings.workers)):
        cmd = [sys.executable, "-m", "filter", "serve", "--listen", address, "--workers", "1",
               "--metrics-port", str(settings.metrics_port + i if settings.metrics_port else 0)]
        if config_file:
            cmd += ["--config", config_file]
        # each worker observes responses and rewrites on its own ports too: PORT, PORT+1, ...
        children.append(subprocess.Popen(cmd, env=worker_env(settings, i, dict(os.environ))))
    log.info("started %d workers on %s", len(children), ", ".join(worker_addresses(settings.listen, settings.workers)))

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    codes = [child.wait() for child in children]
    return max(codes)
