"""The policy file: per-team, project, workspace and agent scopes, and how one request's scope is resolved.

Scopes go from broad to specific: default -> team -> project -> workspace -> agent. Each field is inherited
field by field (a team that only sets `models` keeps the default's providers); the most specific scope that
sets a field wins. `rules` overrides and `prices` merge entry by entry. Budgets (tokens and USD) are not
inherited: every scope that sets `budgets` has its own, and a request is charged against each one that applies to
it. `requests_per_minute` is counted under the key of the scope that set it (an agent's limit counts that agent,
a team's limit counts all requests of the team).

`load_policy` reads and checks a file (plain YAML, JSON schema, problems with their line); `resolve` is a pure
function of the policy and the verified identity.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from filter import credentials as keyfiles
from filter import residency as placement
from filter import strictyaml
from filter.errors import ConfigError
from filter.formats.routes import PROVIDERS
from filter.model import Action, Finding, Identity, Mode
from filter.reasons import Reason
from filter.settings import Policy
from filter.store.model import Budget, Window

# (identity field, the policy file's section), broad to specific; `default` comes before all of them.
LEVELS = (("team", "teams"), ("project", "projects"), ("workspace", "workspaces"), ("agent", "agents"))
RULE_ACTIONS = ("block", "redact", "log", "shadow")
STORE_ERROR_CHOICES = ("deny", "allow")
DEFAULT_MAX_OUTPUT_TOKENS = 4096
_BUDGET_WINDOWS = {"daily_tokens": Window.DAY, "monthly_tokens": Window.MONTH}
_USD_WINDOWS = {"daily_usd": Window.DAY, "monthly_usd": Window.MONTH}
MICRO = 1_000_000  # USD budgets are counted in integer micro-dollars
USD_SUFFIX = ":usd"  # a scope's USD budgets are counted under `<scope key>:usd` (`team:payments:usd`)
_PRICE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["input_per_mtok", "output_per_mtok"],
    "properties": {"input_per_mtok": {"type": "number", "minimum": 0, "maximum": 1_000_000},
                   "output_per_mtok": {"type": "number", "minimum": 0, "maximum": 1_000_000}},
}

_SCOPE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "providers": {"type": "array", "items": {"enum": sorted(PROVIDERS)}},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "paths": {"type": "array", "items": {"type": "string", "pattern": "^/"}},
        "max_prompt_tokens": {"type": "integer", "minimum": 1},
        "block_secrets": {"type": "boolean"},
        "block_pii": {"type": "boolean"},
        "redact_pii": {"type": "boolean"},
        "redact_secrets": {"type": "boolean"},
        "rehydrate": {"type": "boolean"},
        "rules": {"type": "object", "additionalProperties": {"enum": list(RULE_ACTIONS)}},
        "requests_per_minute": {"type": "integer", "minimum": 0},
        "prices": {"type": "object", "additionalProperties": _PRICE},  # model glob -> USD per million tokens
        "budgets": {
            "type": "object",
            "additionalProperties": False,
            "properties": {**{name: {"type": "integer", "minimum": 0} for name in _BUDGET_WINDOWS},
                           **{name: {"type": "number", "minimum": 0, "maximum": 1_000_000} for name in _USD_WINDOWS}},
        },
        **placement.SCOPE_PROPERTIES,  # regions, cross_region_profiles (filter/residency.py)
        **keyfiles.SCOPE_PROPERTIES,  # credentials: provider -> key file (filter/credentials.py)
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "timezone": {"type": "string", "minLength": 1},
        "on_store_error": {"enum": list(STORE_ERROR_CHOICES)},
        "default_max_output_tokens": {"type": "integer", "minimum": 1},
        "default": _SCOPE,
        **placement.FILE_PROPERTIES,  # region_sets, upstreams
        **{section: {"type": "object", "additionalProperties": _SCOPE} for _, section in LEVELS},
    },
}


class PolicyFileError(ConfigError):
    """Every problem of one policy file, each `file:line: message`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of one model; `cost` is in micro-dollars (USD per Mtok = micro-USD per token)."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        # rounded up: a fraction of a micro-dollar is charged, never given away
        return math.ceil(input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok)


