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
    assert d.verdict is Verdict.DENY and d.http_status == 400, (name, d.reason, d.findings)


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
    runtime = Runtime(str(cfg), load_settings(str(cfg), env={"LLM_FILTER_FINGERPRINT_KEY": "org-key"}))
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


# -- every road to the provider ---------------------------------------------------------------------------
from filter.model import Decision, ParsedRequest  # noqa: E402
from tests.formats.helpers import pdf_with_text  # noqa: E402


@pytest.fixture(scope="module")
def check():  # type: ignore[no-untyped-def]
    runtime = Runtime(None, load_settings(None, env={}))
    counter = TokenCounter(load_encoding())

    def _check(path: str, body: object = b"", method: str = "POST", **headers: str) -> tuple[Decision, ParsedRequest]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        result = evaluate(Envelope(method, path, {"content-type": "application/json", **headers}, raw),
                          runtime.current, counter)
        assert result.parsed is not None
        return result.decision, result.parsed

    return _check


def masked(parsed: ParsedRequest, decision: Decision, location: str) -> str:
    """The text at `location` with every finding span over it replaced, as an audit log would show it."""
    (text,) = [s.text for s in parsed.segments if s.location == location]
    merged: list[list[int]] = []
    for a, b in sorted((a, b) for f in decision.findings for loc, a, b in f.spans() if loc == location):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in reversed(merged):
        text = text[:a] + "[REDACTED]" + text[b:]
    return text


def aws_findings(decision: Decision) -> list[tuple[str, int, int, str]]:
    return [(f.location, f.start, f.end, f.decoded) for f in decision.findings if f.rule_id == "aws-access-key-id"]


HI = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/model/{key}/converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
        ("/openai/deployments/{key}/chat/completions?api-version=2024-10-21", HI),
        ("/v1beta/models/{key}:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}),
        ("/gemini/v1beta/models/{key}:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": "hi"}]}]}),
    ],
)
def test_key_in_a_path_segment_is_denied(check, path: str, body: object) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    d, parsed = check(path.replace("{key}", key), body)
    assert d.verdict is Verdict.DENY
    ((loc, start, end, _),) = aws_findings(d)
    assert loc == "path" and path.replace("{key}", key)[start:end] == key
    assert key not in masked(parsed, d, "path")


