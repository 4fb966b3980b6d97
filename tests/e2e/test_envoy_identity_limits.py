"""Limits key on verified identity only (real Envoy, the real filter, the fake provider of fake_provider.py).

Envoy runs the rate limit after ext_authz and builds its descriptors from the identity the filter
verified (ext_authz dynamic metadata), never from client headers. With
`policy.trust_identity_headers: false` a client's x-workspace-id is not an identity: it cannot
spend another workspace's limit, and it is not forwarded to the provider as one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import avoid_minute_edge

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess, write_config

pytestmark = pytest.mark.e2e

RPM = 2
BODY = json.dumps(
    {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "Tidy the imports."}]}
).encode()


def stack(workdir: Path, fake: FakeProvider, trust: bool) -> tuple[FilterProcess, EnvoyProcess]:
    config = write_config(
        workdir / "filter.yaml",
        {"policy": {"trust_identity_headers": trust}, "rate_limits": {"workspace_requests_per_minute": RPM}},
    )
    flt = FilterProcess(workdir, config=config).start()
    try:
        envoy = start_envoy(workdir, "--upstream", fake.url, "--filter", flt.address)
    except BaseException:
        flt.stop()
        raise
    return flt, envoy


@pytest.fixture(scope="module")
def untrusted(
    tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider
) -> Iterator[EnvoyProcess]:
    flt, envoy = stack(tmp_path_factory.mktemp("untrusted"), fake_provider_server, trust=False)
    try:
        yield envoy
    finally:
        envoy.stop()
        flt.stop()


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider) -> Iterator[EnvoyProcess]:
    flt, envoy = stack(tmp_path_factory.mktemp("trusted"), fake_provider_server, trust=True)
    try:
        yield envoy
    finally:
        envoy.stop()
        flt.stop()


def test_untrusted_header_cannot_exhaust_another_workspaces_limit(
    untrusted: EnvoyProcess, fake_provider: FakeProvider
) -> None:
    victim = f"ws-victim-{uuid.uuid4().hex[:8]}"
    avoid_minute_edge()
    statuses = [untrusted.request("POST", "/v1/messages", BODY, {"x-workspace-id": victim})[0] for _ in range(RPM + 3)]
    assert statuses == [200] * (RPM + 3)  # nothing was counted against `victim`
    assert len(fake_provider.requests) == RPM + 3
    for sent in fake_provider.requests:
        assert sent.headers.get("x-workspace-id") != victim  # not forwarded as if it were an identity
    untrusted.stop()  # flush the access log
    # The access log names no identity either: none was verified.
    lines = [line for line in untrusted.access_log() if line["route"] == "anthropic-by-path"]
    untrusted.start()
    assert len(lines) >= RPM + 3
    assert all(line["workspace_id"] is None for line in lines)


def test_verified_identity_is_limited_and_logged(trusted: EnvoyProcess, fake_provider: FakeProvider) -> None:
    """The positive control: where the filter vouches for the header, Envoy's descriptors use it."""
    ws, other = f"ws-a-{uuid.uuid4().hex[:8]}", f"ws-b-{uuid.uuid4().hex[:8]}"
    avoid_minute_edge()
    for _ in range(RPM):
        assert trusted.request("POST", "/v1/messages", BODY, {"x-workspace-id": ws})[0] == 200
    status, headers, body = trusted.request("POST", "/v1/messages", BODY, {"x-workspace-id": ws})
    assert status == 429
    assert headers["x-ratelimit-limit"].startswith(str(RPM))
    # Envoy names the route's provider in the descriptor, so the 429 is in Anthropic's own shape.
    assert json.loads(body)["error"]["type"] == "rate_limit_error"
    assert trusted.request("POST", "/v1/messages", BODY, {"x-workspace-id": other})[0] == 200
    assert [r.headers["x-workspace-id"] for r in fake_provider.requests] == [ws] * RPM + [other]
    trusted.stop()  # flush the access log
    limited = [line for line in trusted.access_log() if line["status"] == 429]
    trusted.start()
    assert limited and limited[-1]["workspace_id"] == ws
    assert limited[-1]["decision_id"]  # checked first, then limited
