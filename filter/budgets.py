"""Token budgets on the request path: an allowed request reserves what it may cost before it is let through.

The amount is the prompt's tokens plus the output the request may ask for (`max_tokens` and its kin, or the
policy file's `default_max_output_tokens` when it names none), reserved atomically against every budget of its
scope (agent, workspace, project, team, default) under the decision id. The usage observer later reconciles the
reservation to the real usage or releases it. Over any budget -> 429 with `retry-after` (seconds until that
budget's window resets), and nothing is reserved anywhere. The store cannot answer -> 503, or with
`on_store_error: allow` the request goes through unchecked (reason `store_unavailable` on an allow: counted and
audited).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import replace

from filter.headers import RETRY_AFTER
from filter.model import Decision, ParsedRequest, Verdict
from filter.reasons import Reason
from filter.scopes import PolicyFile, ResolvedScope
from filter.store import Denial, Store, StoreError, Window

log = logging.getLogger("llm_content_filter")

BUDGET_STATUS = 429
STORE_ERROR_STATUS = 503
STORE_RETRY_AFTER_SECONDS = 5
# On a budget refusal: which budget, its limit and what is left of it (tokens), beside `retry-after`.
BUDGET = "x-llm-filter-budget"
BUDGET_LIMIT = "x-llm-filter-budget-limit"
BUDGET_REMAINING = "x-llm-filter-budget-remaining"
_PER = {Window.DAY: "day", Window.MONTH: "month"}

_warned_no_store = False


def amount(decision: Decision, parsed: ParsedRequest | None, policy: PolicyFile) -> tuple[int, int]:
    """(prompt tokens, output tokens the request may produce) to reserve."""
    prompt = decision.prompt_tokens or 0
    asked = parsed.max_output_tokens if parsed is not None else None
    return prompt, policy.default_max_output_tokens if asked is None else max(0, asked)


def _who(budget_key: str) -> str:
    """`team:payments` -> `team payments`; `all` -> `the whole gateway`."""
    level, _, value = budget_key.partition(":")
    return f"{level} {value}" if value else "the whole gateway"


def refused(decision: Decision, denial: Denial, prompt: int, output: int) -> Decision:
    budget = denial.budget
    message = (
        f"Token budget exhausted: the gateway policy for {_who(budget.key)} allows {budget.limit} tokens per "
        f"{_PER[budget.window]} (budget {budget.name}); {denial.remaining} remain, and this request may use up to "
        f"{prompt + output} ({prompt} prompt + up to {output} output). It resets in {denial.reset_seconds} s "
        f"({denial.resets_at.isoformat(timespec='seconds')}). Decision id {decision.decision_id}."
    )
    headers = {RETRY_AFTER: str(denial.reset_seconds), BUDGET: budget.name, BUDGET_LIMIT: str(budget.limit),
               BUDGET_REMAINING: str(denial.remaining)}
    return replace(decision, verdict=Verdict.DENY, http_status=BUDGET_STATUS, reason=Reason.BUDGET_EXCEEDED,
                   message=message, headers=headers)


def store_unavailable(decision: Decision, policy: PolicyFile) -> Decision:
    if policy.on_store_error == "allow":  # let it through unchecked; the reason says so in audit and metrics
        return replace(decision, reason=Reason.STORE_UNAVAILABLE)
    message = (f"The gateway cannot check token budgets right now; retry in {STORE_RETRY_AFTER_SECONDS} s. "
               f"Decision id {decision.decision_id}.")
    return replace(decision, verdict=Verdict.DENY, http_status=STORE_ERROR_STATUS, reason=Reason.STORE_UNAVAILABLE,
                   message=message, headers={RETRY_AFTER: str(STORE_RETRY_AFTER_SECONDS)})


def reserve(decision: Decision, parsed: ParsedRequest | None, scope: ResolvedScope | None,
            policy: PolicyFile | None, store: Store | None) -> Decision:
    """The decision after reserving its tokens: unchanged when there is nothing to reserve (not allowed, no
    policy file, no budget in scope), a 429 over a budget, a 503 (or unchecked allow) when the store fails."""
    global _warned_no_store
    if not decision.allowed or scope is None or policy is None or not scope.budgets:
        return decision
    if store is None:
        if not _warned_no_store:
            _warned_no_store = True
            log.warning("the policy file sets token budgets but no store is configured: budgets are not enforced")
        return decision
    prompt, output = amount(decision, parsed, policy)
    try:
        reservation = store.reserve(decision.decision_id, prompt + output, scope.budgets)
    except StoreError as e:
        log.error("budget store: reserving for %s failed: %s", decision.decision_id, e)
        answer = store_unavailable(decision, policy)
        if not answer.allowed:  # the call may still have been applied: nobody uses it, so it must not be charged
            with suppress(StoreError):
                store.release(decision.decision_id)
        return answer
    if reservation.denial is not None:
        return refused(decision, reservation.denial, prompt, output)
    return decision