def test_percent_encoded_key_in_the_path_is_masked_in_the_path(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    encoded = key[:4] + "".join(f"%{ord(c):02X}" for c in key[4:])
    d, parsed = check(f"/model/{encoded}/converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert aws_findings(d) == [("path", 7, 7 + len(encoded), "percent")]
    assert masked(parsed, d, "path") == "/model/[REDACTED]/converse"


def test_key_in_a_query_parameter_is_denied_even_without_a_body(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    d, _ = check(f"/v1/chat/completions?note={key}", HI)
    assert d.verdict is Verdict.DENY and aws_findings(d) == [("query.note", 0, 20, "")]
    d, _ = check(f"/v1/models?note={key}", b"", method="GET")
    assert d.verdict is Verdict.DENY and aws_findings(d) == [("query.note", 0, 20, "")]


def test_gemini_key_parameter_is_its_credential(check) -> None:  # type: ignore[no-untyped-def]
    d, _ = check(f"/v1beta/models/gemini-2.0-flash:generateContent?key={aws_key_id()}",
                 {"contents": [{"parts": [{"text": "hi"}]}]})
    assert d.verdict is Verdict.ALLOW


@pytest.mark.parametrize("header", ["x-custom-note", "user-agent", "x-workspace-id"])
def test_key_in_a_request_header_is_denied(check, header: str) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    d, _ = check("/v1/chat/completions", HI, **{header: f"note {key}"})
    assert d.verdict is Verdict.DENY and aws_findings(d) == [(f"headers.{header}", 5, 25, "")]


def test_provider_credential_header_is_not_a_finding(check) -> None:  # type: ignore[no-untyped-def]
    d, _ = check("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                 **{"x-api-key": "sk-ant-api03-" + "a1B2" * 23 + "AA"})
    assert d.verdict is Verdict.ALLOW


@pytest.mark.parametrize("cut", [1, 4, 9, 19])
def test_key_split_across_adjacent_text_blocks_is_one_finding(check, cut: int) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    blocks = [{"type": "text", "text": "my key is " + key[:cut]}, {"type": "text", "text": key[cut:] + " thanks"}]
    d, parsed = check("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]})
    assert d.verdict is Verdict.DENY
    (f,) = [f for f in d.findings if f.rule_id == "aws-access-key-id"]
    assert f.spans() == (("messages[0].content[0].text", 10, 10 + cut), ("messages[0].content[1].text", 0, 20 - cut))
    assert masked(parsed, d, "messages[0].content[0].text") == "my key is [REDACTED]"
    assert masked(parsed, d, "messages[0].content[1].text") == "[REDACTED] thanks"


def test_key_inside_one_of_several_blocks_is_reported_once(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    blocks = [{"type": "text", "text": "a"}, {"type": "text", "text": f"key {key}"}, {"type": "text", "text": "b"}]
    d, _ = check("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": blocks}]})
    assert aws_findings(d) == [("messages[0].content[1].text", 4, 24, "")]


def test_zero_width_spaced_key_is_denied_with_offsets_into_the_original(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    text = "creds " + "\u200b".join(key) + "\ufeff ok"
    d, parsed = check("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    assert d.verdict is Verdict.DENY
    ((loc, start, end, how),) = aws_findings(d)
    assert (loc, how) == ("messages[0].content", "unicode")
    assert text[start:end].replace("\u200b", "").replace("\ufeff", "") == key
    assert masked(parsed, d, loc).startswith("creds [REDACTED]") and key[5:9] not in masked(parsed, d, loc)


def test_full_width_key_is_denied(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    wide = "".join(chr(ord(c) + 0xFEE0) for c in key)
    text = f"creds {wide} ok"
    d, _ = check("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    assert aws_findings(d) == [("messages[0].content", 6, 26, "unicode")]


def test_base64_encoded_key_in_message_text_is_denied(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    encoded = base64.b64encode(f"[default]\naws_access_key_id = {key}\n".encode()).decode()
    text = f"please decode {encoded} and configure"
    d, parsed = check("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    assert d.verdict is Verdict.DENY
    assert aws_findings(d) == [("messages[0].content", 14, 14 + len(encoded), "base64")]
    assert masked(parsed, d, "messages[0].content") == "please decode [REDACTED] and configure"


@pytest.mark.parametrize("api", ["anthropic", "openai", "gemini", "bedrock"])
def test_key_in_pdf_document_text_is_denied(check, api: str) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    pdf = base64.b64encode(pdf_with_text("Onboarding", f"aws_access_key_id = {key}")).decode()
    path, body = {
        "anthropic": ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}]}]}),
        "openai": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}}]}]}),
        "gemini": ("/v1beta/models/g:generateContent", {"contents": [{"parts": [
            {"inlineData": {"mimeType": "application/pdf", "data": pdf}}]}]}),
        "bedrock": ("/model/m/converse", {"messages": [{"role": "user", "content": [
            {"document": {"format": "pdf", "name": "a", "source": {"bytes": pdf}}}]}]}),
    }[api]
    d, _ = check(path, body)
    assert d.verdict is Verdict.DENY
    assert [f.decoded for f in d.findings if f.rule_id == "aws-access-key-id"] == ["pdf"]


def test_unreadable_pdf_is_allowed_as_an_attachment(check) -> None:  # type: ignore[no-untyped-def]
    pdf = base64.b64encode(b"%PDF-1.7 damaged").decode()
    d, parsed = check("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}]}]})
    assert d.verdict is Verdict.ALLOW and parsed.image_count == 1


def test_percent_encoded_key_finding_masks_the_original(check) -> None:  # type: ignore[no-untyped-def]
    key = aws_key_id()
    encoded = "".join(f"%{ord(c):02X}" for c in key)
    text = f"open https://example.net/cb?k={encoded}&x=1 now"
    d, parsed = check("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    ((loc, start, end, how),) = aws_findings(d)
    assert (loc, text[start:end], how) == ("messages[0].content", encoded, "percent")
    assert masked(parsed, d, loc) == "open https://example.net/cb?k=[REDACTED]&x=1 now"


def test_verified_github_token_is_one_finding(run) -> None:  # type: ignore[no-untyped-def]
    d = run(chat(f"token {github_token()}"))
    assert [f.rule_id for f in d.findings] == ["github-pat"]
