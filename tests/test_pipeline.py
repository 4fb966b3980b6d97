"""evaluate() end to end without gRPC: evasions are caught, look-alikes are not findings."""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
import zlib

import pytest

from filter.model import Envelope, Verdict
from filter.pipeline import evaluate
from filter.rules.validators import _base62
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding

RNG = random.Random(7)


def github_token() -> str:
    body = "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + _base62(zlib.crc32(body.encode()), 6)


def aws_key_id() -> str:
    return "AKIA" + "".join(RNG.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(
    base64.b64encode(RNG.randbytes(48)).decode() for _ in range(12)) + "\n-----END RSA PRIVATE KEY-----"


@pytest.fixture(scope="module")
def run():  # type: ignore[no-untyped-def]
    runtime = Runtime(None, load_settings(None, env={}))
    counter = TokenCounter(load_encoding())

    def _run(body: bytes | str, path: str = "/v1/chat/completions", **headers: str):  # type: ignore[no-untyped-def]
        raw = body.encode() if isinstance(body, str) else body
        env = Envelope("POST", path, {"content-type": "application/json", **headers}, raw)
        return evaluate(env, runtime.current, counter).decision

    return _run


def chat(content: str) -> str:
    return json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})


def unicode_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


TOKEN = github_token()
EVASIONS = {
    "json-unicode-escapes": '{"messages":[{"role":"user","content":"key ' + unicode_escaped(TOKEN) + '"}]}',
    "escaped-slashes": chat(f"url https:\\/\\/x:{TOKEN}@github.com\\/org\\/repo").replace("\\\\/", "\\/"),
    "pem-escaped-newlines": chat(PEM),
    "percent-encoded-url": chat(f"curl 'https://api.example.net/v1?token={TOKEN.replace('_', '%5F')}'"),
    "json-in-json-tool-arguments": json.dumps({"model": "gpt-4o", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "write_file", "arguments": json.dumps({"path": "ci.yml", "content": f"GH_TOKEN: {TOKEN}"})}}]}]}),
    "base64-text-document": json.dumps({"model": "claude-sonnet-4", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {
            "type": "base64", "media_type": "text/plain",
            "data": base64.b64encode(f"deploy notes\nAWS_ACCESS_KEY_ID={aws_key_id()}\n".encode()).decode()}}]}]}),
}


@pytest.mark.parametrize("name", sorted(EVASIONS))
def test_evasions_are_caught(run, name: str) -> None:  # type: ignore[no-untyped-def]
    path = "/v1/messages" if "document" in name else "/v1/chat/completions"
    d = run(EVASIONS[name], path)
    assert d.verdict is Verdict.DENY and d.http_status == 403, (name, d.reason, d.findings)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_scanned(run, encoding: str) -> None:  # type: ignore[no-untyped-def]
    raw = chat(f"token {github_token()}").encode()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    assert run(body, **{"content-encoding": encoding}).reason == "secret_detected"


@pytest.mark.parametrize("marker", ["gitleaks:allow", "pragma: allowlist secret", "trufflehog:ignore",
                                    "llm-content-filter: allow", "# nosec"])
def test_nothing_in_a_body_can_allowlist_itself(run, marker: str) -> None:  # type: ignore[no-untyped-def]
    assert run(chat(f"GITHUB_TOKEN={github_token()}  # {marker}")).verdict is Verdict.DENY


LOOK_ALIKES = {
    "documented-aws-example": "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                              "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "placeholders": "OPENAI_API_KEY=YOUR_API_KEY\nGITHUB_TOKEN=${GITHUB_TOKEN}\npassword: changeme\n"
                    "token: <token>\napi_key = 'xxxxxxxxxxxxxxxxxxxx'\nsecret: '****'",
    "hashes-and-ids": "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 "
                      "commit 3b18e512dba79e4c8300dd08aeb37f8e728b8dad id 123e4567-e89b-12d3-a456-426614174000 "
                      "md5 5d41402abc4b2a76b9719d911017c592",
    "lockfile-integrity": '"integrity": "sha512-9qfSaF2nYPe8Ttxz1IrDVBdaB0H8E6U7ESqpx0jDbsRkVn7cy2Mr3e8Nm5Gy0ZbaQ2zV'
                          'FJPF4HUp3gYhh1fYVlwQ=="',
    "base64-image": "data:image/png;base64," + base64.b64encode(RNG.randbytes(300)).decode(),
    "public-key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb4zFvUHsWg1LbJYmQbAEXtP4n8G2o2v3mU1qFqQm9P dev@laptop",
    "code-naming-secrets": 'api_key = os.environ["OPENAI_API_KEY"]\ntoken = get_token()\n'
                           "const secret = process.env.CLIENT_SECRET;\npassword = vault.read('db/password')",
}


@pytest.mark.parametrize("name", sorted(LOOK_ALIKES))
def test_look_alikes_are_not_findings(run, name: str) -> None:  # type: ignore[no-untyped-def]
    d = run(chat(LOOK_ALIKES[name]))
    assert d.findings == (), [(f.rule_id, f.location) for f in d.findings]


def test_known_secret_fingerprint_is_critical_whatever_rule(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A canary whose own rule would drop it (low entropy) is still caught once its fingerprint is known."""
    from filter.rules import Fingerprinter

    monkeypatch.setenv("LLM_FILTER_FINGERPRINT_KEY", "org-key")
    canary = "Passw0rdPassw0rd"
    known = tmp_path / "known.txt"
    known.write_text(f"# canary for db\n{Fingerprinter(b'org-key')(canary.encode())}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"known_secrets: {known}\n")
    runtime = Runtime(str(cfg), load_settings(str(cfg), env={}))
    env = Envelope("POST", "/v1/chat/completions", {}, chat(f'DB_PASSWORD="{canary}"').encode())
    d = evaluate(env, runtime.current, TokenCounter(load_encoding())).decision
    assert d.verdict is Verdict.DENY
    assert any(f.severity.value == "critical" for f in d.findings)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1beta/models/g:generateContent",
         "/model/anthropic.claude-3/converse", "/model/anthropic.claude-3/invoke", "/unknown"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=4096), path=st.sampled_from(PATHS),
       encoding=st.sampled_from(["", "gzip", "deflate", "br", "zstd", "identity", "bogus"]))
def test_any_bytes_yield_a_decision_or_a_4xx(run, body: bytes, path: str, encoding: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"content-encoding": encoding} if encoding else {}
    d = run(body, path, **headers)
    assert d.http_status in (200, 400, 403, 413, 415), (d.http_status, d.reason)
    assert d.message
