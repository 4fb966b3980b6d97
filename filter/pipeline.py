"""evaluate(): Envelope -> ParsedRequest -> Findings -> Decision. What the servicer, CLI and tests call."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass

from filter import formats
from filter.errors import RequestError
from filter.formats.limits import check_work
from filter.model import Decision, Envelope, Identity, ParsedRequest
from filter.policy import decide, refuse
from filter.runtime import Snapshot
from filter.tokens import TokenCounter

_ID_PREFIX = secrets.token_hex(6)  # per process: ids from several replicas and workers do not collide
_ID_COUNTER = itertools.count()


def new_decision_id() -> str:
    """20 hex characters, unique per process and cheap (no syscall per request, unlike uuid4)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One request's outcome: the decision, and what was parsed (None when the body was refused unparsed)."""

    decision: Decision
    parsed: ParsedRequest | None


def evaluate(
    envelope: Envelope,
    snapshot: Snapshot,
    counter: TokenCounter,
    identity: Identity | None = None,
    decision_id: str | None = None,
) -> Evaluation:
    """Decide on one request. Bad input becomes a 4xx Decision; nothing here raises for user input."""
    decision_id = decision_id or new_decision_id()
    identity = identity or Identity()
    settings = snapshot.settings
    try:
        parsed = formats.parse(envelope, settings.limits)
        check_work("rule scan")  # the Check's CPU time and Envoy's deadline (filter.formats.limits)
    except RequestError as e:
        return Evaluation(refuse(
            e.http_status, e.reason, e.message, decision_id=decision_id,
            provider=formats.detect_provider(envelope), identity=identity, body_bytes=len(envelope.body),
            pack_digest=snapshot.ruleset.digest,
        ), None)  # fmt: skip
    findings = snapshot.ruleset.scan(parsed.segments)
    tokens = counter.count(parsed.segments, settings.policy.max_prompt_tokens)
    decision = decide(
        parsed, findings, tokens, settings.policy, decision_id=decision_id, identity=identity,
        pack_digest=snapshot.ruleset.digest, body_bytes=len(envelope.body),
    )  # fmt: skip
    return Evaluation(decision, parsed)
