"""decide(): findings, token count and policy -> Decision. Pure: no I/O, no clock, no gRPC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from filter import headers
from filter.model import Action, Category, Decision, Finding, Identity, Mode, ParsedRequest, Severity, Verdict
from filter.reasons import Reason
from filter.settings import Policy
from filter.tokens import TokenCount

# Which category names the deny when several are found: the most sensitive first.
_REASON = {Category.SECRET: Reason.SECRET_DETECTED, Category.FILE: Reason.RESTRICTED_FILE,
           Category.PII: Reason.PII_DETECTED}
_ORDER = (Category.SECRET, Category.FILE, Category.PII)


def blocks(finding: Finding, policy: Policy) -> bool:
    """Does this finding stop the request? Shadow and log rules never do; policy switches soften categories.

    `redact` blocks too: ext_authz cannot rewrite a request body, so redaction fails closed.
    """
    if finding.mode is Mode.SHADOW or finding.action is Action.LOG:
        return False
    if finding.category is Category.SECRET and not policy.block_secrets and finding.severity is not Severity.CRITICAL:
        return False
    return not (finding.category is Category.PII and not policy.block_pii)


def decide(
    parsed: ParsedRequest,
    findings: Sequence[Finding],
    tokens: TokenCount,
    policy: Policy,
    *,
    decision_id: str,
    identity: Identity,
    pack_digest: str,
    body_bytes: int,
) -> Decision:
    def decision(verdict: Verdict, status: int, reason: Reason, message: str,
                 hop_headers: Mapping[str, str] | None = None) -> Decision:
        return Decision(
            verdict, status, reason, message, decision_id,
            provider=parsed.provider, api=parsed.api, model=parsed.model, findings=tuple(findings),
            prompt_tokens=tokens.tokens, body_bytes=body_bytes, pack_digest=pack_digest, identity=identity,
            headers=hop_headers or {},
        )  # fmt: skip

    blocking = [f for f in findings if blocks(f, policy)]
    if blocking:
        category = next(c for c in _ORDER if any(f.category is c for f in blocking))
        rules = sorted({f.rule_id for f in blocking})
        places = sorted({f.location for f in blocking})
        message = (
            f"Request blocked by the content filter: {category.value} found ({', '.join(rules)}) "
            f"at {', '.join(places[:10])}{' …' if len(places) > 10 else ''}. "
            f"Remove it and retry. Decision id {decision_id}."
        )
        return decision(Verdict.DENY, 403, _REASON[category], message)
    if tokens.over_limit:
        message = (
            f"Prompt has more than {policy.max_prompt_tokens} tokens (counted at least {tokens.tokens}); "
            f"the limit is {policy.max_prompt_tokens}. Decision id {decision_id}."
        )
        return decision(Verdict.DENY, 413, Reason.PROMPT_TOO_LARGE, message)
    return decision(Verdict.ALLOW, 200, Reason.ALLOWED, "allowed",
                    headers.allow_headers(decision_id, tokens, findings, identity))


def refuse(status: int, reason: Reason, message: str, *, decision_id: str, provider: str, identity: Identity,
           body_bytes: int, pack_digest: str) -> Decision:
    """A deny that happened before scanning (bad body, filter error)."""
    return Decision(
        Verdict.DENY, status, reason, f"{message.rstrip('.')}. Decision id {decision_id}.", decision_id,
        provider=provider, identity=identity, body_bytes=body_bytes, pack_digest=pack_digest,
    )  # fmt: skip
