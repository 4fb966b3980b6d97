"""The shipped Grafana dashboard and alert rules against a real Prometheus scraping a real filter.

A filter with a SQLite store and a policy file with token budgets answers a few Checks over gRPC (allowed, denied
for a secret, refused over a budget); a real `prometheus` scrapes its /metrics every second. Then every PromQL
expression of k8s/grafana/llm-gateway.json and k8s/prometheus/alerts.yaml is evaluated through Prometheus's HTTP
API: each must be valid against the metrics as the filter names them, and the panels that have something to show
(blocks by reason, check latency, budget burn-down) must show it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc

from tests.support.envelopes import make_check_request
from tests.support.ports import free_port
from tests.support.processes import ROOT, start_filter, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "k8s" / "grafana" / "llm-gateway.json"
ALERTS = ROOT / "k8s" / "prometheus" / "alerts.yaml"
POLICY = """\
default:
  budgets: {daily_tokens: 1000000}
  prices: {"gpt-4o*": {input_per_mtok: 2.5, output_per_mtok: 10}}
teams:
  payments: {budgets: {daily_tokens: 500000, monthly_usd: 50}}
  tiny: {budgets: {daily_tokens: 1}}
"""
CLEAN = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Rename this variable, please."}]}
SECRET = {"model": "gpt-4o", "messages": [{"role": "user", "content": "key AKIAIOSFODNN7EXAMPLF here"}]}


def expressions(node: Any) -> Iterator[str]:
    """Every `expr` string in a dashboard or rule file, wherever it is nested."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            result: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as e:  # a bad expression: Prometheus answers 400 with the parse error
        result = json.load(e)
    return result


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A filter that answered a few Checks, scraped by a real Prometheus; yields Prometheus's base URL."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `make install` (it installs Debian's prometheus package)")
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "policy.yaml").write_text(POLICY)
    (tmp / "filter.yaml").write_text(f'policy_file: policy.yaml\nstore: {{url: "sqlite:///{tmp / "store.db"}"}}\n')
    port, metrics, web = free_port(), free_port(), free_port()
    filt = start_filter(port, "--config", str(tmp / "filter.yaml"), "--metrics-port", str(metrics))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            answers = [stub.Check(make_check_request(body, headers={"x-team-id": team}), timeout=10).status.code
                       for body, team in ((CLEAN, "payments"), (CLEAN, "payments"), (SECRET, "payments"),
                                          (CLEAN, "tiny"))]
        assert answers[:2] == [0, 0] and answers[2] != 0 and answers[3] != 0  # allowed, allowed, secret, budget
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "llm-filter", "static_configs": [{"targets": [f"127.0.0.1:{metrics}"]}]}],
        }))
        with (tmp / "prometheus.log").open("wb") as log:
            prom = subprocess.Popen(
                ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{web}"], stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{web}"
        try:
            # Three scrapes: rate() over the dashboard's windows needs two samples of each series.
            wait_until("Prometheus scraped the filter three times", lambda: _scrapes(base) >= 3, timeout=30,
                       interval=0.5)
            yield base
        finally:
            stop(prom)
    finally:
        stop(filt)


def _scrapes(base: str) -> int:
    """Successful scrapes of the filter so far (0 while Prometheus is still starting)."""
    try:
        result = query(base, 'sum_over_time(up{job="llm-filter"}[1m])')["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0
    except (OSError, KeyError, IndexError, ValueError):
        return 0


def test_every_dashboard_and_alert_expression_is_valid_promql(prometheus: str) -> None:
    found = list(expressions(json.loads(DASHBOARD.read_text()))) + list(expressions(yaml.safe_load(ALERTS.read_text())))
    assert len(found) >= 20  # the dashboard's panels and the alert rules, not an empty file
    for expr in found:
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"


@pytest.mark.parametrize("expr", [
    'sum by (reason) (rate(llm_filter_decisions_total{verdict="deny"}[5m]))',
    'histogram_quantile(0.99, sum by (le) (rate(llm_filter_check_duration_milliseconds_bucket[5m])))',
    'max by (scope, id, window) (llm_filter_budget_tokens{state="used"}) '
    '/ max by (scope, id, window) (llm_filter_budget_tokens{state="limit"} > 0)',
    'max by (scope, id, window) (llm_filter_budget_usd{state="used"}) '
    '/ max by (scope, id, window) (llm_filter_budget_usd{state="limit"} > 0)',
])
def test_the_panels_with_something_to_show_show_it(prometheus: str, expr: str) -> None:
    dashboard = set(expressions(json.loads(DASHBOARD.read_text())))
    assert expr in dashboard
    assert query(prometheus, expr)["data"]["result"], f"no series for {expr}"


def test_budget_gauges_and_refusals_as_the_store_and_the_checks_have_them(prometheus: str) -> None:
    def value(expr: str) -> dict[str, float]:
        """{"scope/id/window" (the labels the series has): value}"""
        return {"/".join(r["metric"][k] for k in ("scope", "id", "window") if k in r["metric"]): float(r["value"][1])
                for r in query(prometheus, expr)["data"]["result"]}

    limits = value('llm_filter_budget_tokens{state="limit"}')
    assert limits == {"default/all/day": 1_000_000, "team/payments/day": 500_000, "team/tiny/day": 1}
    reserved = value('llm_filter_budget_tokens{state="reserved"}')
    assert reserved["team/payments/day"] > 0  # two allowed requests hold reservations (no usage observer here)
    assert reserved["team/tiny/day"] == 0  # the refused one reserved nothing
    assert value('llm_filter_budget_usd{state="limit"}') == {"team/payments/month": 50}
    refusals = value("llm_filter_budget_refusals_total")
    assert refusals["team"] == 1 and refusals["default"] == 0 and refusals["agent"] == 0


def test_the_alert_rules_pass_promtool() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian's prometheus package ships it)")
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
