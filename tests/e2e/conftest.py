"""Shared fixtures for end-to-end tests through real Envoy (see envoy_harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.waiting import avoid_day_edge

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_provider import FakeProvider


@pytest.fixture(scope="module", autouse=True)
def _inside_one_utc_day() -> None:
    """Modules here read day budgets back through real processes on the real clock: none starts within a few
    minutes of UTC midnight (autouse: before the module's own fixtures start anything)."""
    avoid_day_edge()


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> FakeProvider:
    """The session's fake provider, emptied for this test."""
    fake_provider_server.clear()
    return fake_provider_server


@pytest.fixture
def envoy_factory(tmp_path: Path) -> Iterator[Callable[..., EnvoyProcess]]:
    """start(*render_args) -> a ready Envoy on free ports; every one is stopped at teardown."""
    started: list[EnvoyProcess] = []

    def start(*render_args: str) -> EnvoyProcess:
        envoy = start_envoy(tmp_path, *render_args, name=f"envoy{len(started)}")
        started.append(envoy)
        return envoy

    yield start
    for envoy in started:
        envoy.stop()
