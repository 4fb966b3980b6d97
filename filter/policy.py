"""decide(): findings, token count and policy -> Decision. Pure: no I/O, no clock, no gRPC."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum

from filter import headers
from filter.model import Action, Category, Decision, Finding, Identity, Mode, ParsedRequest, Severity, Verdict, is_road
from filter.reasons import Reason
from filter.scopes import ResolvedScope
from filter.settings import Policy
from filter.tokens import TokenCount

# Which category names the deny when several are found: the most sensitive first.
_REASON = {Category.SECRET: Reason.SECRET_DETECTED, Category.FILE: Reason.RESTRICTED_FILE,
           Category.PII: Reason.PII_DETECTED}
_ORDER = (Category.SECRET, Category.FILE, Category.PII)
# A content deny is a 400: every provider answers a request it refuses for its content (or a prompt that is too
# long) with a 400, and every SDK shows the message of one (Anthropic invalid_request_error, OpenAI BadRequestError,
# google-genai "400 INVALID_ARGUMENT. <message>", Bedrock ValidationException). A 403 reads as "not allowed to use
# the API" (Claude Code prints "Failed to authenticate").
DENY_STATUS = 400
# A request outside its scope's providers, models or API paths: no edit of the prompt makes it pass, so it is a
# 403, and the message names the gateway policy (not the credentials) so it does not read as an auth failure.
SCOPE_STATUS = 403


class Treatment(StrEnum):
    BLOCK = "block"  # the request is refused
    REDACT = "redact"  # the value is replaced by a placeholder before the provider sees it
    PASS = "pass"  # reported (audit, x-llm-filter-findings), sent as is


def treatment(finding: Finding, policy: Policy) -> Treatment:
    """What this finding does to the request. Shadow and log rules never act; the policy switches turn a category's
    block into a redaction (redact_secrets; redact_pii where block_pii is off) or let it pass."""
    if finding.mode is Mode.SHADOW or finding.action is Action.LOG:
        return Treatment.PASS
    if finding.action is Action.REDACT:
        return Treatment.REDACT
    if finding.category is Category.SECRET:
        if policy.redact_secrets:
            return Treatment.REDACT
        if policy.block_secrets or finding.severity is Severity.CRITICAL:
            return Treatment.BLOCK
        return Treatment.PASS
    if finding.category is Category.PII:
        if policy.block_pii:
            return Treatment.BLOCK
        return Treatment.REDACT if policy.redact_pii else Treatment.PASS
    return Treatment.BLOCK


def blocks(finding: Finding, policy: Policy) -> bool:
    """Does this finding stop the request whatever the gateway can rewrite?"""
    return treatment(finding, policy) is Treatment.BLOCK


# Text extracted from a PDF cannot be put back into it: a value found there is refused, not redacted.
UNREWRITABLE_DECODINGS = frozenset({"pdf"})


def rewritable(finding: Finding) -> bool:
    """Can the gateway's rewriter replace this value in the body? Not in the URL or headers (a provider key, a path
    segment), not in a PDF: those are refused instead (fail closed). The rewriter checks again and refuses what it
    cannot place (filter/rewrite)."""
    return finding.decoded not in UNREWRITABLE_DECODINGS and not any(is_road(loc) for loc, _, _ in finding.spans())


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
    scope: ResolvedScope | None = None,
    path: str = "",
    can_rewrite: Callable[[Finding], bool] | None = rewritable,
) -> Decision:
    """`policy` already carries the scope's switches (ResolvedScope.policy); `scope` adds what it allows.

    `can_rewrite` says which findings the gateway can replace by placeholders (None: it has no rewriter). A finding
    to redact that it cannot rewrite blocks: the value never leaves as sent."""

    def decision(verdict: Verdict, status: int, reason: Reason, message: str,
                 hop_headers: Mapping[str, str] | None = None) -> Decision:
        return Decision(
            verdict, status, reason, message, decision_id,
            provider=parsed.provider, api=parsed.api, model=parsed.model, findings=tuple(findings),
            prompt_tokens=tokens.tokens, body_bytes=body_bytes, pack_digest=pack_digest, identity=identity,
            headers=hop_headers or {},
        )  # fmt: skip

    if scope is not None and (refusal := scope.refusal(parsed.provider, parsed.model, path)) is not None:
        reason, message = refusal
        return decision(Verdict.DENY, SCOPE_STATUS, reason, f"{message} Decision id {decision_id}.")
    treated = [(f, treatment(f, policy)) for f in findings]
    blocking = [f for f, t in treated if t is Treatment.BLOCK
                or (t is Treatment.REDACT and (can_rewrite is None or not can_rewrite(f)))]
    redacting = [f for f, t in treated if t is Treatment.REDACT]
    if blocking:
        category = next(c for c in _ORDER if any(f.category is c for f in blocking))
        rules = sorted({f.rule_id for f in blocking})
        places = sorted({f.location for f in blocking})
        message = (
            f"Request blocked by the content filter: {category.value} found ({', '.join(rules)}) "
            f"at {', '.join(places[:10])}{' …' if len(places) > 10 else ''}. "
            f"{recovery(places, parsed)} Decision id {decision_id}."
        )
        return decision(Verdict.DENY, DENY_STATUS, _REASON[category], message)
    if tokens.over_limit:
        message = (
            f"Prompt is too long: more than {policy.max_prompt_tokens} tokens (counted at least {tokens.tokens}); "
            f"the limit is {policy.max_prompt_tokens}. Compact or clear the conversation, or send less context. "
            f"Decision id {decision_id}."
        )
        return decision(Verdict.DENY, DENY_STATUS, Reason.PROMPT_TOO_LARGE, message)
    hop = headers.allow_headers(decision_id, tokens, findings, identity)
    if redacting:  # allowed once the rewriter has replaced them (filter/server/rewriter.py)
        return decision(Verdict.REWRITE, 200, Reason.REDACTED, "allowed with redaction",
                        {**hop, **headers.rewrite_headers(decision_id, policy.rehydrate)})
    return decision(Verdict.ALLOW, 200, Reason.ALLOWED, "allowed", hop)


_TURN = re.compile(r"^(messages|contents|input)\[(\d+)\]")
_PLACES = (("system", "the system prompt"), ("instructions", "the system prompt"), ("systemInstruction", "the system prompt"),
           ("tools", "the tool definitions"), ("path", "the request URL"), ("query", "the request URL"),
           ("headers", "the request headers"))


def recovery(locations: Sequence[str], parsed: ParsedRequest) -> str:
    """What the user does next, by where the values sit. A value in an earlier turn is resent with every
    request of the conversation: removing it from the new message does not help, a new or cleared context does."""
    turns: dict[str, int] = {}  # list name -> number of turns in the request
    for seg in parsed.segments:
        if m := _TURN.match(seg.location):
            turns[m[1]] = max(turns.get(m[1], 0), int(m[2]) + 1)
    earlier: set[int] = set()
    latest: set[int] = set()
    elsewhere: list[str] = []
    total = 0
    for location in locations:
        if m := _TURN.match(location):
            index, total = int(m[2]), turns.get(m[1], int(m[2]) + 1)
            (latest if index + 1 >= total else earlier).add(index + 1)
            continue
        place = next((name for prefix, name in _PLACES if location.startswith(prefix)), "the request body")
        if place not in elsewhere:
            elsewhere.append(place)
    advice = []
    if earlier:
        shown = ", ".join(str(i) for i in sorted(earlier)[:5]) + (" …" if len(earlier) > 5 else "")
        advice.append(f"Found in message{'s' if len(earlier) > 1 else ''} {shown} of {total} (an earlier turn): it is "
                      "sent again with every request of this conversation, so start a new conversation or clear the "
                      "context (e.g. /clear), then continue without it.")
    if latest:
        advice.append(f"Found in message {max(latest)} of {total} (this turn): remove the value and retry.")
    if elsewhere:
        advice.append(f"Found in {' and '.join(elsewhere)}: remove the value there and retry.")
    return " ".join(advice)


def refuse(status: int, reason: Reason, message: str, *, decision_id: str, provider: str, identity: Identity,
           body_bytes: int, pack_digest: str) -> Decision:
    """A deny that happened before scanning (bad body, filter error)."""
    return Decision(
        Verdict.DENY, status, reason, f"{message.rstrip('.')}. Decision id {decision_id}.", decision_id,
        provider=provider, identity=identity, body_bytes=body_bytes, pack_digest=pack_digest,
    )  # fmt: skip
