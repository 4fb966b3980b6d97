"""A grpc.aio server in a thread and event loop of its own, beside the sync Check server: open streams cost no
thread there, so long streams (usage observation, rehydration) never take a Check's thread. Serves gRPC health
for the one service it hosts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class AioServerThread:
    """`add_servicers(server)` registers the service (`service_name` for health) on a grpc.aio server that
    `start` runs in its own thread; `stop` drains it. `options` and `max_streams` go to the server as given.

        server = AioServerThread("127.0.0.1:9101", "usage", SERVICE_NAME, add, max_streams=4096)
        port = server.start()
        ...
        server.stop(grace=10.0)
    """

    def __init__(self, listen: str, name: str, service_name: str, add_servicers: Callable[[grpc.aio.Server], None],
                 *, max_streams: int, options: Sequence[tuple[str, Any]] = ()) -> None:
        self._listen = listen
        self._name = name
        self._service_name = service_name
        self._add_servicers = add_servicers
        self._max_streams = max_streams
        self._options = list(options)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._grace: float | None = None
        self._error: BaseException | None = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> int:
        """Starts serving; returns the bound port. Raises OSError when the address cannot be bound."""
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-aio", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._name} server on {self._listen} did not start")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Stops accepting streams, lets open ones run up to `grace` seconds, then cancels them."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        self._loop = self._stopping = self._thread = None
        if loop is None or stopping is None or thread is None or not thread.is_alive():
            return
        self._grace = grace
        loop.call_soon_threadsafe(stopping.set)
        thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # reported to start(); a running server never gets here
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = grpc.aio.server(maximum_concurrent_rpcs=self._max_streams, options=self._options)
        self._add_servicers(server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port(self._listen)
        if port == 0:
            raise OSError(f"cannot listen on {self._listen}")
        await server.start()
        await health_servicer.set(self._service_name, health_pb2.HealthCheckResponse.SERVING)
        self.port = port
        self._ready.set()
        await self._stopping.wait()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(self._grace)
