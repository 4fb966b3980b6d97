"""Who is asking: verified JWT claims first; identity headers only where policy trusts the network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from filter.headers import IDENTITY as IDENTITY_HEADERS
from filter.model import Identity

# Claim names accepted in a verified JWT payload, per identity field (first present wins).
CLAIMS = {
    "workspace": ("workspace", "workspace_id"),
    "team": ("team", "team_id"),
    "project": ("project", "project_id"),
    "agent": ("agent", "agent_id", "sub"),
}


def identify(headers: Mapping[str, str], jwt_claims: Mapping[str, Any] | None, trust_headers: bool) -> Identity:
    """A client-sent header never overrides a verified claim: with a JWT, headers are ignored entirely."""
    if jwt_claims:
        values = {}
        for name, keys in CLAIMS.items():
            found = next((jwt_claims[k] for k in keys if isinstance(jwt_claims.get(k), str)), None)
            values[name] = found
        return Identity(**values, source="jwt")
    if trust_headers:
        values = {name: headers.get(h) or None for name, h in IDENTITY_HEADERS.items()}
        if any(values.values()):
            return Identity(**values, source="headers")
    return Identity()
