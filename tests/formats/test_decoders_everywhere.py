"""Every decoder runs on every body type: a percent-encoded or `\\u`-escaped token is found in a text/plain body,
an unknown JSON shape and a known API alike, at the offsets of the encoded run as sent."""

from __future__ import annotations

import json
import random
import string
import zlib
from collections.abc import Callable

import pytest

from filter.model import Decision
from filter.pipeline import evaluate
from filter.rules.validators import _base62
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.support.envelopes import make_envelope

RNG = random.Random(31)


def github_token() -> str:
    body = "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + _base62(zlib.crc32(body.encode()), 6)


TOKEN = github_token()
PERCENT = "".join(f"%{ord(c):02X}" if c in "_" or i % 3 == 0 else c for i, c in enumerate(TOKEN))
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in TOKEN)


@pytest.fixture(scope="module")
def check() -> Callable[[bytes | str, str, str], Decision]:
    runtime = Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}))
    counter = TokenCounter(load_encoding())

    def check(body: bytes | str, path: str, content_type: str) -> Decision:
        return evaluate(make_envelope(body, path, {"content-type": content_type}), runtime.current, counter).decision

    return check


def curl_line(encoded: str) -> str:
    return f"$ curl -s 'https://api.northwind.io/v1/export?format=csv&token={encoded}'\nok\n"


BODIES = {
    "text-plain-unknown-path": (lambda e: curl_line(e), "/upload", "text/plain", "body"),
    "text-plain-chat-path": (lambda e: curl_line(e), "/v1/chat/completions", "text/plain", "body"),
    "octet-stream": (lambda e: curl_line(e), "/ingest", "application/octet-stream", "body"),
    "unknown-json-shape": (lambda e: json.dumps({"job": {"log": curl_line(e)}}), "/ingest", "application/json",
                           "$.job.log"),
    "chat-json": (lambda e: json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": curl_line(e)}]}),
                  "/v1/chat/completions", "application/json", "messages[0].content"),
}


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_a_percent_encoded_token_is_found_in_every_body_type(check: Callable[..., Decision], shape: str) -> None:
    build, path, content_type, location = BODIES[shape]
    d = check(build(PERCENT), path, content_type)
    assert not d.allowed and d.reason == "secret_detected"
    found = [f for f in d.findings if f.rule_id == "github-pat"]
    assert [(f.location, f.decoded) for f in found] == [(location, "percent")]
    text = curl_line(PERCENT)
    assert text[found[0].start:found[0].end] == PERCENT  # the encoded run as sent


@pytest.mark.parametrize("shape", ["text-plain-unknown-path", "octet-stream"])
def test_a_unicode_escaped_token_in_a_text_body_is_found(check: Callable[..., Decision], shape: str) -> None:
    build, path, content_type, location = BODIES[shape]
    d = check(build(ESCAPED), path, content_type)
    found = [f for f in d.findings if f.rule_id == "github-pat"]
    assert [(f.location, f.decoded) for f in found] == [(location, "json")]
    text = curl_line(ESCAPED)
    assert text[found[0].start:found[0].end] == ESCAPED
