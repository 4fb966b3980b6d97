"""Stacks for the SDK tests: real Envoy (envoy/envoy.yaml rendered for local upstreams) calling the real filter
server, in front of SdkProvider, a fake of the LLM providers (they cannot be reached from here).

    gateway       shipped packs, identity headers trusted, WORKSPACE_RPM requests/minute per workspace
                  (requests without x-workspace-id are not rate limited, so only the 429 tests send one)
    dead_gateway  the same, but its filter has been killed (SIGKILL): every request must fail closed
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..envoy_harness import EnvoyProcess, start_envoy
from ..filter_harness import FilterProcess, write_config
from .sdk_provider import SdkProvider
from .stack import WORKSPACE_RPM, Leak, aws_leak


@pytest.fixture(scope="package")
def provider() -> Iterator[SdkProvider]:
    with SdkProvider() as fake:
        yield fake


@pytest.fixture
def upstream(provider: SdkProvider) -> SdkProvider:
    """The package's fake provider, emptied for this test."""
    provider.clear()
    return provider


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory, provider: SdkProvider) -> Iterator[EnvoyProcess]:
    workdir = tmp_path_factory.mktemp("clients")
    config = write_config(workdir / "filter.yaml", {"policy": {"trust_identity_headers": True},  # the SDKs send x-workspace-id
                                                    "rate_limits": {"workspace_requests_per_minute": WORKSPACE_RPM}})
    with FilterProcess(workdir, config=config) as flt:
        envoy = start_envoy(workdir, "--upstream", provider.url, "--filter", flt.address, name="envoy-clients")
        try:
            yield envoy
        finally:
            envoy.stop()


@pytest.fixture(scope="package")
def dead_gateway(tmp_path_factory: pytest.TempPathFactory, provider: SdkProvider) -> Iterator[EnvoyProcess]:
    workdir = tmp_path_factory.mktemp("clients-dead")
    flt = FilterProcess(workdir).start()
    envoy = start_envoy(workdir, "--upstream", provider.url, "--filter", flt.address, name="envoy-dead")
    try:
        flt.kill()  # a crashed filter: no drain, no goodbye
        yield envoy
    finally:
        envoy.stop()
        flt.stop()


@pytest.fixture
def leak() -> Leak:
    return aws_leak()
