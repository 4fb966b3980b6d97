"""Stores under test: the SQLite file and a REAL redis-server on a free 127.0.0.1 port (no fakes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from filter.store import Store
from tests.store.stores import RedisServer, StoreFactory, make_store
from tests.support.ports import free_port


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


@pytest.fixture
def make(store_location: str) -> Iterator[StoreFactory]:
    """Opens stores at this test's location; each call is a new store, as another worker process would open."""
    opened: list[Store] = []

    def factory(**kw: object) -> Store:
        store = make_store(store_location, **kw)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
