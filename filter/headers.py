"""Every header the filter writes: names and values in one place (allow hop headers, deny headers, identity).

Allow: `x-llm-filter-*` and `x-llm-prompt-*` travel to the provider hop (Envoy strips client-sent copies), and the
identity headers carry only verified identity. Deny: the same decision id and reason the body names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from filter.model import Decision, Finding, Identity
from filter.tokens import TokenCount

DECISION = "x-llm-filter-decision"
DECISION_ID = "x-llm-filter-id"
REASON = "x-llm-filter-reason"
FINDINGS = "x-llm-filter-findings"
PROMPT_TOKENS = "x-llm-prompt-tokens"
PROMPT_TOKENS_EXACT = "x-llm-prompt-tokens-exact"
# Set by the filter's Check (never by a client: Envoy strips client copies of x-llm-filter-*) on a request whose
# body the gateway's rewriter must rewrite (value: the decision id), and when it must also rehydrate the answer.
REWRITE = "x-llm-filter-rewrite"
REHYDRATE = "x-llm-filter-rehydrate"
CONTENT_TYPE = "content-type"
RETRY_AFTER = "retry-after"
AMZN_ERROR_TYPE = "x-amzn-errortype"

# Identity field -> the header that names it on the provider hop (and that a client may send).
IDENTITY = {
    "workspace": "x-workspace-id",
    "team": "x-team-id",
    "project": "x-project-id",
    "agent": "x-agent-id",
}


def identity_values(identity: Identity) -> dict[str, str | None]:
    return {"workspace": identity.workspace, "team": identity.team, "project": identity.project,
            "agent": identity.agent}


def allow_headers(decision_id: str, tokens: TokenCount, findings: Iterable[Finding],
                  identity: Identity) -> dict[str, str]:
    """Headers added to an allowed request on its way to the provider."""
    headers = {DECISION: "allow", DECISION_ID: decision_id, PROMPT_TOKENS: str(tokens.tokens)}
    if not tokens.exact:
        headers[PROMPT_TOKENS_EXACT] = "false"  # under the limit in bytes: the byte count bounds the tokens
    rules = sorted({f.rule_id for f in findings})
    if rules:
        headers[FINDINGS] = ",".join(rules)
    for name, value in identity_values(identity).items():
        if value:
            headers[IDENTITY[name]] = value
    return headers


def rewrite_headers(decision_id: str, rehydrate: bool) -> dict[str, str]:
    """What routes an allowed request through the gateway's rewriter (and its answer back through rehydration)."""
    out = {DECISION: "rewrite", REWRITE: decision_id}
    if rehydrate:
        out[REHYDRATE] = "1"
    return out


def identity_headers_to_remove(identity: Identity) -> list[str]:
    """Client-sent identity headers that no verified source backs: the provider hop and rate limits never see them."""
    return [IDENTITY[name] for name, value in identity_values(identity).items() if not value]


def deny_headers(decision: Decision, extra: Mapping[str, str]) -> dict[str, str]:
    """Headers of a deny answered to the client: JSON body, decision id and reason, plus provider extras."""
    return {CONTENT_TYPE: "application/json", DECISION: "deny", DECISION_ID: decision.decision_id,
            REASON: decision.reason, **extra, **decision.headers}
