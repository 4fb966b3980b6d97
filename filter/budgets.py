"""Request rates and budgets on the request path: an allowed request is counted against its scope's
`requests_per_minute`, then reserves what it may cost before it is let through.

Rate: one fixed one-minute window per scope key, counted in the store under the key of the scope that set the
limit (`agent:ci-bot` counts that agent's requests, `team:payments` all of the team's). Over it -> 429
`rate_limited` with `retry-after` (seconds to the next window); a refused request is not counted. A request
that the rate lets through but a budget refuses has been counted.

The amount is the prompt's tokens plus the output the request may ask for (`max_tokens` and its kin, or the
policy file's `default_max_output_tokens` when it names none), reserved atomically against every budget of its
scope (agent, workspace, project, team, default) under the decision id. The usage observer later reconciles the
reservation to the real usage or releases it. Over any budget -> 429 with `retry-after` (seconds until that
budget's window resets), and nothing is reserved anywhere. The store cannot answer -> 503, or with
`on_store_error: allow` the request goes through unchecked (reason `store_unavailable` on an allow: counted and
audited).

USD budgets: the same, in integer micro-dollars, under a second reservation id `<decision id>:usd` against the
scope's `<key>:usd` budgets: prompt tokens x input price + output tokens x output price of the request's model.
A scope with a USD budget refuses a model it has no price for (403 `model_not_priced`): an unpriced model would
spend outside the budget. The price goes with the allow (the decision's `usd_price`, in the CheckResponse
metadata Envoy forwards to the usage observer, which may run in another worker); it is also remembered per
decision id in this process (bounded), for a response whose metadata did not arrive (`settled_price`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import suppress
from dataclasses import replace

from filter.headers import RETRY_AFTER
from filter.model import Decision, ParsedRequest, Verdict
from filter.reasons import Reason
from filter.scopes import MICRO, USD_SUFFIX, PolicyFile, Price, ResolvedScope
from filter.store import Denial, Store, StoreError, Window
from filter.store.model import MAX_AMOUNT

log = logging.getLogger("llm_content_filter")

BUDGET_STATUS = 429
STORE_ERROR_STATUS = 503
STORE_RETRY_AFTER_SECONDS = 5
# On a budget refusal: which budget, its limit and what is left of it (tokens), beside `retry-after`.
BUDGET = "x-llm-filter-budget"
BUDGET_LIMIT = "x-llm-filter-budget-limit"
BUDGET_REMAINING = "x-llm-filter-budget-remaining"
_PER = {Window.DAY: "day", Window.MONTH: "month"}
PRICE_STATUS = 403
RATE_STATUS = 429
RATE_WINDOW_SECONDS = 60
RATE_KEY = "policy_requests_per_minute"  # the store's rate-count key; the value is the scope key
REMEMBERED_PRICES = 100_000  # decisions whose USD reservation waits for its usage (bounded, oldest dropped)

_warned_no_store = False
_prices: OrderedDict[str, Price] = OrderedDict()
_prices_lock = threading.Lock()


def usd_id(decision_id: str) -> str:
    return decision_id + USD_SUFFIX


def _remember_price(decision_id: str, price: Price) -> None:
    with _prices_lock:
        _prices[decision_id] = price
        while len(_prices) > REMEMBERED_PRICES:  # never settled here: that reservation expires charged in full
            _prices.popitem(last=False)


def settled_price(decision_id: str) -> Price | None:
    """The price a USD reservation of `decision_id` was made at in this process, forgotten once asked for; None
    when this process made none (no USD budget applied, or another worker made it)."""
    with _prices_lock:
        return _prices.pop(decision_id, None)


def _with_price(decision: Decision, price: Price) -> Decision:
    """The price travels with the allow (CheckResponse metadata) so whichever worker observes the response can
    settle the USD reservation at the real cost."""
    return replace(decision, usd_price=(price.input_per_mtok, price.output_per_mtok))


def usd(amount: int) -> str:
    return f"{amount / MICRO:.6f}".rstrip("0").rstrip(".") if amount % MICRO else str(amount // MICRO)


def amount(decision: Decision, parsed: ParsedRequest | None, policy: PolicyFile) -> tuple[int, int]:
    """(prompt tokens, output tokens the request may produce) to reserve."""
    prompt = decision.prompt_tokens or 0
    asked = parsed.max_output_tokens if parsed is not None else None
    return prompt, policy.default_max_output_tokens if asked is None else max(0, asked)


def _who(budget_key: str) -> str:
    """`team:payments` -> `team payments`; `all` -> `the whole gateway`."""
    level, _, value = budget_key.partition(":")
    return f"{level} {value}" if value else "the whole gateway"


def refused(decision: Decision, denial: Denial, prompt: int, output: int, cost: int | None = None) -> Decision:
    budget = denial.budget
    if cost is not None:  # a USD budget: the amounts are micro-dollars, spelled in USD
        limit, remaining = usd(budget.limit), usd(denial.remaining)
        message = (
            f"Spend budget exhausted: the gateway policy for {_who(budget.key.removesuffix(USD_SUFFIX))} allows "
            f"USD {limit} per {_PER[budget.window]} (budget {budget.name}); USD {remaining} "
            f"remain, and this request may cost up to USD {usd(cost)} ({prompt} prompt + up to {output} output "
            f"tokens of {decision.model})."
        )
    else:
        limit, remaining = str(budget.limit), str(denial.remaining)
        message = (
            f"Token budget exhausted: the gateway policy for {_who(budget.key)} allows {limit} tokens per "
            f"{_PER[budget.window]} (budget {budget.name}); {remaining} remain, and this request may use up to "
            f"{prompt + output} ({prompt} prompt + up to {output} output)."
        )
    message += (f" It resets in {denial.reset_seconds} s ({denial.resets_at.isoformat(timespec='seconds')}). "
                f"Decision id {decision.decision_id}.")
    headers = {RETRY_AFTER: str(denial.reset_seconds), BUDGET: budget.name, BUDGET_LIMIT: limit,
               BUDGET_REMAINING: remaining}
    return replace(decision, verdict=Verdict.DENY, http_status=BUDGET_STATUS, reason=Reason.BUDGET_EXCEEDED,
                   message=message, headers=headers)


def rate_limited(decision: Decision, scope: ResolvedScope, reset_seconds: int) -> Decision:
    message = (f"Request rate limit: the gateway policy for {scope.origin['requests_per_minute']} allows "
               f"{scope.requests_per_minute} requests per minute; retry in {reset_seconds} s. "
               f"Decision id {decision.decision_id}.")
    return replace(decision, verdict=Verdict.DENY, http_status=RATE_STATUS, reason=Reason.RATE_LIMITED,
                   message=message, headers={RETRY_AFTER: str(reset_seconds)})


def not_priced(decision: Decision, scope: ResolvedScope) -> Decision:
    named = f"Model {decision.model!r} has" if decision.model else "A request that names no model has"
    message = (f"{named} no price in the gateway policy, and {scope.name} has a spend budget in USD: the gateway "
               f"cannot count what it would cost. Use a priced model ({', '.join(g for g, _ in scope.prices) or 'none'}).")
    return replace(decision, verdict=Verdict.DENY, http_status=PRICE_STATUS, reason=Reason.MODEL_NOT_PRICED,
                   message=message, headers={})


def store_unavailable(decision: Decision, policy: PolicyFile) -> Decision:
    if policy.on_store_error == "allow":  # let it through unchecked; the reason says so in audit and metrics
        return replace(decision, reason=Reason.STORE_UNAVAILABLE)
    message = (f"The gateway cannot check token budgets right now; retry in {STORE_RETRY_AFTER_SECONDS} s. "
               f"Decision id {decision.decision_id}.")
    return replace(decision, verdict=Verdict.DENY, http_status=STORE_ERROR_STATUS, reason=Reason.STORE_UNAVAILABLE,
                   message=message, headers={RETRY_AFTER: str(STORE_RETRY_AFTER_SECONDS)})


def reserve(decision: Decision, parsed: ParsedRequest | None, scope: ResolvedScope | None,
            policy: PolicyFile | None, store: Store | None) -> Decision:
    """The decision after counting its rate and reserving its tokens and cost: unchanged when there is nothing
    to count (not allowed, no policy file, no limit in scope), a 429 over a rate or budget, a 403 for an unpriced
    model under a USD budget, a 503 (or unchecked allow) when the store fails."""
    global _warned_no_store
    if not decision.allowed or scope is None or policy is None:
        return decision
    rate = scope.requests_per_minute is not None and scope.rate_key is not None
    if not (rate or scope.budgets or scope.usd_budgets):
        return decision
    price = scope.price(decision.model) if scope.usd_budgets else None
    if scope.usd_budgets and price is None:  # refused before anything is counted
        return not_priced(decision, scope)
    if store is None:
        if not _warned_no_store:
            _warned_no_store = True
            log.warning("the policy file sets request rates or budgets but no store is configured: they are not "
                        "enforced")
        return decision
    prompt, output = amount(decision, parsed, policy)
    reserved: list[str] = []
    try:
        if rate:
            assert scope.rate_key is not None and scope.requests_per_minute is not None
            hit = store.hit(RATE_KEY, scope.rate_key, 1, scope.requests_per_minute, RATE_WINDOW_SECONDS)
            if not hit.allowed:
                return rate_limited(decision, scope, hit.reset_seconds)
        if scope.budgets:
            reserved.append(decision.decision_id)
            reservation = store.reserve(decision.decision_id, prompt + output, scope.budgets)
            if reservation.denial is not None:
                return refused(decision, reservation.denial, prompt, output)
        if price is not None:
            cost = min(price.cost(prompt, output), MAX_AMOUNT)
            reserved.append(usd_id(decision.decision_id))
            _remember_price(decision.decision_id, price)  # before the call: an unchecked allow is settled too
            reservation = store.reserve(usd_id(decision.decision_id), cost, scope.usd_budgets)
            if reservation.denial is not None:
                settled_price(decision.decision_id)
                if scope.budgets:  # all or nothing: the tokens held for this refused request are given back
                    store.release(decision.decision_id)
                return refused(decision, reservation.denial, prompt, output, cost)
            return _with_price(decision, price)
    except StoreError as e:
        log.error("budget store: counting %s failed: %s", decision.decision_id, e)
        answer = store_unavailable(decision, policy)
        if answer.allowed and price is not None and usd_id(decision.decision_id) in reserved:
            return _with_price(answer, price)  # the reservation may have been made: settled like any other
        if not answer.allowed:  # the calls may still have been applied: nobody uses them, so they must not be charged
            settled_price(decision.decision_id)
            for reservation_id in reserved:
                with suppress(StoreError):
                    store.release(reservation_id)
        return answer
    return decision