@dataclass(frozen=True, slots=True)
class ScopeSpec:
    """One scope as written in the file; None (or an empty mapping) means "inherit"."""

    providers: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    max_prompt_tokens: int | None = None
    block_secrets: bool | None = None
    block_pii: bool | None = None
    redact_pii: bool | None = None
    redact_secrets: bool | None = None
    rehydrate: bool | None = None
    rules: Mapping[str, str] = field(default_factory=dict)
    requests_per_minute: int | None = None
    budgets: Mapping[Window, int] = field(default_factory=dict)  # this scope's own token budgets
    usd_budgets: Mapping[Window, int] = field(default_factory=dict)  # its own USD budgets, in micro-dollars
    prices: Mapping[str, Price] = field(default_factory=dict)  # model glob -> price, in file order
    regions: tuple[str, ...] | None = None  # region set names or regions the scope's requests may go to
    cross_region_profiles: str | None = None  # deny | rewrite (Bedrock geography profiles leaving the regions)
    credentials: Mapping[str, str] = field(default_factory=dict)  # provider -> key file the gateway injects


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    default: ScopeSpec = field(default_factory=ScopeSpec)
    scopes: Mapping[str, Mapping[str, ScopeSpec]] = field(default_factory=dict)  # level -> id or glob -> spec
    timezone: str | None = None  # budget windows' zone; None: the store's (config `store.timezone`)
    on_store_error: str = "deny"  # the budget store cannot answer: deny (503) or allow unchecked
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS  # reserved when a request names no output cap
    residency: placement.Residency = field(default_factory=placement.Residency)  # region sets, upstreams
    keys: Mapping[str, keyfiles.Secret] = field(default_factory=dict, repr=False)  # key file -> key (load_policy)


@dataclass(frozen=True, slots=True)
class ResolvedScope:
    """What applies to one request. `origin` names, per field, the scope that set it ("team payments")."""

    name: str  # the most specific scope that matched
    providers: tuple[str, ...] | None = None  # None: any
    models: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    max_prompt_tokens: int | None = None
    block_secrets: bool | None = None
    block_pii: bool | None = None
    redact_pii: bool | None = None
    redact_secrets: bool | None = None
    rehydrate: bool | None = None
    rules: Mapping[str, str] = field(default_factory=dict)
    requests_per_minute: int | None = None
    rate_key: str | None = None  # the key requests_per_minute counts under: that of the scope that set it
    budgets: tuple[Budget, ...] = ()
    usd_budgets: tuple[Budget, ...] = ()  # keys `<scope key>:usd`, limits in micro-dollars
    prices: tuple[tuple[str, Price], ...] = ()  # (model glob, price), the most specific scope's entries first
    origin: Mapping[str, str] = field(default_factory=dict)
    regions: tuple[str, ...] | None = None  # None: any region
    cross_region_profiles: str | None = None  # None: deny
    credentials: Mapping[str, str] = field(default_factory=dict)  # provider -> key file, merged entry by entry

    def price(self, model: str | None) -> Price | None:
        """The price of `model`: the first glob that matches it, most specific scope first; None if none does."""
        if not model:
            return None
        return next((p for glob, p in self.prices if fnmatch.fnmatchcase(model, glob)), None)

    def refusal(self, provider: str, model: str | None, path: str) -> tuple[Reason, str] | None:
        """(reason, message) when the request is outside this scope's providers, models or API paths."""
        if self.providers is not None and provider not in self.providers:
            return Reason.PROVIDER_NOT_ALLOWED, (
                f"Provider {provider!r} is not allowed by the gateway policy for {self.origin['providers']} "
                f"(allowed: {', '.join(self.providers) or 'none'}).")
        if self.models is not None and not (model and any(fnmatch.fnmatchcase(model, g) for g in self.models)):
            named = f"Model {model!r} is" if model else "A request that names no model is"
            return Reason.MODEL_NOT_ALLOWED, (
                f"{named} not allowed by the gateway policy for {self.origin['models']} "
                f"(allowed: {', '.join(self.models) or 'none'}).")
        bare = path.split("?", 1)[0]
        if self.paths is not None and not any(fnmatch.fnmatchcase(bare, g) for g in self.paths):
            return Reason.PATH_NOT_ALLOWED, (
                f"This API path is not allowed by the gateway policy for {self.origin['paths']} "
                f"(allowed: {', '.join(self.paths) or 'none'}).")
        return None

    def policy(self, base: Policy) -> Policy:
        """The global policy with this scope's switches applied."""
        changes: dict[str, Any] = {}
        for name in _POLICY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        return replace(base, **changes) if changes else base

    def finding(self, f: Finding) -> Finding:
        """A finding with this scope's action for its rule (block, redact, log or shadow), if the scope names one."""
        action = self.rules.get(f.rule_id)
        if action == "block":
            return replace(f, action=Action.BLOCK, mode=Mode.ENFORCE)
        if action == "redact":
            return replace(f, action=Action.REDACT, mode=Mode.ENFORCE)
        if action == "log":
            return replace(f, action=Action.LOG)
        if action == "shadow":
            return replace(f, mode=Mode.SHADOW)
        return f


