"""Stores under test: the SQLite file and a REAL redis-server on a free 127.0.0.1 port (no fakes)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from filter.store import SqliteStore, Store
from filter.store.redis_store import RedisStore


class Clock:
    """An injected clock: epoch seconds that move only when a test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += seconds


def local(tz: str, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(tz), fold=fold)  # type: ignore[misc]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """redis-server, installed from Debian when missing and possible (as `make install` does)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run("apt-get update -qq && apt-get install -y -qq redis-server", shell=True, capture_output=True,
                       timeout=600)
        found = shutil.which("redis-server")
        if found:
            return found
    pytest.skip("redis-server is not installed and could not be installed here: run `make install` "
                "(it installs Debian's redis-server) to run the Redis store tests")


class RedisServer:
    """One real redis-server process: no persistence, so a restart starts empty (like a lost cache node)."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary, self.port = binary, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        for _ in range(200):
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return redis_server_binary()


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(redis_binary: str) -> Iterator[RedisServer]:
    """A server of this test's own, for tests that kill or freeze it."""
    server = RedisServer(redis_binary, free_port())
    server.start()
    yield server
    server.stop()


StoreFactory = Callable[..., Store]


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_location(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where this test's stores live: a SQLite file, or a Redis URL plus a key prefix of this test's own."""
    if backend == "sqlite":
        return str(tmp_path / "store.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}#{uuid.uuid4().hex[:12]}"


def make_store(location: str, **kw: object) -> Store:
    """A store at `location` (see store_location); every call opens a new one, as another worker process would."""
    if location.startswith("redis://"):
        url, prefix = location.split("#", 1)
        return RedisStore(url, prefix=prefix, **kw)  # type: ignore[arg-type]
    return SqliteStore(location, **kw)  # type: ignore[arg-type]


@pytest.fixture
def make(store_location: str) -> Iterator[StoreFactory]:
    opened: list[Store] = []

    def factory(**kw: object) -> Store:
        store = make_store(store_location, **kw)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
