"""Metrics through the OpenTelemetry SDK, exported for Prometheus. Every instrument is named here (docs/metrics.md).

Label values come only from closed sets the filter defines (verdicts, reason codes, providers, reload results,
rate-limit descriptor keys, store operations) or from the operator's own packs and policy file (rule ids, budget
scopes, model globs): never from client text, so a secret in a request field can never become a label and the
number of series stays bounded. The one exception is verified identity: a value the policy file names exactly, or
one from a verified JWT (at most `telemetry.max_identity_values` of those per level, later ones count as `other`);
an identity header alone can be any client text, so it counts as `other`.
Counters start at zero for every label set known at start, so `rate()` and alerts see the first event.
"""

from __future__ import annotations

import errno
import fnmatch
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import Attributes

from filter.formats.routes import PROVIDERS as _API_PROVIDERS
from filter.model import Decision, Identity, Verdict
from filter.reasons import Reason
from filter.scopes import MICRO, USD_SUFFIX
from filter.store import Budget, StoreError

if TYPE_CHECKING:
    from filter.runtime import Runtime
    from filter.store import Store
    from filter.usage import Usage

SERVICE_NAME = "llm-content-filter"
# Check latency in milliseconds: 0.1 ms (a small clean body) to 5 s (a body at the size and CPU limits).
LATENCY_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
PROVIDERS = tuple(sorted(_API_PROVIDERS | {"raw", "unknown"}))  # "raw": a body scanned without a known API
_REASONS = frozenset(r.value for r in Reason)
RELOAD_RESULTS = ("ok", "error")
RATE_LIMIT_KEYS = ("workspace_id", "team_id", "project_id", "agent_id", "other")
USAGE_KINDS = ("input", "output")
USAGE_SOURCES = ("reported", "estimated")  # the provider's own count, or the filter's estimate (no usage sent)
# How an observed response ended: usage as reported or estimated, an error status, or no response at all.
USAGE_RESULTS = ("reported", "estimated", "error", "no_response")
# The rewriter: a body rewritten; nothing to rewrite after all; refused (a deny answered in the provider's shape);
# failed (an error answered, nothing forwarded). A response rehydrated in full, or cut off / failed midway.
REWRITE_RESULTS = ("rewritten", "unchanged", "refused", "failed")
REHYDRATE_RESULTS = ("completed", "failed")
STORE_OPERATIONS = ("reserve", "reconcile", "release", "hit", "usage", "expire", "other")
# Store call latency in milliseconds: a local SQLite write (~0.1 ms) to a Redis call at its timeout (0.5 s+).
STORE_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
OTHER = "other"
UNKNOWN = "unknown"
# Identity levels of the per-scope token counter, and the scope levels a budget can belong to ("default": `all`).
IDENTITY_LEVELS = ("workspace", "team", "project", "agent")
BUDGET_SCOPES = ("default", "team", "project", "workspace", "agent")
BUDGET_STATES = ("limit", "used", "reserved")
DEFAULT_MAX_IDENTITY_VALUES = 200  # spelled identity values per level; later ones fold into `other`
REMEMBERED_DECISIONS = 50_000  # allowed decisions whose identity waits for the usage observer (bounded, LRU)
MAX_REGION_VALUES = 50  # spelled upstream regions; later ones fold into `other`
BUDGET_HEADER = "x-llm-filter-budget"  # filter.budgets.BUDGET: the refused budget's name on a 429


def _version() -> str:
    try:
        return metadata.version("llm-content-filter")
    except metadata.PackageNotFoundError:
        return "unknown"


def _bounded(value: str | None, allowed: Iterable[str], fallback: str = OTHER) -> str:
    return value if value is not None and value in allowed else fallback


def _verdict_of(reason: Reason) -> str:
    if reason is Reason.REDACTED:
        return Verdict.REWRITE.value
    return Verdict.ALLOW.value if reason is Reason.ALLOWED else Verdict.DENY.value


class _BoundedCounter:
    """A counter whose label values are mapped into closed sets before they reach the SDK."""

    def __init__(self, counter: object, allowed: Mapping[str, Sequence[str]]) -> None:
        self._counter = counter
        self._allowed = allowed

    def add(self, amount: int | float, attributes: Attributes = None) -> None:
        attrs = dict(attributes or {})
        clean = {k: _bounded(str(attrs.get(k)) if k in attrs else None, allowed) for k, allowed in self._allowed.items()}
        self._counter.add(amount, clean)  # type: ignore[attr-defined]