_POLICY_FIELDS = ("max_prompt_tokens", "block_secrets", "block_pii", "redact_pii", "redact_secrets", "rehydrate")
_FIELDS = ("providers", "models", "paths", "requests_per_minute", "regions", "cross_region_profiles", *_POLICY_FIELDS)


def _matches(entries: Mapping[str, ScopeSpec], value: str) -> list[ScopeSpec]:
    """The first glob entry (in file order) that matches `value`, then the entry named exactly `value`: the
    exact entry inherits from the glob, field by field."""
    glob = next((spec for pattern, spec in entries.items()
                 if pattern != value and fnmatch.fnmatchcase(value, pattern)), None)
    return [spec for spec in (glob, entries.get(value)) if spec is not None]


def resolve(policy: PolicyFile, identity: Identity) -> ResolvedScope:
    """The scope of a request by `identity` (verified values only; an unknown field skips its level)."""
    chain: list[tuple[str, str, ScopeSpec]] = [("default", "all", policy.default)]  # (label, budget key, spec)
    for attr, section in LEVELS:
        value = getattr(identity, attr)
        if value:
            chain += [(f"{attr} {value}", f"{attr}:{value}", spec)
                      for spec in _matches(policy.scopes.get(section, {}), value)]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    rules: dict[str, str] = {}
    budgets: dict[tuple[str, Window], int] = {}  # an exact entry's budget replaces its glob's, window by window
    usd: dict[tuple[str, Window], int] = {}
    rate_key: str | None = None
    credentials: dict[str, str] = {}
    for label, key, spec in chain:
        for name in _FIELDS:
            if (value := getattr(spec, name)) is not None:
                values[name], origin[name] = value, label
        if spec.requests_per_minute is not None:
            rate_key = key
        rules.update(spec.rules)
        credentials.update(spec.credentials)
        budgets.update({(key, window): limit for window, limit in spec.budgets.items()})
        usd.update({(key + USD_SUFFIX, window): limit for window, limit in spec.usd_budgets.items()})
    prices = tuple(entry for _, _, spec in reversed(chain) for entry in spec.prices.items())
    # Most specific first: a refusal names the narrowest budget that is out.
    ordered = tuple(Budget(key, window, limit) for (key, window), limit in reversed(budgets.items()))
    usd_ordered = tuple(Budget(key, window, limit) for (key, window), limit in reversed(usd.items()))
    return ResolvedScope(name=chain[-1][0], rules=rules, budgets=ordered, usd_budgets=usd_ordered, prices=prices,
                         rate_key=rate_key, origin=origin, credentials=credentials, **values)


# -- loading and linting ------------------------------------------------------------------------------------


def _spec(raw: Mapping[str, Any]) -> ScopeSpec:
    def strings(name: str) -> tuple[str, ...] | None:
        return tuple(raw[name]) if name in raw else None

    return ScopeSpec(
        providers=strings("providers"), models=strings("models"), paths=strings("paths"),
        max_prompt_tokens=raw.get("max_prompt_tokens"), block_secrets=raw.get("block_secrets"),
        block_pii=raw.get("block_pii"), rules=dict(raw.get("rules", {})),
        redact_pii=raw.get("redact_pii"), redact_secrets=raw.get("redact_secrets"), rehydrate=raw.get("rehydrate"),
        requests_per_minute=raw.get("requests_per_minute"),
        budgets={_BUDGET_WINDOWS[k]: v for k, v in raw.get("budgets", {}).items() if k in _BUDGET_WINDOWS},
        usd_budgets={_USD_WINDOWS[k]: round(v * MICRO) for k, v in raw.get("budgets", {}).items() if k in _USD_WINDOWS},
        prices={glob: Price(float(p["input_per_mtok"]), float(p["output_per_mtok"]))
                for glob, p in raw.get("prices", {}).items()},
        regions=strings("regions"), cross_region_profiles=raw.get("cross_region_profiles"),
        credentials=dict(raw.get("credentials", {})),
    )  # fmt: skip


