"""Bedrock through the gateway: the gateway signs (SigV4) what AWS receives, with its own credentials.

A client's signature covers `Host: <the gateway>` and the gateway rewrites Host (and removes the
/bedrock prefix), so a client-signed request could never be accepted by AWS. The gateway therefore
discards the client's Authorization / x-amz-* and signs each request itself as it leaves Envoy.
The fake Bedrock (tests/e2e/fake_bedrock.py, a fake of AWS) recomputes every signature with
botocore and the credentials configured for Envoy, and rejects what AWS would reject.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from .envoy_harness import EnvoyProcess, start_envoy
from .fake_bedrock import FakeBedrock, signature_problem
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess

pytestmark = pytest.mark.e2e

GATEWAY_KEYS = Credentials("AKIAGATEWAYEXAMPLE01", "gateway-secret-key-for-tests-only-000000", "gateway-session")
CLIENT_KEYS = {"aws_access_key_id": "AKIACLIENTEXAMPLE001", "aws_secret_access_key": "client-secret",
               "aws_session_token": "client-session-token"}  # fmt: skip
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CONVERSE = {"messages": [{"role": "user", "content": [{"text": "Summarise the build log in one line."}]}]}


def gateway_env(credentials: Credentials) -> dict[str, str]:
    env = {"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    return env


@pytest.fixture(scope="module")
def content_filter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilterProcess]:
    with FilterProcess(tmp_path_factory.mktemp("bedrock-filter")) as flt:
        yield flt


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(GATEWAY_KEYS) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    content_filter: FilterProcess,
    bedrock: FakeBedrock,
    fake_provider_server: FakeProvider,
) -> Iterator[EnvoyProcess]:
    envoy = start_envoy(
        tmp_path_factory.mktemp("bedrock-envoy"),
        "--upstream", fake_provider_server.url, "--upstream", f"bedrock={bedrock.url}",
        "--filter", content_filter.address,
        env=gateway_env(GATEWAY_KEYS),
    )  # fmt: skip
    try:
        yield envoy
    finally:
        envoy.stop()


@pytest.fixture
def fake_bedrock(bedrock: FakeBedrock) -> FakeBedrock:
    bedrock.clear()
    return bedrock


def runtime_client(envoy: EnvoyProcess, region: str = "us-east-1") -> object:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=f"http://127.0.0.1:{envoy.listen_port}/bedrock",
        region_name=region,
        config=Config(retries={"max_attempts": 1}),
        **CLIENT_KEYS,
    )


def test_boto3_converse_is_signed_by_the_gateway(gateway: EnvoyProcess, fake_bedrock: FakeBedrock) -> None:
    client = runtime_client(gateway)
    answer = client.converse(modelId=MODEL, **CONVERSE)  # type: ignore[attr-defined]
    assert answer["output"]["message"]["content"][0]["text"] == "ok"
    [received] = fake_bedrock.requests
    assert received.valid, received.problem
    assert received.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"  # prefix removed
    assert received.headers["host"] == "bedrock-runtime.us-east-1.amazonaws.com"
    assert received.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={GATEWAY_KEYS.access_key}/")
    assert received.headers["x-amz-security-token"] == GATEWAY_KEYS.token
    client_values = set(CLIENT_KEYS.values())
    assert not [v for v in received.headers.values() if any(c in v for c in client_values)]
    assert json.loads(received.body) == json.loads(json.dumps(CONVERSE))


def test_header_route_invoke_is_signed_over_the_exact_body(gateway: EnvoyProcess, fake_bedrock: FakeBedrock) -> None:
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "ünïcödé and a long line " * 200}]}).encode()  # fmt: skip
    status, _, resp = gateway.request(
        "POST",
        f"/model/{MODEL.replace(':', '%3A')}/invoke",
        body,
        {"x-llm-provider": "bedrock", "authorization": "AWS4-HMAC-SHA256 Credential=AKIACLIENTEXAMPLE001/x",
         "x-amz-date": "20200101T000000Z", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"},  # fmt: skip
    )
    assert status == 200, resp
    [received] = fake_bedrock.requests
    assert received.valid, received.problem
    assert received.body == body
    assert received.headers["x-amz-date"] != "20200101T000000Z"


def test_the_verifier_rejects_what_aws_would_reject(gateway: EnvoyProcess, fake_bedrock: FakeBedrock) -> None:
    """The fake is not a rubber stamp: the request the gateway signed fails with other keys or another body."""
    status, _, _ = gateway.request("POST", f"/bedrock/model/{MODEL}/converse", json.dumps(CONVERSE).encode())
    assert status == 200
    [r] = fake_bedrock.requests
    assert signature_problem(r.method, r.path, r.headers, r.body, GATEWAY_KEYS, "us-east-1") == ""
    other = Credentials(GATEWAY_KEYS.access_key, "another-secret", GATEWAY_KEYS.token)
    assert signature_problem(r.method, r.path, r.headers, r.body, other, "us-east-1") == "signature does not match"
    assert "SHA-256" in signature_problem(r.method, r.path, r.headers, r.body + b" ", GATEWAY_KEYS, "us-east-1")
    assert "scope" in signature_problem(r.method, r.path, r.headers, r.body, GATEWAY_KEYS, "eu-west-1")
    moved = dict(r.headers, host="127.0.0.1:10000")  # what a client-side signature would have covered
    assert signature_problem(r.method, r.path, moved, r.body, GATEWAY_KEYS, "us-east-1") == "signature does not match"


def test_region_and_credentials_file_are_render_options(
    tmp_path: Path, content_filter: FilterProcess, fake_provider_server: FakeProvider
) -> None:
    keys = Credentials("AKIAFILEKEYEXAMPLE01", "file-secret-key-for-tests-only-0000000")
    creds = tmp_path / "credentials"
    creds.write_text(f"[bedrock-gateway]\naws_access_key_id = {keys.access_key}\n"
                     f"aws_secret_access_key = {keys.secret_key}\n")  # fmt: skip
    with FakeBedrock(keys, region="eu-west-1") as fake:
        envoy = start_envoy(
            tmp_path,
            "--upstream", fake_provider_server.url, "--upstream", f"bedrock={fake.url}",
            "--filter", content_filter.address, "--aws-region", "eu-west-1",
            "--aws-credentials-file", str(creds), "--aws-profile", "bedrock-gateway",
            env={"AWS_EC2_METADATA_DISABLED": "true"},
        )  # fmt: skip
        try:
            answer = runtime_client(envoy, "eu-west-1").converse(modelId=MODEL, **CONVERSE)  # type: ignore[attr-defined]
        finally:
            envoy.stop()
        assert answer["stopReason"] == "end_turn"
        [received] = fake.requests
        assert received.valid, received.problem
        assert received.headers["host"] == "bedrock-runtime.eu-west-1.amazonaws.com"
        assert "x-amz-security-token" not in received.headers  # the file has no session token
