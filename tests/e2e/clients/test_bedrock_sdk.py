"""`boto3` (bedrock-runtime Converse and ConverseStream) through the gateway: real Envoy and the real filter server
in front of a fake Bedrock runtime (tests/e2e/clients/sdk_provider.py; AWS cannot be reached from here).

boto3 signs with SigV4 using dummy credentials and endpoint_url=http://gateway/bedrock; it does not matter here
what the gateway does with that signature (in production it signs the request for AWS itself). ConverseStream's
answer is AWS event-stream framing (binary, CRC-checked), which botocore decodes event by event. Retries are off
(total_max_attempts=1).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.waiting import avoid_minute_edge

from ..envoy_harness import EnvoyProcess
from .expect import assert_blocked_message, assert_rate_limit_message, assert_unavailable_message
from .sdk_provider import REPLY, SdkProvider
from .stack import CLEAN_PROMPT, WORKSPACE_RPM, Leak, base_url, new_workspace

pytestmark = pytest.mark.e2e

PREFIX = "/bedrock"  # the gateway's provider prefix
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def client(envoy: EnvoyProcess, prefix: str = PREFIX, **headers: str) -> Any:
    sdk = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=base_url(envoy, prefix),
        aws_access_key_id="dummy-access-key",
        aws_secret_access_key="dummy-secret-key",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )

    def add_headers(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    sdk.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
    return sdk


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def ask(sdk: Any, text: str = CLEAN_PROMPT) -> dict[str, Any]:
    return dict(sdk.converse(modelId=MODEL, messages=messages(text)))


def error(exc: ClientError) -> tuple[int, str, str, dict[str, str]]:
    """(HTTP status, Error.Code, Error.Message, headers) as botocore parsed them."""
    meta = exc.response["ResponseMetadata"]
    err = exc.response["Error"]
    return meta["HTTPStatusCode"], str(err.get("Code")), str(err.get("Message")), dict(meta["HTTPHeaders"])


@pytest.mark.parametrize("prefix", [PREFIX, ""], ids=["prefix", "root"])  # root: the provider's own paths
def test_converse_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider, prefix: str) -> None:
    answer = ask(client(gateway, prefix))
    assert answer["output"]["message"]["content"] == [{"text": REPLY}]
    assert answer["stopReason"] == "end_turn"
    (sent,) = upstream.requests
    assert sent.path.startswith("/model/") and sent.path.endswith("/converse")  # no gateway prefix reaches AWS
    assert sent.headers["x-llm-filter-decision"] == "allow"
    assert sent.json()["messages"][0]["content"][0]["text"] == CLEAN_PROMPT
    assert "dummy-access-key" not in sent.headers.get("authorization", "")  # the client's own signature stays behind


def test_converse_stream_is_answered_and_parsed(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    events = list(client(gateway).converse_stream(modelId=MODEL, messages=messages(CLEAN_PROMPT))["stream"])
    assert [next(iter(e)) for e in events] == ["messageStart", "contentBlockDelta", "contentBlockStop", "messageStop",
                                               "metadata"]  # fmt: skip
    assert events[1]["contentBlockDelta"]["delta"]["text"] == REPLY
    assert events[3]["messageStop"]["stopReason"] == "end_turn"
    assert upstream.requests[0].path.endswith("/converse-stream")


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_secret_is_blocked_naming_the_filter(gateway: EnvoyProcess, upstream: SdkProvider, leak: Leak, stream: bool) -> None:
    sdk = client(gateway)
    with pytest.raises(ClientError) as caught:
        if stream:
            list(sdk.converse_stream(modelId=MODEL, messages=messages(leak.prompt))["stream"])
        else:
            ask(sdk, leak.prompt)
    status, code, message, headers = error(caught.value)
    # Not AccessDeniedException/UnrecognizedClientException (403 about credentials): users would rotate keys.
    assert (status, code) == (400, "ValidationException"), str(caught.value)
    assert headers["x-llm-filter-decision"] == "deny"
    assert_blocked_message(str(caught.value), headers["x-llm-filter-id"], leak)
    assert_blocked_message(message, headers["x-llm-filter-id"], leak)
    assert upstream.requests == []


def test_rate_limit_is_a_throttling_exception(gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    sdk = client(gateway, **{"x-workspace-id": new_workspace()})
    avoid_minute_edge()
    for _ in range(WORKSPACE_RPM):
        ask(sdk)
    with pytest.raises(ClientError) as caught:
        ask(sdk)
    status, code, message, headers = error(caught.value)
    assert (status, code) == (429, "ThrottlingException"), str(caught.value)
    assert_rate_limit_message(message)
    assert_rate_limit_message(str(caught.value))
    assert int(headers["retry-after"]) >= 1
    assert len(upstream.requests) == WORKSPACE_RPM


def test_stopped_filter_is_a_503_naming_the_filter(dead_gateway: EnvoyProcess, upstream: SdkProvider) -> None:
    with pytest.raises(ClientError) as caught:
        ask(client(dead_gateway))
    status, code, message, headers = error(caught.value)
    assert (status, code) == (503, "ServiceUnavailableException"), str(caught.value)
    assert headers["x-llm-filter-decision"] == "unavailable"
    assert int(headers["retry-after"]) >= 1
    assert_unavailable_message(message)
    assert upstream.requests == []
