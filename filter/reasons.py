"""Reason codes: one closed vocabulary for decisions, deny bodies, `x-llm-filter-reason`, audit lines and metrics.

A reason is what an operator filters on and what a client can branch on, so the set is small and documented
(README, "Reasons"); a new code is a new line here and there.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    ALLOWED = "allowed"
    REDACTED = "redacted"  # allowed with the found values replaced by placeholders (verdict rewrite)
    # policy denies: a rule or a limit said no
    SECRET_DETECTED = "secret_detected"
    RESTRICTED_FILE = "restricted_file"
    PII_DETECTED = "pii_detected"
    PROMPT_TOO_LARGE = "prompt_too_large"
    RATE_LIMITED = "rate_limited"
    # the gateway policy file: the request is outside its scope (403) or over a token budget (429)
    PROVIDER_NOT_ALLOWED = "provider_not_allowed"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    MODEL_NOT_PRICED = "model_not_priced"  # a USD budget applies and the policy file has no price for the model
    PATH_NOT_ALLOWED = "path_not_allowed"
    BUDGET_EXCEEDED = "budget_exceeded"
    REGION_NOT_ALLOWED = "region_not_allowed"  # no endpoint of the provider (or model profile) in the scope's regions
    # the request itself is at fault (4xx)
    BAD_REQUEST = "bad_request"
    MALFORMED_REQUEST = "malformed_request"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    BODY_TOO_LARGE = "body_too_large"
    WORK_LIMIT_EXCEEDED = "work_limit_exceeded"  # too many JSON nodes/strings or too much CPU for one body
    # the filter cannot answer this one now (503, fail closed, retry later)
    OVERLOADED = "overloaded"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL_ERROR = "internal_error"
    STORE_UNAVAILABLE = "store_unavailable"  # the budget store did not answer (an allow with on_store_error: allow)