def budget_scope(budget_key: str) -> tuple[str, str]:
    """(scope level, id) of a budget key: `team:payments` (or its USD budget's `team:payments:usd`) -> (team,
    payments); `all` -> (default, all)."""
    level, _, value = budget_key.removesuffix(USD_SUFFIX).partition(":")
    return (level, value) if value and level in BUDGET_SCOPES else ("default", "all")


class _Folding:
    """Admits the first `cap` values of each label; later values map to `other` (bounded series)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, level: str, value: str | None) -> str:
        if not value:
            return UNKNOWN
        with self._lock:
            seen = self._seen.setdefault(level, set())
            if value in seen:
                return value
            if len(seen) < self.cap and value not in (OTHER, UNKNOWN):
                seen.add(value)
                return value
        return OTHER


class Telemetry:
    def __init__(self, readers: Sequence[MetricReader] = (), max_identity_values: int = DEFAULT_MAX_IDENTITY_VALUES,
                 models: Sequence[str] = ()) -> None:
        resource = Resource.create({"service.name": SERVICE_NAME, "service.version": _version()})
        views = [View(instrument_name="llm_filter_check_duration",
                      aggregation=ExplicitBucketHistogramAggregation(boundaries=LATENCY_BUCKETS_MS)),
                 View(instrument_name="llm_filter_store_duration",
                      aggregation=ExplicitBucketHistogramAggregation(boundaries=STORE_BUCKETS_MS))]
        self.provider = MeterProvider(metric_readers=list(readers), resource=resource, views=views)
        meter = self.provider.get_meter("llm_content_filter")
        self._runtime: Runtime | None = None
        self._store: Store | None = None
        self._fold = _Folding(max_identity_values)
        # Budgets of glob scopes (`agents: {"*": ...}`) as requests met them: (key, window) -> budget.
        self._glob_budgets: dict[tuple[str, str], Budget] = {}
        self._glob_fold = _Folding(max_identity_values)
        self._glob_lock = threading.Lock()
        self._named: tuple[object, frozenset[tuple[str, str]]] = (None, frozenset())  # (policy, its budgets)
        self._models = frozenset(models)  # telemetry.models: model names spelled as labels
        self._decisions: OrderedDict[str, tuple[Identity, str | None]] = OrderedDict()
        self._decisions_lock = threading.Lock()
        self.decisions = meter.create_counter(
            "llm_filter_decisions", description="Check decisions by verdict, reason code and provider")
        self.findings = meter.create_counter(
            "llm_filter_findings", description="Findings by rule id (from the loaded packs), category and mode")
        self.prompt_tokens = meter.create_counter(
            "llm_filter_prompt_tokens", description="Prompt tokens of allowed requests, by provider")
        self.check_latency = meter.create_histogram(
            "llm_filter_check_duration", unit="ms", description="Check latency inside the filter, by verdict")
        self.reloads = meter.create_counter("llm_filter_pack_reloads", description="Rule pack reloads by result")
        self.rate_limited = _BoundedCounter(
            meter.create_counter("llm_filter_rate_limited", description="Over-limit rate limit answers by descriptor key"),
            {"key": RATE_LIMIT_KEYS})
        self.usage_tokens = _BoundedCounter(
            meter.create_counter("llm_filter_usage_tokens",
                                 description="Tokens providers' responses used, by provider, kind and source"),
            {"provider": PROVIDERS, "kind": USAGE_KINDS, "source": USAGE_SOURCES})
        self.usage_streams = _BoundedCounter(
            meter.create_counter("llm_filter_usage_streams", description="Observed provider responses by result"),
            {"result": USAGE_RESULTS})
        self.store_errors = _BoundedCounter(
            meter.create_counter("llm_filter_store_errors", description="Failed store calls by operation"),
            {"operation": STORE_OPERATIONS})
        self.scope_tokens = meter.create_counter(
            "llm_filter_scope_tokens",
            description="Tokens providers' responses used, by verified identity level and value, provider, kind, source")
        self.model_tokens = meter.create_counter(
            "llm_filter_model_tokens",
            description="Tokens providers' responses used, by provider and model (bounded: configured models only)")
        # Label values are the policy file's upstream regions (the only ones a decision can name), folded past 50.
        self._regions = _Folding(MAX_REGION_VALUES)
        self.upstream_regions = meter.create_counter(
            "llm_filter_upstream_region", description="Allowed requests sent to an in-region upstream, by provider "
                                                      "and region (data residency)")
        # The gateway's rewriter (filter/server/rewriter.py): one count per request body it was asked to rewrite,
        # one per response it rehydrated.
        self.rewrites = _BoundedCounter(
            meter.create_counter("llm_filter_rewrites",
                                 description="Request bodies the rewriter handled, by result"),
            {"result": REWRITE_RESULTS})
        self.rehydrations = _BoundedCounter(
            meter.create_counter("llm_filter_rehydrations",
                                 description="Responses the rewriter rehydrated, by result"),
            {"result": REHYDRATE_RESULTS})
        self.budget_refusals = _BoundedCounter(
            meter.create_counter("llm_filter_budget_refusals",
                                 description="Requests refused over a token budget, by the budget's scope level"),
            {"scope": BUDGET_SCOPES})
        meter.create_observable_gauge("llm_filter_budget_tokens", [self._budget_tokens],
                                      description="Configured token budgets: limit, used and reserved in the "
                                                  "current window, read from the store at scrape time")
        meter.create_observable_gauge("llm_filter_budget_usd", [self._budget_usd],
                                      description="Configured USD budgets: limit, used and reserved in the "
                                                  "current window, read from the store at scrape time")
        self.store_latency = meter.create_histogram(
            "llm_filter_store_duration", unit="ms", description="Store call latency by operation")
        meter.create_observable_gauge("llm_filter_rules_loaded", [self._rules_loaded],
                                      description="Rules in the live rule set")
        meter.create_observable_gauge("llm_filter_pack_info", [self._pack_info],
                                      description="Always 1; the live rule set's digest as label `digest`")
        meter.create_observable_gauge("llm_filter_pack_last_reload_timestamp", [self._last_reload], unit="s",
                                      description="Unix time the live rule set was built (start or last good reload)")
        self._zero()

    def _zero(self) -> None:
        for reason in Reason:
            for provider in PROVIDERS:
                self.decisions.add(0, {"verdict": _verdict_of(reason), "reason": reason.value, "provider": provider})
        for provider in PROVIDERS:
            self.prompt_tokens.add(0, {"provider": provider})
        for result in RELOAD_RESULTS:
            self.reloads.add(0, {"result": result})
        for key in RATE_LIMIT_KEYS:
            self.rate_limited.add(0, {"key": key})
        for provider in PROVIDERS:
            for kind in USAGE_KINDS:
                for source in USAGE_SOURCES:
                    self.usage_tokens.add(0, {"provider": provider, "kind": kind, "source": source})
        for result in USAGE_RESULTS:
            self.usage_streams.add(0, {"result": result})
        for operation in STORE_OPERATIONS:
            self.store_errors.add(0, {"operation": operation})
        for scope in BUDGET_SCOPES:
            self.budget_refusals.add(0, {"scope": scope})
        for result in REWRITE_RESULTS:
            self.rewrites.add(0, {"result": result})
        for result in REHYDRATE_RESULTS:
            self.rehydrations.add(0, {"result": result})
        for provider in PROVIDERS:
            for kind in USAGE_KINDS:
                for source in USAGE_SOURCES:
                    for level in IDENTITY_LEVELS:
                        self.scope_tokens.add(0, {"scope": level, "id": UNKNOWN, "provider": provider,
                                                  "kind": kind, "source": source})
                    self.model_tokens.add(0, {"provider": provider, "model": OTHER, "kind": kind, "source": source})

    def track_store(self, store: Store | None) -> None:
        """Report the configured budgets' use from `store` (llm_filter_budget_tokens); None: no budget gauges."""
        self._store = store

    def _configured_budgets(self, usd: bool = False) -> list[Budget]:
        """The policy file's token (or USD) budgets that name one scope: the default's and exact (non-glob)
        entries'. A glob's budgets apply per matching identity, an open set, so they have no gauge."""
        policy = self._runtime.current.policy if self._runtime is not None else None
        if policy is None:
            return []
        suffix = USD_SUFFIX if usd else ""
        scopes = [("all", policy.default)]
        for level, section in (("team", "teams"), ("project", "projects"), ("workspace", "workspaces"),
                               ("agent", "agents")):
            scopes += [(f"{level}:{name}", spec) for name, spec in policy.scopes.get(section, {}).items()
                       if not any(c in name for c in "*?[")]
        return [Budget(key + suffix, window, limit) for key, spec in scopes
                for window, limit in (spec.usd_budgets if usd else spec.budgets).items()]

    def saw_budgets(self, budgets: Iterable[Budget]) -> None:
        """Budgets a request was held to. Those of glob scopes (one budget per matching identity) get gauges from
        here on, for the first `max_identity_values` identities per level (later ones: none, the series stay
        bounded); the configured ones have theirs already."""
        policy = self._runtime.current.policy if self._runtime is not None else None
        if policy is None:
            return
        if self._named[0] is not policy:  # once per policy (re)load, not per request
            self._named = (policy, frozenset((b.key, b.window.value)
                                             for usd in (False, True) for b in self._configured_budgets(usd)))
        named = self._named[1]
        for budget in budgets:
            level, ident = budget_scope(budget.key)
            if (budget.key, budget.window.value) not in named and self._glob_fold(level, ident) == ident:
                with self._glob_lock:  # the latest limit: a reload may change the glob's
                    self._glob_budgets[(budget.key, budget.window.value)] = budget

    def _budget_states(self, usd: bool) -> Iterable[Observation]:
        configured = self._configured_budgets(usd)
        named = {(b.key, b.window.value) for b in configured}
        with self._glob_lock:
            met = [b for k, b in self._glob_budgets.items() if k not in named and b.key.endswith(USD_SUFFIX) == usd]
        budgets = configured + met
        if self._store is None or not budgets:
            return
        try:
            usages = self._store.usage(budgets)
        except StoreError:  # counted as a store error (operation `usage`); the gauges skip this scrape
            return
        scale = MICRO if usd else 1  # USD budgets are counted in micro-dollars
        for budget, used in zip(budgets, usages, strict=False):
            level, ident = budget_scope(budget.key)
            labels = {"scope": level, "id": ident, "window": budget.window.value}
            yield Observation(budget.limit / scale, {**labels, "state": "limit"})
            yield Observation(used.used / scale, {**labels, "state": "used"})
            yield Observation(used.reserved / scale, {**labels, "state": "reserved"})

    def _budget_tokens(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._budget_states(usd=False)

    def _budget_usd(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._budget_states(usd=True)

    def _model_label(self, model: str | None) -> str:
        """The model as a label only when the operator named it: in `telemetry.models`, or as the policy file's
        model glob it matches (the glob, not the client's text); else `other`."""
        if not model:
            return OTHER
        if model in self._models:
            return model
        policy = self._runtime.current.policy if self._runtime is not None else None
        if policy is not None:
            specs = [policy.default, *(s for entries in policy.scopes.values() for s in entries.values())]
            for spec in specs:
                for glob in spec.models or ():
                    if fnmatch.fnmatchcase(model, glob):
                        return glob
        return OTHER

    def _identity_label(self, identity: Identity, level: str) -> str:
        """A value the policy file names exactly (a bounded set the operator wrote); else a JWT-verified value up
        to the cap; else `other` (an identity header alone is client text) or `unknown` (none)."""
        value = getattr(identity, level)
        policy = self._runtime.current.policy if self._runtime is not None else None
        if value and policy is not None and value in policy.scopes.get(f"{level}s", {}):
            return str(value)
        if value and identity.source != "jwt":
            return OTHER
        return self._fold(level, value)

    def _remember(self, decision: Decision) -> None:
        with self._decisions_lock:
            self._decisions[decision.decision_id] = (decision.identity, decision.model)
            while len(self._decisions) > REMEMBERED_DECISIONS:
                self._decisions.popitem(last=False)

    def _recall(self, decision_id: str | None) -> tuple[Identity, str | None]:
        with self._decisions_lock:
            found = self._decisions.pop(decision_id, None) if decision_id else None
        return found if found is not None else (Identity(), None)

    def track(self, runtime: Runtime) -> None:
        """Report the live rule set of `runtime` (gauges), and start every loaded rule's finding count at zero."""
        self._runtime = runtime
        self._zero_findings(runtime)

    def _zero_findings(self, runtime: Runtime) -> None:
        for rule in runtime.current.ruleset.rules:
            self.findings.add(0, {"rule": rule.id, "category": rule.category.value, "mode": rule.mode.value})

    def _rules_loaded(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._runtime is not None:
            yield Observation(len(self._runtime.current.ruleset.rules))

    def _pack_info(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._runtime is not None:
            yield Observation(1, {"digest": self._runtime.current.ruleset.digest})

    def _last_reload(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._runtime is not None:
            yield Observation(self._runtime.last_reload)

    def observe(self, decision: Decision, latency_ms: float) -> None:
        verdict = decision.verdict.value
        provider = _bounded(decision.provider, PROVIDERS, "unknown")
        reason = _bounded(str(decision.reason), _REASONS, Reason.INTERNAL_ERROR.value)
        self.decisions.add(1, {"verdict": verdict, "reason": reason, "provider": provider})
        for f in decision.findings:
            self.findings.add(1, {"rule": f.rule_id, "category": f.category.value, "mode": f.mode.value})
        if decision.allowed and decision.prompt_tokens is not None:
            self.prompt_tokens.add(decision.prompt_tokens, {"provider": provider})
        if decision.allowed:
            self._remember(decision)
            if decision.edits.region is not None:
                self.upstream_regions.add(1, {"provider": provider, "region": self._regions("region", decision.edits.region)})
        elif reason == Reason.BUDGET_EXCEEDED.value:
            self.budget_refusals.add(1, {"scope": budget_scope(decision.headers.get(BUDGET_HEADER, "").split("/")[0])[0]})
        self.check_latency.record(latency_ms, {"verdict": verdict})

    def usage(self, provider: str, usage: Usage | None, status: int, decision_id: str | None = None,
              model: str | None = None, identity: Identity | None = None, asked: str | None = None) -> None:
        """One observed provider response: its tokens, by provider, by the verified identity its Check had
        (`identity`, read from the request's own metadata, as the Check may have run in another worker; else this
        worker's Check of `decision_id`; else `unknown`) and by model when the operator named it (`model` from the
        response, else `asked`, the request's model, else the remembered one)."""
        remembered, remembered_model = self._recall(decision_id)  # always: this worker forgets it either way
        identity = identity if identity is not None else remembered
        asked = asked or remembered_model
        if usage is None:
            self.usage_streams.add(1, {"result": "error" if status >= 400 else "no_response"})
            return
        source = "estimated" if usage.estimated else "reported"
        provider = _bounded(provider, PROVIDERS, "unknown")
        model_label = self._model_label(model or asked)
        self.usage_streams.add(1, {"result": source})
        for kind, tokens in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            self.usage_tokens.add(tokens, {"provider": provider, "kind": kind, "source": source})
            self.model_tokens.add(tokens, {"provider": provider, "model": model_label, "kind": kind, "source": source})
            for level in IDENTITY_LEVELS:
                self.scope_tokens.add(tokens, {"scope": level, "id": self._identity_label(identity, level),
                                               "provider": provider, "kind": kind, "source": source})

    def store_call(self, operation: str, latency_ms: float, ok: bool = True) -> None:
        """One store call: its latency, and an error count when it failed."""
        operation = _bounded(operation, STORE_OPERATIONS)
        self.store_latency.record(latency_ms, {"operation": operation})
        if not ok:
            self.store_errors.add(1, {"operation": operation})

    def reload(self, result: str) -> None:
        self.reloads.add(1, {"result": _bounded(result, RELOAD_RESULTS, "error")})
        if result == "ok":  # the policy may have dropped a glob: its budgets are met again before they are shown
            with self._glob_lock:
                self._glob_budgets.clear()
            self._glob_fold = _Folding(self._glob_fold.cap)
        if result == "ok" and self._runtime is not None:
            self._zero_findings(self._runtime)


def prometheus_telemetry(port: int, host: str = "127.0.0.1", max_identity_values: int = DEFAULT_MAX_IDENTITY_VALUES,
                         models: Sequence[str] = ()) -> Telemetry:
    """Telemetry whose metrics are served at http://host:port/metrics (port 0: not served)."""
    if port == 0:
        return Telemetry(max_identity_values=max_identity_values, models=models)
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as e:
        busy = "the port is in use by another process" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise OSError(e.errno, f"cannot listen on {host}:{port} (--metrics-port): {busy}") from None
    # No otel_scope_* labels on every series; the resource (service.name) is in target_info.
    return Telemetry([PrometheusMetricReader(scope_info_enabled=False)], max_identity_values, models)
