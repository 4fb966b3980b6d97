"""The usage observer's callback: reservations settled in a real store, metrics counted, store failures contained;
and the settings that switch the store and the observer on."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from filter.errors import SettingsError
from filter.model import Identity
from filter.scopes import Price
from filter.server.extproc import UsageInfo
from filter.server.usage_sink import InstrumentedStore, UsageSink
from filter.settings import load_settings
from filter.store import Budget, Store, Window, open_store
from filter.telemetry import Telemetry
from filter.usage import Usage

DAY = Budget("team:t1", Window.DAY, 1_000_000)


def telemetry() -> tuple[Telemetry, CollectorRegistry]:
    registry = CollectorRegistry()
    return Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=registry)]), registry


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def value(text: str, series: str) -> float:
    match = re.search(re.escape(series) + r" ([0-9.e+]+)", text)
    assert match, series
    return float(match.group(1))


def used_reserved(store: Store) -> tuple[int, int]:
    (u,) = store.usage([DAY])
    return u.used, u.reserved


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'store.db'}")


def test_usage_reconciles_and_errors_release(store: Store) -> None:
    tel, registry = telemetry()
    sink = UsageSink(InstrumentedStore(store, tel), tel)
    for decision_id in ("d-ok", "d-estimated", "d-429", "d-gone"):
        assert store.reserve(decision_id, 10_000, [DAY]).granted
    sink.on_usage("d-ok", "anthropic", "claude-x", Usage(1200, 300, cache_read_tokens=1000), 200)
    sink.on_usage("d-estimated", "openai", None, Usage(50, 20, estimated=True), 200)
    sink.on_usage("d-429", "anthropic", None, None, 429)
    sink.on_usage("d-gone", "anthropic", None, None, 0)  # no response at all
    sink.on_usage(None, "anthropic", None, Usage(1, 1), 200)  # not one of the filter's decisions: nothing to settle
    sink.stop()  # settles what is queued first
    assert used_reserved(store) == (1200 + 300 + 50 + 20, 0)
    text = scrape(registry)
    assert value(text, 'llm_filter_usage_tokens_total{kind="input",provider="anthropic",source="reported"}') == 1201
    assert value(text, 'llm_filter_usage_tokens_total{kind="output",provider="openai",source="estimated"}') == 20
    assert value(text, 'llm_filter_usage_streams_total{result="error"}') == 1
    assert value(text, 'llm_filter_usage_streams_total{result="no_response"}') == 1
    assert value(text, 'llm_filter_store_errors_total{operation="reconcile"}') == 0
    assert 'llm_filter_store_duration_milliseconds_count{operation="release"} 2.0' in text


def test_usd_is_settled_at_the_price_the_requests_metadata_carries(store: Store) -> None:
    """The Check ran in another worker (nothing remembered here): the price comes with the request."""
    usd_day = Budget("team:t1:usd", Window.DAY, 10_000_000)
    for decision_id in ("d-a", "d-b"):
        assert store.reserve(decision_id, 10_000, [DAY]).granted
        assert store.reserve(f"{decision_id}:usd", 1_000_000, [usd_day]).granted
    tel, _ = telemetry()
    sink = UsageSink(store, tel)
    info = UsageInfo(Identity(team="t1", source="jwt"), "claude-x", Price(3.0, 15.0))
    sink.on_usage("d-a", "anthropic", None, Usage(1000, 200), 200, info=info)
    sink.on_usage("d-b", "anthropic", None, None, 500, info=info)  # an error: both given back
    sink.stop()
    (usd,) = store.usage([usd_day])
    assert (usd.used, usd.reserved) == (1000 * 3 + 200 * 15, 0)
    assert used_reserved(store) == (1200, 0)


def test_a_store_that_cannot_answer_is_counted_never_raised() -> None:
    with socket.socket() as s:  # nothing listens on this port: every Redis call fails
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tel, registry = telemetry()
    sink = UsageSink(InstrumentedStore(open_store(f"redis://127.0.0.1:{port}/0", timeout=0.2), tel), tel)
    sink.on_usage("d-1", "anthropic", None, Usage(10, 5), 200)
    sink.on_usage("d-2", "anthropic", None, None, 500)
    sink.on_usage("d-3", "anthropic", None, Usage(10, 5), 200)  # the thread goes on after a failure
    sink.stop()
    text = scrape(registry)
    assert value(text, 'llm_filter_store_errors_total{operation="reconcile"}') == 2
    assert value(text, 'llm_filter_store_errors_total{operation="release"}') == 1


def test_without_a_store_usage_is_only_counted() -> None:
    tel, registry = telemetry()
    sink = UsageSink(None, tel)
    sink.on_usage("d-1", "gemini", None, Usage(7, 3), 200)
    sink.stop()
    assert value(scrape(registry), 'llm_filter_usage_tokens_total{kind="input",provider="gemini",source="reported"}') == 7


def test_store_and_usage_listen_settings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('usage_listen: 127.0.0.1:9101\nstore: {url: "redis://:pw@cache:6379/0", timezone: Europe/Berlin,'
                      " timeout_seconds: 0.2}\n")
    settings = load_settings(str(config), env={})
    assert settings.usage_listen == "127.0.0.1:9101"
    assert settings.store is not None and settings.store.timezone == "Europe/Berlin"
    assert "pw" not in repr(settings), "a Redis password is never printed"
    assert load_settings(str(config), env={"LLM_FILTER_USAGE_LISTEN": "127.0.0.1:9300"}).usage_listen == \
        "127.0.0.1:9300"
    config.write_text('store: {url: "sqlite:///x", fail_open: true}\n')
    with pytest.raises(SettingsError, match="store.fail_open is no longer read.*on_store_error"):
        load_settings(str(config), env={})
    plain = load_settings(None, env={})
    assert plain.store is None and plain.usage_listen is None  # absent: today's behaviour
    for bad in ('store: {url: "mysql://x"}', "store: {timeout_seconds: 1}", 'store: {url: "sqlite:///x", timezone: Mars/Base}',
                "usage_listen: 9101"):
        config.write_text(bad + "\n")
        with pytest.raises(SettingsError):
            load_settings(str(config), env={})