def check_text(text: str, name: str) -> tuple[PolicyFile | None, list[str]]:
    """Parse and check a policy file's text: (the policy, []) or (None, every problem as `name:line: message`)."""
    lines: dict[strictyaml.Path_, int] = {}
    try:
        raw = strictyaml.to_plain(strictyaml.compose(text), lines)
    except strictyaml.YAMLRefused as e:
        return None, [f"{name}:{e.line}: {e.message}"]
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        return None, [f"{name}:{strictyaml.error_line(e)}: not valid YAML: {problem}"]
    except RecursionError:
        return None, [f"{name}:1: nested too deeply"]
    raw = {} if raw is None else raw

    def line(at: Sequence[str | int]) -> int:
        at = tuple(at)
        while at and at not in lines:
            at = at[:-1]
        return lines.get(at, 1)

    problems: list[tuple[int, str]] = []
    for err in jsonschema.Draft202012Validator(SCHEMA).iter_errors(raw):
        where = ".".join(str(p) for p in err.absolute_path)
        at = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
            if extra and isinstance(err.schema.get("additionalProperties"), bool):
                at.append(extra[0])  # point at the unknown key itself
        problems.append((line(at), f"{where + ': ' if where else ''}{err.message}"))
    if not problems:
        tz = raw.get("timezone", "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append((line(["timezone"]), f"timezone: unknown IANA time zone {tz!r}"))
        for _, section in LEVELS:
            for scope_id in raw.get(section, {}):
                if not scope_id:
                    problems.append((line([section]), f"{section}: a scope id must not be empty"))
        named: list[tuple[str, list[str | int]]] = [("default", ["default"])] + [
            (f"{section}.{k}", [section, k]) for _, section in LEVELS for k in raw.get(section, {})]
        problems += placement.check(raw, named, line) + keyfiles.check(raw, named, line)
    if problems:
        return None, [f"{name}:{n}: {message}" for n, message in sorted(problems, key=lambda p: p[0])]
    return PolicyFile(
        path=name,
        default=_spec(raw.get("default", {})),
        scopes={section: {k: _spec(v) for k, v in raw.get(section, {}).items()} for _, section in LEVELS},
        timezone=raw.get("timezone"),
        on_store_error=raw.get("on_store_error", "deny"),
        default_max_output_tokens=raw.get("default_max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS),
        residency=placement.Residency.from_raw(raw),
    ), []


def check_against(policy: PolicyFile, rule_ids: Collection[str], store_timezone: str | None) -> list[str]:
    """What the policy file names that the rest of the configuration contradicts: a rule id no loaded pack has
    (a typo would silently change nothing), a time zone other than the one the store counts budget windows in."""
    problems = []
    named = [("default", policy.default), *((f"{section}.{k}", spec) for section, entries in policy.scopes.items()
                                            for k, spec in entries.items())]
    for where, spec in named:
        problems += [f"{policy.path}: {where}.rules: no loaded pack has a rule {rule!r}"
                     for rule in spec.rules if rule not in rule_ids]
    if policy.timezone is not None and store_timezone is not None and policy.timezone != store_timezone:
        problems.append(f"{policy.path}: timezone {policy.timezone!r} differs from the config's store.timezone "
                        f"{store_timezone!r}, the zone the store counts budget days and months in: set one of them")
    return problems


def read_text(path: str) -> str:
    """The file's text, or ConfigError naming the file (unreadable, not UTF-8)."""
    try:
        return Path(path).read_text("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read policy file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read policy file: not UTF-8 text") from None


def load_policy(path: str) -> PolicyFile:
    """Read and check a policy file; raises ConfigError (unreadable) or PolicyFileError (every problem)."""
    policy, problems = check_text(read_text(path), path)
    if policy is None:
        raise PolicyFileError(problems)
    files: dict[str, list[str]] = {}  # key file -> where the policy names it
    named = [("default", policy.default), *((f"{section}.{k}", spec) for section, entries in policy.scopes.items()
                                            for k, spec in entries.items())]
    for where, spec in named:
        for provider, file in spec.credentials.items():
            files.setdefault(file, []).append(f"{where}.credentials.{provider}")
    return replace(policy, keys=keyfiles.read_keys(path, files)) if files else policy
