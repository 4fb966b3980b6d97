"""Request bodies rewritten for redaction: findings from the real pipeline (shipped packs) replaced by
placeholders, the body still valid for its provider, every other byte as the client sent it."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import brotli
import pytest
import zstandard

from filter.model import Category
from filter.rewrite import Placeholders, RewriteError, kind_of, rewrite
from filter.rewrite.placeholders import PATTERN
from tests.rewrite.helpers import (
    PLACEHOLDERS,
    assert_only_spans_changed,
    dumps,
    github_token,
    redact,
    run,
)
from tests.support.envelopes import make_envelope

EMAIL = "ravi.menon84@gmail.com"
PHONE = "(415) 738-2046"
TOKEN = github_token()


def _iban() -> str:
    bban = "370400440532013077"
    check_digits = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    return f"DE{check_digits:02d}{bban}"


IBAN = _iban()


def leftovers(body: bytes, path: str, headers: dict[str, str] | None) -> list[str]:
    """Findings the rewritten body still has, other than on a placeholder itself (`<SECRET:...>` reads like an
    assignment to the generic-secret rule)."""
    evaluation = run(make_envelope(body, path, headers))
    assert evaluation.parsed is not None
    texts = {s.location: s.text for s in evaluation.parsed.segments if s.origin is None}
    return [f.rule_id for f in evaluation.decision.findings
            if not PATTERN.search(texts.get(f.location, "")[max(0, f.start - 1): f.end + 1])]


def check(body: object, path: str = "/v1/chat/completions",
          headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str], list[str]]:
    envelope, out = redact(body, path, headers)
    assert out.changed
    json.loads(out.body)  # still JSON
    found = assert_only_spans_changed(envelope.body, out.body, dict(out.replaced))
    assert not leftovers(out.body, path, headers)
    return out.body, dict(out.replaced), found


def test_openai_chat_every_placement() -> None:
    args = json.dumps({"cmd": f"git push https://{TOKEN}@github.com/a/b", "notify": EMAIL})
    body = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": f"Escalate to {EMAIL}."},
        {"role": "user", "content": [{"type": "text", "text": f"call me at {PHONE}"}]},
        {"role": "assistant", "content": f"Using {TOKEN} as asked", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"stdout": f"IBAN {IBAN}\n"})},
    ]}
    new, replaced, found = check(body)
    doc = json.loads(new)
    assert doc["messages"][0]["content"] == f"Escalate to {PLACEHOLDERS.make('EMAIL', EMAIL)}."
    inner = json.loads(doc["messages"][2]["tool_calls"][0]["function"]["arguments"])  # still JSON inside
    assert inner["notify"] == PLACEHOLDERS.make("EMAIL", EMAIL)
    assert TOKEN not in new.decode() and EMAIL not in new.decode()
    assert json.loads(doc["messages"][3]["content"])["stdout"] == f"IBAN {PLACEHOLDERS.make('IBAN', IBAN)}\n"
    assert set(replaced.values()) >= {EMAIL, PHONE, TOKEN, IBAN}
    assert {p.split("_")[0] for p in found} >= {"<EMAIL", "<PHONE", "<IBAN", "<SECRET:github-pat"}


def test_escapes_outside_the_spans_stay_as_sent() -> None:
    raw = ('{"model":"gpt-4o","messages":[{"role":"user","content":"caf\\u00e9 \\/tmp\\n'
           + EMAIL + ' \\ud83d\\ude00 end"}]}')
    new, _, _ = check(raw)
    assert new.decode().startswith('{"model":"gpt-4o","messages":[{"role":"user","content":"caf\\u00e9 \\/tmp\\n<EMAIL_')
    assert new.decode().endswith('> \\ud83d\\ude00 end"}]}')


def test_value_written_with_unicode_escapes_is_replaced_escapes_and_all() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in TOKEN)
    raw = '{"messages":[{"role":"user","content":"key ' + escaped + ' ok"}]}'
    new, replaced, found = check(raw)
    assert new.decode() == '{"messages":[{"role":"user","content":"key ' + found[0] + ' ok"}]}'
    assert replaced[found[0]] == TOKEN


def test_escaped_json_in_tool_arguments_stays_valid_json() -> None:
    args = '{"env": {"DD_API_KEY": "x", "to": "' + EMAIL + '"}, "note": "tab\\there"}'
    body = {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": args}}]}]}
    new, _, _ = check(body)
    arguments = json.loads(new)["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments)["env"]["to"].startswith("<EMAIL_")
    assert '"note": "tab\\there"' in arguments  # untouched escapes inside the inner JSON too


def test_anthropic_system_tool_use_and_tool_result() -> None:
    body = {"model": "claude-sonnet-4", "max_tokens": 100,
            "system": [{"type": "text", "text": f"Owner: {EMAIL}"}],
            "messages": [
                {"role": "user", "content": f"ssn 536-22-1847 of {EMAIL}"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "mail",
                                                   "input": {"to": EMAIL, "token": TOKEN}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                              "content": [{"type": "text", "text": f"sent to {PHONE}"}]}]},
            ]}
    new, _, found = check(body, "/v1/messages")
    doc = json.loads(new)
    assert doc["messages"][1]["content"][0]["input"]["token"].startswith("<SECRET:github-pat_")
    assert any(p.startswith("<SSN_") for p in found)


def test_gemini_and_bedrock_converse() -> None:
    gemini = {"systemInstruction": {"parts": [{"text": f"mail {EMAIL}"}]},
              "contents": [{"role": "user", "parts": [{"text": f"token {TOKEN}"}]},
                           {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"to": EMAIL}}}]},
                           {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": PHONE}}}]}]}
    check(gemini, "/v1beta/models/gemini-2.0-flash:generateContent")
    converse = {"system": [{"text": f"mail {EMAIL}"}],
                "messages": [{"role": "user", "content": [{"text": f"token {TOKEN}"}]},
                             {"role": "assistant", "content": [{"toolUse": {"toolUseId": "a", "name": "f",
                                                                            "input": {"to": EMAIL}}}]},
                             {"role": "user", "content": [{"toolResult": {"toolUseId": "a",
                                                                          "content": [{"json": {"phone": PHONE}}]}}]}]}
    check(converse, "/model/anthropic.claude-3-5-sonnet/converse")


def test_openai_responses_completions_embeddings() -> None:
    check({"model": "gpt-4o", "instructions": f"cc {EMAIL}",
           "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": TOKEN}]},
                     {"type": "function_call", "call_id": "c", "name": "f", "arguments": json.dumps({"to": EMAIL})},
                     {"type": "function_call_output", "call_id": "c", "output": f"done {PHONE}"}]}, "/v1/responses")
    check({"model": "x", "prompt": f"mail {EMAIL}"}, "/v1/completions")
    check({"model": "x", "input": [f"mail {EMAIL}", "other"]}, "/v1/embeddings")


def test_numbers_become_placeholder_strings() -> None:
    card = 4539578763621486
    args = '{"card": ' + str(card) + ', "n": 1}'
    envelope, out = redact({"messages": [{"role": "tool", "tool_call_id": "1", "content": args}]})
    (placeholder, value), = out.replaced.items()
    assert value == str(card) and placeholder.startswith("<CARD_")
    # the number became a JSON string inside the JSON text; nothing else moved
    assert out.body == envelope.body.replace(str(card).encode(), b'\\"' + placeholder.encode() + b'\\"')
    assert json.loads(json.loads(out.body)["messages"][0]["content"]) == {"card": placeholder, "n": 1}


def test_base64_run_in_text_is_replaced_whole() -> None:
    run_text = base64.b64encode(f"export GITHUB_TOKEN={TOKEN}\n".encode()).decode()
    new, replaced, found = check({"messages": [{"role": "user", "content": f"decode {run_text} please"}]})
    assert json.loads(new)["messages"][0]["content"] == f"decode {found[0]} please"
    assert replaced[found[0]] == run_text


def test_percent_encoded_value_keeps_the_rest_of_the_url() -> None:
    url = "https://api.example.net/cb?to=" + EMAIL.replace("@", "%40") + "&x=1"
    new, replaced, found = check({"messages": [{"role": "user", "content": f"open {url}"}]})
    assert json.loads(new)["messages"][0]["content"].endswith(f"{found[0]}&x=1")
    assert replaced[found[0]].endswith(EMAIL.replace("@", "%40"))


def test_base64_text_document_is_re_encoded() -> None:
    doc = base64.b64encode(f"name,email\nRavi,{EMAIL}\n".encode()).decode()
    body = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": doc}}]}]}
    envelope, out = redact(body, "/v1/messages")
    data = json.loads(out.body)["messages"][0]["content"][0]["source"]["data"]
    text = base64.b64decode(data).decode()
    assert text.startswith("name,email\nRavi,<EMAIL_") and EMAIL not in text
    assert out.body.replace(data.encode(), b"") == envelope.body.replace(doc.encode(), b"")


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_bodies_are_recompressed_with_the_same_coding(coding: str) -> None:
    plain = dumps({"messages": [{"role": "user", "content": f"mail {EMAIL}"}]})
    packed = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
              "zstd": zstandard.ZstdCompressor().compress}[coding](plain)
    envelope = make_envelope(packed, headers={"content-encoding": coding})
    evaluation = run(envelope)
    assert evaluation.parsed is not None
    out = rewrite(envelope, evaluation.parsed, evaluation.decision.findings, PLACEHOLDERS)
    assert out.content_encoding == coding
    unpacked = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress,
                "zstd": zstandard.ZstdDecompressor().decompress}[coding](out.body)
    assert_only_spans_changed(plain, unpacked, dict(out.replaced))
    identity = rewrite(envelope, evaluation.parsed, evaluation.decision.findings, PLACEHOLDERS, recompress=False)
    assert identity.content_encoding == "" and identity.body == unpacked


def test_text_body() -> None:
    envelope = make_envelope(f"please mail {EMAIL} today", "/v1/unknown", {"content-type": "text/plain"})
    evaluation = run(envelope)
    assert evaluation.parsed is not None
    out = rewrite(envelope, evaluation.parsed, evaluation.decision.findings, PLACEHOLDERS)
    assert out.body == f"please mail {PLACEHOLDERS.make('EMAIL', EMAIL)} today".encode()


def test_placeholders_are_stable_over_a_ten_turn_conversation() -> None:
    messages: list[dict[str, object]] = [{"role": "system", "content": f"Team lead: {EMAIL}"}]
    previous = b""
    for turn in range(10):
        messages.append({"role": "user", "content": f"turn {turn}: token {TOKEN} phone {PHONE}"})
        envelope, out = redact({"model": "gpt-4o", "messages": messages})
        # the rewritten prefix (all but the closing brackets) of the previous turn is byte-identical
        stem = previous[: -2]
        assert out.body.startswith(stem)
        previous = out.body
        messages.append({"role": "assistant", "content": f"ok {turn}"})
        previous = out.body
    assert len(set(out.replaced)) == 3


def test_the_scope_and_key_change_placeholders_and_the_value_is_not_in_them() -> None:
    a = Placeholders(b"k1", "ws-1").make("EMAIL", EMAIL)
    assert a == Placeholders(b"k1", "ws-1").make("EMAIL", EMAIL)
    assert a != Placeholders(b"k2", "ws-1").make("EMAIL", EMAIL) != Placeholders(b"k1", "ws-2").make("EMAIL", EMAIL)
    assert "ravi" not in a and "k1" not in repr(Placeholders(b"k1"))


def test_kinds() -> None:
    assert kind_of("email-address", Category.PII) == "EMAIL"
    assert kind_of("phone-number-e164", Category.PII) == "PHONE"
    assert kind_of("us-ssn-unformatted", Category.PII) == "SSN"
    assert kind_of("payment-card-amex", Category.PII) == "CARD"
    assert kind_of("iban", Category.PII) == "IBAN"
    assert kind_of("github-pat", Category.SECRET) == "SECRET:github-pat"


def test_findings_outside_the_body_cannot_be_rewritten() -> None:
    envelope = make_envelope(dumps({"messages": [{"role": "user", "content": "hi"}]}),
                             headers={"x-note": f"token {TOKEN}"})
    evaluation = run(envelope)
    assert evaluation.parsed is not None and evaluation.decision.findings
    with pytest.raises(RewriteError):
        rewrite(envelope, evaluation.parsed, evaluation.decision.findings, PLACEHOLDERS)


def test_a_finding_that_does_not_lead_back_to_the_body_fails_closed() -> None:
    envelope = make_envelope(dumps({"messages": [{"role": "user", "content": f"mail {EMAIL}"}]}))
    evaluation = run(envelope)
    assert evaluation.parsed is not None
    from dataclasses import replace
    moved = [replace(f, location="messages[7].content") for f in evaluation.decision.findings]
    with pytest.raises(RewriteError):
        rewrite(envelope, evaluation.parsed, moved, PLACEHOLDERS)


def test_no_findings_leaves_the_body_alone() -> None:
    envelope = make_envelope(dumps({"messages": [{"role": "user", "content": "hi"}]}))
    evaluation = run(envelope)
    assert evaluation.parsed is not None
    out = rewrite(envelope, evaluation.parsed, (), PLACEHOLDERS)
    assert not out.changed and out.body == envelope.body
