"""The audit line: one per decision, and no field spells a value a rule found (the observed leaks, one by one)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from filter.audit import audit_record
from filter.identity import identify
from filter.pipeline import evaluate
from filter.redact import Redactor
from filter.runtime import Runtime
from filter.server.response import error_body
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.conftest import make_envelope

# Credential-shaped test values (random characters in each format; no real account behind them).
AWS_KEY_ID = "AKIAZ7QW3ERT5YU2IOPL"
GITHUB_PAT = "ghp_" + "R8kD2mQ7xV4nB9sL1pT6wZ3cY5hJ0fG8aE2u"


@pytest.fixture(scope="module")
def run() -> Any:
    runtime = Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}))
    counter = TokenCounter(load_encoding())

    def run(body: dict[str, Any], path: str = "/v1/chat/completions", log_prompts: str = "metadata_only",
            headers: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
        envelope = make_envelope(body, path, headers)
        outcome = evaluate(envelope, runtime.current, counter, identify(envelope.headers, None, trust_headers=True))
        record = audit_record(outcome.decision, outcome.parsed, 1.0, log_prompts, path, "POST", outcome.redactor)
        body_text = json.dumps(error_body(outcome.decision)[0]) if not outcome.decision.allowed else ""
        return record, json.dumps(record) + body_text

    return run


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def test_a_key_in_the_model_field_is_denied_and_masked(run: Any) -> None:
    record, written = run({"model": AWS_KEY_ID, "messages": [{"role": "user", "content": "hi"}]})
    assert record["verdict"] == "deny" and record["model"] == "[REDACTED]"
    assert AWS_KEY_ID not in written


def test_a_token_used_as_a_json_key_is_not_spelled_in_any_location(run: Any) -> None:
    record, written = run(chat("see metadata", metadata={GITHUB_PAT: AWS_KEY_ID}))
    assert record["verdict"] == "deny" and len(record["findings"]) >= 1
    assert GITHUB_PAT not in written and AWS_KEY_ID not in written


def test_a_key_in_the_url_path_is_masked_and_the_query_dropped(run: Any) -> None:
    record, written = run(chat("hi"), path=f"/v1/{AWS_KEY_ID}/chat/completions?key=AIzaSyD-query-value")
    assert record["path"] == "/v1/[REDACTED]/chat/completions"
    assert AWS_KEY_ID not in written and "AIzaSyD" not in written


def test_a_percent_encoded_key_in_the_path_is_masked(run: Any) -> None:
    encoded = "".join(f"%{b:02X}" for b in AWS_KEY_ID.encode())
    record, written = run(chat("hi"), path=f"/v1/{encoded}/chat/completions")
    assert record["path"] == "/v1/[REDACTED]/chat/completions" and encoded not in written


def test_full_prompt_logging_masks_a_percent_encoded_key(run: Any) -> None:
    text = f"curl 'https://api.example.com/v1?token={quote(GITHUB_PAT, safe='')}%20' please"
    encoded = "".join(f"%{b:02X}" for b in GITHUB_PAT.encode())
    for content in (text, f"see {encoded} here"):
        record, written = run(chat(content), log_prompts="full")
        assert record["findings"], content
        assert GITHUB_PAT not in written and encoded not in written
        assert "please" in written or "here" in written  # the rest of the prompt is kept


def test_identity_from_headers_is_masked_when_it_holds_a_key(run: Any) -> None:
    record, written = run(chat("hi"), headers={"x-workspace-id": AWS_KEY_ID, "x-team-id": "team-7"})
    assert record["identity"]["workspace"] == "[REDACTED]" and record["identity"]["team"] == "team-7"
    assert AWS_KEY_ID not in written


def test_clean_request_keeps_every_field(run: Any) -> None:
    record, _ = run(chat("Refactor the parser."), path="/v1/chat/completions?x=1")
    assert (record["verdict"], record["model"], record["path"], record["findings"]) == (
        "allow", "gpt-4o", "/v1/chat/completions", [])


def test_redactor_masks_overlapping_values_whole() -> None:
    r = Redactor(frozenset({"abcdef", "defghi"}))
    assert r.mask("xx abcdefghi yy") == "xx [REDACTED] yy"
    assert r.mask("%61%62%63%64%65%66") == "[REDACTED]"
    assert r.mask("%2561bcdef/") == "[REDACTED]/"  # double-encoded
