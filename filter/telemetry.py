"""Metrics through the OpenTelemetry SDK, exported for Prometheus. Every instrument is named here."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from filter.model import Decision


class Telemetry:
    def __init__(self, readers: Sequence[MetricReader] = ()) -> None:
        self.provider = MeterProvider(metric_readers=list(readers))
        meter = self.provider.get_meter("llm_content_filter")
        self.decisions = meter.create_counter("llm_filter_decisions", description="Decisions by verdict, reason, provider")
        self.findings = meter.create_counter("llm_filter_findings", description="Findings by rule and category")
        self.prompt_tokens = meter.create_counter("llm_filter_prompt_tokens", description="Prompt tokens admitted")
        self.check_latency = meter.create_histogram("llm_filter_check_duration", unit="ms",
                                                    description="Check latency inside the filter")
        self.reloads = meter.create_counter("llm_filter_pack_reloads", description="Rule pack reloads by result")
        self.rate_limited = meter.create_counter("llm_filter_rate_limited", description="Rate limit answers")

    def observe(self, decision: Decision, latency_ms: float) -> None:
        ident = decision.identity
        self.decisions.add(1, {"verdict": decision.verdict.value, "reason": decision.reason,
                               "provider": decision.provider, "pack_digest": decision.pack_digest})
        for f in decision.findings:
            self.findings.add(1, {"rule": f.rule_id, "category": f.category.value, "mode": f.mode.value})
        if decision.allowed and decision.prompt_tokens is not None:
            self.prompt_tokens.add(decision.prompt_tokens, {
                "workspace": ident.workspace or "", "team": ident.team or "",
                "provider": decision.provider, "model": decision.model or ""})
        self.check_latency.record(latency_ms, {"verdict": decision.verdict.value})

    def reload(self, result: str) -> None:
        self.reloads.add(1, {"result": result})


def prometheus_telemetry(port: int, host: str = "127.0.0.1") -> Telemetry:
    """Telemetry whose metrics are served at http://host:port/metrics (port 0: not served)."""
    if port == 0:
        return Telemetry()
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)
    return Telemetry([PrometheusMetricReader()])
