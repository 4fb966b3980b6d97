"""evaluate(): Envelope -> ParsedRequest -> Findings -> Decision. What the servicer, CLI and tests call."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

from filter import formats, upstream
from filter.errors import RequestError
from filter.formats.limits import check_work
from filter.headers import IDENTITY
from filter.model import Decision, Envelope, Finding, Identity, ParsedRequest, TextSegment
from filter.policy import Treatment, decide, refuse, rewritable, treatment
from filter.redact import Redactor
from filter.rules.context import in_context
from filter.runtime import Snapshot
from filter.scopes import ResolvedScope, resolve
from filter.tokens import TokenCounter

_ID_PREFIX = secrets.token_hex(6)  # per process: ids from several replicas and workers do not collide
_ID_COUNTER = itertools.count()


def new_decision_id() -> str:
    """20 hex characters, unique per process and cheap (no syscall per request, unlike uuid4)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One request's outcome: the decision (every client string in it masked), what was parsed (None when the
    body was refused unparsed), and the redactor that masks whatever else is written out about it."""

    decision: Decision
    parsed: ParsedRequest | None
    redactor: Redactor = field(default_factory=Redactor)
    scope: ResolvedScope | None = None  # the policy file's scope of this request (None: no policy file)
    # A rewrite verdict's findings to replace by placeholders, as the scanner located them (NOT masked: the
    # rewriter needs the locations; never write them out, the decision carries the masked copies).
    to_redact: tuple[Finding, ...] = field(default=(), repr=False)


def outer_segments(envelope: Envelope) -> tuple[TextSegment, ...]:
    """For a request refused before parsing: the client text outside the body that the filter still writes out
    (the path without query, identity headers), to be scanned so the audit masks what the rules find in it."""
    segments = [TextSegment("path", unquote(envelope.path.split("?", 1)[0], errors="replace"))]
    segments += [TextSegment(f"headers.{h}", v) for h in IDENTITY.values() if (v := envelope.headers.get(h))]
    return tuple(segments)


def outer_redactor(envelope: Envelope, snapshot: Snapshot) -> Redactor:
    """For a request whose body was not scanned: masks what the rules find in its path and identity headers."""
    outer = outer_segments(envelope)
    return Redactor.build(outer, snapshot.ruleset.scan(outer))


def evaluate(
    envelope: Envelope,
    snapshot: Snapshot,
    counter: TokenCounter,
    identity: Identity | None = None,
    decision_id: str | None = None,
    can_rewrite: Callable[[Finding], bool] | None = rewritable,
) -> Evaluation:
    """Decide on one request. Bad input becomes a 4xx Decision; nothing here raises for user input.
    `can_rewrite`: which findings the gateway can replace by placeholders (None: it has no rewriter)."""
    decision_id = decision_id or new_decision_id()
    identity = identity or Identity()
    settings = snapshot.settings
    try:
        parsed = formats.parse(envelope, settings.limits)
        check_work("rule scan")  # the Check's CPU time and Envoy's deadline (filter.formats.limits)
    except RequestError as e:
        redactor = outer_redactor(envelope, snapshot)
        return Evaluation(refuse(
            e.http_status, e.reason, e.message, decision_id=decision_id,
            provider=formats.detect_provider(envelope), identity=redactor.identity(identity),
            body_bytes=len(envelope.body), pack_digest=snapshot.ruleset.digest,
        ), None, redactor)  # fmt: skip
    findings = snapshot.ruleset.scan(parsed.segments)  # body, path, query and headers, and decoded copies
    if findings and settings.policy.pii_context:  # an author's address in a file header or git log is logged, not blocked
        texts: dict[str, str] = {}
        for seg in parsed.segments:
            if seg.origin is None:
                texts.setdefault(seg.location, seg.text)
        findings = tuple(in_context(f, texts.get(f.location, "")) for f in findings)
    redactor = Redactor.build(parsed.segments, findings)
    masked = redactor.identity(identity)
    # The scope is resolved from the masked identity: budget keys are stored, and must never spell a found value.
    scope = resolve(snapshot.policy, masked) if snapshot.policy is not None else None
    policy = settings.policy if scope is None else scope.policy(settings.policy)
    if scope is not None and scope.rules:
        findings = tuple(scope.finding(f) for f in findings)
    tokens = counter.count(parsed.prompt_segments(), policy.max_prompt_tokens)
    model = redactor.mask_optional(parsed.model)
    decision = decide(
        parsed if model == parsed.model else replace(parsed, model=model), [redactor.finding(f) for f in findings],
        tokens, policy, decision_id=decision_id, identity=masked,
        pack_digest=snapshot.ruleset.digest, body_bytes=len(envelope.body), scope=scope, path=envelope.path,
        can_rewrite=can_rewrite,
    )  # fmt: skip
    if scope is not None and snapshot.policy is not None:  # in-region upstream, team key (filter/upstream.py)
        decision = upstream.apply(decision, parsed, snapshot.policy, scope, envelope.path)
    to_redact = tuple(f for f in findings if treatment(f, policy) is Treatment.REDACT) if decision.rewrite else ()
    return Evaluation(decision, parsed, redactor, scope, to_redact)
