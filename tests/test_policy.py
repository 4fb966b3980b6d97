"""decide(): a table of (findings, tokens, policy) -> verdict, status, reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from filter.model import Action, Category, Finding, Identity, Mode, ParsedRequest, Severity, TextSegment, Verdict
from filter.policy import decide, rewritable
from filter.settings import Policy
from filter.tokens import TokenCount

PARSED = ParsedRequest("openai", "openai.chat", "gpt-4o", (TextSegment("messages[0].content", "hi"),))
SEVEN_TURNS = ParsedRequest("anthropic", "anthropic.messages", "claude-sonnet-4", (
    TextSegment("system", "You are a coding agent."),
    *(TextSegment(f"messages[{i}].content", f"turn {i}") for i in range(7)),
))
SMALL = TokenCount(10, exact=True, over_limit=False)


def finding(category: Category = Category.SECRET, action: Action = Action.BLOCK, mode: Mode = Mode.ENFORCE,
            severity: Severity = Severity.HIGH, rule: str = "aws-access-key-id",
            location: str = "messages[0].content") -> Finding:
    return Finding(rule, category, action, severity, mode, location, 0, 20, "hmac-sha256:00")


def run(findings: list[Finding], tokens: TokenCount = SMALL, policy: Policy | None = None,
        can_rewrite: Callable[[Finding], bool] | None = rewritable) -> tuple[str, int, str]:
    d = decide(PARSED, findings, tokens, policy or Policy(), decision_id="d1", identity=Identity(), pack_digest="p",
               body_bytes=100, can_rewrite=can_rewrite)
    return d.verdict.value, d.http_status, d.reason


@pytest.mark.parametrize(
    ("findings", "tokens", "policy", "expected"),
    [
        ([], SMALL, Policy(), ("allow", 200, "allowed")),
        ([finding()], SMALL, Policy(), ("deny", 400, "secret_detected")),
        ([finding(Category.PII, rule="email")], SMALL, Policy(), ("deny", 400, "pii_detected")),
        ([finding(Category.FILE, rule="dotenv")], SMALL, Policy(), ("deny", 400, "restricted_file")),
        ([finding(Category.PII), finding(Category.SECRET)], SMALL, Policy(), ("deny", 400, "secret_detected")),
        ([finding(mode=Mode.SHADOW)], SMALL, Policy(), ("allow", 200, "allowed")),
        ([finding(action=Action.LOG)], SMALL, Policy(), ("allow", 200, "allowed")),
        ([finding(action=Action.REDACT)], SMALL, Policy(), ("rewrite", 200, "redacted")),
        ([finding()], SMALL, Policy(block_secrets=False), ("allow", 200, "allowed")),
        ([finding(severity=Severity.CRITICAL)], SMALL, Policy(block_secrets=False), ("deny", 400, "secret_detected")),
        ([finding(severity=Severity.CRITICAL)], SMALL, Policy(redact_secrets=True), ("rewrite", 200, "redacted")),
        ([finding(Category.PII)], SMALL, Policy(block_pii=False), ("rewrite", 200, "redacted")),
        ([finding(Category.PII)], SMALL, Policy(block_pii=False, redact_pii=False), ("allow", 200, "allowed")),
        ([finding(Category.PII), finding()], SMALL, Policy(block_pii=False), ("deny", 400, "secret_detected")),
        ([finding(Category.PII, mode=Mode.SHADOW)], SMALL, Policy(block_pii=False), ("allow", 200, "allowed")),
        ([], TokenCount(200_000, True, True), Policy(), ("deny", 400, "prompt_too_large")),
    ],
)
def test_decision_table(findings: list[Finding], tokens: TokenCount, policy: Policy,
                        expected: tuple[str, int, str]) -> None:
    assert run(findings, tokens, policy) == expected


@pytest.mark.parametrize(
    ("found", "why"),
    [
        (finding(Category.PII, location="headers.x-user"), "in a header"),
        (finding(Category.PII, location="query.q"), "in the query string"),
        (replace(finding(Category.PII), decoded="pdf"), "inside a PDF"),
        (replace(finding(Category.PII), also=(("path", 0, 3),)), "continuing into the URL"),
    ],
)
def test_a_value_the_rewriter_cannot_replace_blocks(found: Finding, why: str) -> None:
    assert run([found], policy=Policy(block_pii=False)) == ("deny", 400, "pii_detected"), why


def test_without_a_rewriter_redaction_blocks() -> None:
    """A gateway that cannot rewrite bodies never forwards a value the policy says to redact."""
    assert run([finding(Category.PII)], policy=Policy(block_pii=False), can_rewrite=None) == (
        "deny", 400, "pii_detected")
    assert run([finding(action=Action.REDACT)], can_rewrite=None) == ("deny", 400, "secret_detected")


def test_rewrite_marks_the_request_for_the_rewriter() -> None:
    plain = decide(PARSED, [finding(Category.PII)], SMALL, Policy(block_pii=False), decision_id="d7",
                   identity=Identity(), pack_digest="p", body_bytes=1)
    assert plain.allowed and plain.headers["x-llm-filter-rewrite"] == "d7"
    assert "x-llm-filter-rehydrate" not in plain.headers
    back = decide(PARSED, [finding(Category.PII)], SMALL, Policy(block_pii=False, rehydrate=True), decision_id="d8",
                  identity=Identity(), pack_digest="p", body_bytes=1)
    assert back.headers["x-llm-filter-rehydrate"] == "1"
    allowed = decide(PARSED, [], SMALL, Policy(), decision_id="d9", identity=Identity(), pack_digest="p", body_bytes=1)
    assert "x-llm-filter-rewrite" not in allowed.headers


def test_deny_message_names_rule_and_location_and_decision() -> None:
    d = decide(PARSED, [finding()], SMALL, Policy(), decision_id="abc123", identity=Identity(), pack_digest="p",
               body_bytes=1)
    assert d.verdict is Verdict.DENY
    assert "aws-access-key-id" in d.message and "messages[0].content" in d.message and "abc123" in d.message


def test_allow_sets_provider_hop_headers_and_verified_identity() -> None:
    ident = Identity(workspace="ws-1", team="t-9", source="jwt")
    d = decide(PARSED, [finding(mode=Mode.SHADOW)], SMALL, Policy(), decision_id="x", identity=ident,
               pack_digest="p", body_bytes=1)
    assert d.headers == {"x-llm-filter-decision": "allow", "x-llm-filter-id": "x", "x-llm-prompt-tokens": "10",
                         "x-llm-filter-findings": "aws-access-key-id", "x-workspace-id": "ws-1", "x-team-id": "t-9"}


def deny_message(parsed: ParsedRequest, *locations: str) -> str:
    d = decide(parsed, [finding(location=loc) for loc in locations], SMALL, Policy(), decision_id="d7",
               identity=Identity(), pack_digest="p", body_bytes=1)
    assert d.verdict is Verdict.DENY and d.message.startswith("Request blocked by the content filter: ")
    return d.message


def test_a_value_in_an_earlier_turn_says_start_a_new_conversation() -> None:
    message = deny_message(SEVEN_TURNS, "messages[2].content")
    assert "message 3 of 7 (an earlier turn)" in message
    assert "start a new conversation or clear the context" in message and "this turn" not in message


def test_a_value_in_this_turn_says_remove_it_and_retry() -> None:
    message = deny_message(SEVEN_TURNS, "messages[6].content")
    assert "message 7 of 7 (this turn): remove the value and retry" in message
    assert "new conversation" not in message


def test_values_in_both_and_outside_the_turns_name_each_remedy() -> None:
    message = deny_message(SEVEN_TURNS, "messages[0].content", "messages[6].content", "system", "headers.x-note")
    assert "message 1 of 7 (an earlier turn)" in message and "message 7 of 7 (this turn)" in message
    assert "Found in the request headers and the system prompt: remove the value there and retry" in message


def test_prompt_too_long_reads_as_the_providers_own_and_says_what_to_do() -> None:
    d = decide(PARSED, [], TokenCount(200_000, True, True), Policy(), decision_id="d8", identity=Identity(),
               pack_digest="p", body_bytes=1)
    assert d.message.startswith("Prompt is too long: more than 128000 tokens") and "Compact or clear" in d.message
