"""An allowed request's way upstream under its policy scope: the in-region endpoint (filter/residency.py) and the
team's provider key (filter/credentials.py), as request edits; or a 403 `region_not_allowed` deny. Pure."""

from __future__ import annotations

from dataclasses import replace

from filter import credentials, residency
from filter.model import Decision, ParsedRequest, RequestEdits, Verdict
from filter.policy import SCOPE_STATUS
from filter.reasons import Reason
from filter.scopes import PolicyFile, ResolvedScope

_ROUTING_HEADERS = (residency.UPSTREAM_CLUSTER, residency.UPSTREAM_REGION)


def apply(decision: Decision, parsed: ParsedRequest, policy: PolicyFile, scope: ResolvedScope, path: str) -> Decision:
    """`parsed.model` is the model as sent (the decision's may be masked): read, never written out."""
    if not decision.allowed:
        return decision
    set_headers: list[tuple[str, str]] = []
    remove_headers: list[str] = list(_ROUTING_HEADERS)  # a client's copies (Envoy removes them too, before routing)
    remove_query: tuple[str, ...] = ()
    region = None
    if scope.regions is not None:
        placed = residency.place(policy.residency, scope.regions, scope.origin["regions"],
                                 scope.cross_region_profiles, decision.provider, parsed.model, path)
        if isinstance(placed, residency.Refusal):
            return replace(decision, verdict=Verdict.DENY, http_status=SCOPE_STATUS,
                           reason=Reason.REGION_NOT_ALLOWED, headers={},
                           message=f"{placed.message} Decision id {decision.decision_id}.")
        region = placed.region
        set_headers += [(residency.UPSTREAM_CLUSTER, placed.cluster), (residency.UPSTREAM_REGION, placed.region)]
        remove_headers = []
        if placed.path is not None:
            set_headers.append((":path", placed.path))
    key_file = scope.credentials.get(decision.provider)
    if key_file is not None:
        key = policy.keys.get(key_file)
        if key is None or decision.provider not in credentials.KEY_HEADERS:  # never forward without the team's key
            return replace(decision, verdict=Verdict.DENY, http_status=503, reason=Reason.INTERNAL_ERROR, headers={},
                           message=f"The gateway has no key loaded for {decision.provider}, so the request was not "
                                   f"sent. Decision id {decision.decision_id}.")
        injected = credentials.injection(decision.provider, key)
        set_headers += injected.set_headers
        remove_headers += injected.remove_headers
        remove_query = injected.remove_query
    return replace(decision, edits=RequestEdits(region, tuple(set_headers), tuple(remove_headers), remove_query,
                                                key_injected=key_file is not None))
