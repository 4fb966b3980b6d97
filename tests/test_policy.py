"""decide(): a table of (findings, tokens, policy) -> verdict, status, reason."""

from __future__ import annotations

import pytest

from filter.model import Action, Category, Finding, Identity, Mode, ParsedRequest, Severity, TextSegment, Verdict
from filter.policy import decide
from filter.settings import Policy
from filter.tokens import TokenCount

PARSED = ParsedRequest("openai", "openai.chat", "gpt-4o", (TextSegment("messages[0].content", "hi"),))
SMALL = TokenCount(10, exact=True, over_limit=False)


def finding(category: Category = Category.SECRET, action: Action = Action.BLOCK, mode: Mode = Mode.ENFORCE,
            severity: Severity = Severity.HIGH, rule: str = "aws-access-key-id") -> Finding:
    return Finding(rule, category, action, severity, mode, "messages[0].content", 0, 20, "hmac-sha256:00")


def run(findings: list[Finding], tokens: TokenCount = SMALL, policy: Policy | None = None) -> tuple[str, int, str]:
    d = decide(PARSED, findings, tokens, policy or Policy(), decision_id="d1", identity=Identity(), pack_digest="p",
               body_bytes=100)
    return d.verdict.value, d.http_status, d.reason


@pytest.mark.parametrize(
    ("findings", "tokens", "policy", "expected"),
    [
        ([], SMALL, Policy(), ("allow", 200, "allowed")),
        ([finding()], SMALL, Policy(), ("deny", 403, "secret_detected")),
        ([finding(Category.PII, rule="email")], SMALL, Policy(), ("deny", 403, "pii_detected")),
        ([finding(Category.FILE, rule="dotenv")], SMALL, Policy(), ("deny", 403, "restricted_file")),
        ([finding(Category.PII), finding(Category.SECRET)], SMALL, Policy(), ("deny", 403, "secret_detected")),
        ([finding(mode=Mode.SHADOW)], SMALL, Policy(), ("allow", 200, "allowed")),
        ([finding(action=Action.LOG)], SMALL, Policy(), ("allow", 200, "allowed")),
        ([finding(action=Action.REDACT)], SMALL, Policy(), ("deny", 403, "secret_detected")),
        ([finding()], SMALL, Policy(block_secrets=False), ("allow", 200, "allowed")),
        ([finding(severity=Severity.CRITICAL)], SMALL, Policy(block_secrets=False), ("deny", 403, "secret_detected")),
        ([finding(Category.PII)], SMALL, Policy(block_pii=False), ("allow", 200, "allowed")),
        ([], TokenCount(200_000, True, True), Policy(), ("deny", 413, "prompt_too_large")),
    ],
)
def test_decision_table(findings: list[Finding], tokens: TokenCount, policy: Policy,
                        expected: tuple[str, int, str]) -> None:
    assert run(findings, tokens, policy) == expected


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
