"""Data residency: which in-region upstream an allowed request goes to, or why it may not go anywhere.

The policy file names the gateway's regional upstreams (`upstreams`: provider -> region -> Envoy cluster, in order
of preference) and, optionally, named sets of regions (`region_sets: {eu: [eu-central-1, europe-west4, ...]}`).
A scope's `regions` lists set names or single regions; a request of that scope goes to the first upstream of its
provider whose region is allowed, or is denied 403 `region_not_allowed` when the provider has none. The filter
names the chosen cluster in a request header on allow, and Envoy routes on it (envoy/envoy.yaml, section 2b).

Bedrock cross-region inference profiles (`us.`, `eu.`, `apac.`, `global.` model ids) may serve a request from any
region of their geography: one is allowed when its geography is the chosen endpoint's and the scope allows the
geography by name (`regions: [eu]`); otherwise it is denied, or moved to the endpoint's geography
(`cross_region_profiles: rewrite`: `us.anthropic...` -> `eu.anthropic...` in the request path).

Pure: no I/O. `check` lints the policy file's residency fields; `place` decides for one request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from filter.formats.routes import PROVIDERS

# Headers the filter sets on allow, that Envoy routes on; client-sent copies are removed before routing.
UPSTREAM_CLUSTER = "x-llm-upstream-cluster"
UPSTREAM_REGION = "x-llm-upstream-region"
CROSS_REGION_CHOICES = ("deny", "rewrite")
_NAME = r"^[a-z][a-z0-9-]{0,39}$"  # a region or a region set: `eu`, `eu-central-1`, `europe-west4`, `swedencentral`
_CLUSTER = r"^[a-z][a-z0-9-]{0,59}$"  # header value Envoy's regional routes match on

FILE_PROPERTIES: dict[str, Any] = {
    "region_sets": {"type": "object", "propertyNames": {"pattern": _NAME},
                    "additionalProperties": {"type": "array", "minItems": 1,
                                             "items": {"type": "string", "pattern": _NAME}}},
    "upstreams": {"type": "object", "propertyNames": {"enum": sorted(PROVIDERS)},
                  "additionalProperties": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": _NAME},
                                           "additionalProperties": {"type": "string", "pattern": _CLUSTER}}},
}
SCOPE_PROPERTIES: dict[str, Any] = {
    "regions": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": _NAME}},
    "cross_region_profiles": {"enum": list(CROSS_REGION_CHOICES)},
}

# Bedrock inference-profile geographies (the model id's first dotted part) and the AWS regions' geography.
_GEOGRAPHIES = frozenset({"us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"})
_AWS_GEOGRAPHY = (("us-gov-", "us-gov"), ("us-", "us"), ("eu-", "eu"), ("ap-", "apac"), ("ca-", "ca"))
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:(?P<region>[a-z0-9-]*):[0-9]*:(?P<kind>[a-z-]+)/(?P<id>.+)$")
# The model id's geography as sent in the path (`/model/us.anthropic...`, under an optional gateway prefix).
_PROFILE_PATH = re.compile(r"^(?P<lead>(?:/bedrock)?/model/)(?P<geo>[a-z-]+)\.")


@dataclass(frozen=True, slots=True)
class Residency:
    """The policy file's region sets and regional upstreams."""

    region_sets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    upstreams: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # provider -> (region, cluster)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Residency:
        return cls({name: frozenset(regions) for name, regions in raw.get("region_sets", {}).items()},
                   {provider: tuple(by_region.items()) for provider, by_region in raw.get("upstreams", {}).items()})

    def allowed(self, names: Sequence[str]) -> frozenset[str]:
        """Every region (and set name) that `names` allows: the names themselves and the members of named sets."""
        out = set(names)
        for name in names:
            out |= self.region_sets.get(name, frozenset())
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an allowed request goes: its provider's cluster in an allowed region, and its path if moved."""

    region: str
    cluster: str
    path: str | None = None  # the request path with a Bedrock profile moved into the region; None: unchanged


@dataclass(frozen=True, slots=True)
class Refusal:
    message: str  # names the policy and the regions, never a client value


def aws_geography(region: str) -> str | None:
    """The inference-profile geography of an AWS region (`eu-central-1` -> `eu`); None for anything else."""
    return next((geo for lead, geo in _AWS_GEOGRAPHY if region.startswith(lead)), None)


