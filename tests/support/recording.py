"""A fake HTTP server that records what it receives (fakes of LLM providers: real ones cannot be reached)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

R = TypeVar("R")


class OwnedServer(ThreadingHTTPServer):
    """The HTTP server; its handlers reach the fake through `self.server.owner`."""

    daemon_threads = True
    owner: Any


class RecordingServer(Generic[R]):
    """Threaded HTTP server on 127.0.0.1 (a free port by default) whose `handler` calls `self.server.owner.record`
    with each request. Use as a context manager."""

    thread_name = "fake-server"

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._requests: list[R] = []
        self._server = OwnedServer((host, port), handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[R]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def record(self, request: R) -> None:
        with self._lock:
            self._requests.append(request)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