def profile_geography(model_id: str) -> str | None:
    """`us` for `us.anthropic.claude-...`; None for a model id without a geography prefix."""
    head, dot, _ = model_id.partition(".")
    return head if dot and head in _GEOGRAPHIES else None


def place(residency: Residency, regions: Sequence[str], origin: str, cross_region: str | None, provider: str,
          model: str | None, path: str) -> Placement | Refusal:
    """The in-region upstream of a request of `provider` under a scope allowing `regions` (set by `origin`)."""
    allowed = residency.allowed(regions)
    where = f"the regions the gateway policy allows for {origin} ({', '.join(regions)})"
    found = next(((r, c) for r, c in residency.upstreams.get(provider, ()) if r in allowed), None)
    if found is None:
        return Refusal(f"Provider {provider!r} has no gateway endpoint in {where}, so the request was not sent. "
                       f"Use a provider that has one.")
    region, cluster = found
    if provider != "bedrock" or not model:
        return Placement(region, cluster)
    return _bedrock(Placement(region, cluster), allowed, where, cross_region, model, path)


def _bedrock(placed: Placement, allowed: frozenset[str], where: str, cross_region: str | None, model: str,
             path: str) -> Placement | Refusal:
    """A Bedrock model id that may leave the region: a cross-region profile, an ARN of another region."""
    arn = _ARN.match(model)
    if arn is not None:
        if arn["region"] not in allowed:
            return Refusal(f"The model ARN names a region outside {where}, so the request was not sent.")
        if arn["kind"] == "application-inference-profile":
            return Refusal(f"An application inference profile may route requests outside {where}, so the request "
                           "was not sent. Use a model id or an in-region inference profile.")
        if arn["kind"] != "inference-profile":
            return placed
        model, movable = arn["id"], False  # an ARN is left as sent: its account and region are the client's
    else:
        movable = True
    geo = profile_geography(model)
    home = aws_geography(placed.region)
    if geo is None or (geo == home and geo in allowed):
        return placed
    target = f" (the {home}. profile of the same model)" if home in allowed else ""
    m = _PROFILE_PATH.match(path)
    if cross_region == "rewrite" and movable and home is not None and home in allowed and m and m["geo"] == geo:
        return Placement(placed.region, placed.cluster, f"{m['lead']}{home}.{path[m.end():]}")
    return Refusal(f"The cross-region inference profile {geo}. can serve the request from regions outside {where}, "
                   f"so the request was not sent. Use an in-region profile{target} or a model id without a "
                   "geography prefix.")


def check(raw: Mapping[str, Any], scopes: Sequence[tuple[str, list[str | int]]],
          line: Callable[[Sequence[str | int]], int]) -> list[tuple[int, str]]:
    """Lint the residency fields of a schema-valid file: (line, message) for each problem."""
    problems: list[tuple[int, str]] = []
    residency = Residency.from_raw(raw)
    for provider, entries in residency.upstreams.items():
        for region, cluster in entries:
            if cluster != provider and not cluster.startswith(provider + "-"):
                problems.append((line(["upstreams", provider, region]),
                                 f"upstreams.{provider}.{region}: cluster {cluster!r} is not a {provider} cluster: "
                                 f"name it {provider!r} or '{provider}-<name>' (the gateway routes a provider's "
                                 "requests to its own clusters only)"))
    known = set(residency.region_sets) | {r for members in residency.region_sets.values() for r in members} | {
        region for entries in residency.upstreams.values() for region, _ in entries}
    for where, at in scopes:
        spec = _get(raw, at)
        for i, name in enumerate(spec.get("regions", [])):
            if name not in known:
                problems.append((line([*at, "regions", i]),
                                 f"{where}.regions: unknown region or region set {name!r} (region sets: "
                                 f"{', '.join(sorted(residency.region_sets)) or 'none'}; regions of upstreams: "
                                 f"{', '.join(sorted({r for e in residency.upstreams.values() for r, _ in e})) or 'none'})"))
        if "regions" in spec and not residency.upstreams:
            problems.append((line([*at, "regions"]),
                             f"{where}.regions: the file declares no upstreams, so no provider has an endpoint in "
                             "any region: add `upstreams` (provider -> region -> Envoy cluster)"))
    return problems


def _get(raw: Mapping[str, Any], at: Sequence[str | int]) -> Mapping[str, Any]:
    node: Any = raw
    for key in at:
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}

