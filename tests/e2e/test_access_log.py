"""Nothing found is written down in Envoy's access log (real Envoy, the real filter, the fake provider).

The access log writes only what the filter vetted (its dynamic metadata: decision id, reason, the
path with findings masked, verified identity) and fields without client text. A secret in a path,
a query string, the user-agent or any other header never reaches the log, whatever route the
request took (checked, policy 403, unknown 404).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .envoy_harness import start_envoy
from .fake_provider import FakeProvider
from .filter_harness import FilterProcess

pytestmark = pytest.mark.e2e

# An AWS access key id (a credential format the packs detect), assembled so this file holds no literal.
SECRET = "AKIA" + "Q3WZ7RTY2HJK5MNP"
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Write a haiku about linters."}]}]}
ANTHROPIC = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi there."}]}
LOG_FIELDS = {
    "time", "decision_id", "reason", "path", "workspace_id", "team_id", "project_id", "agent_id",
    "filter_decision", "prompt_tokens", "reply_decision", "status", "response_flags", "response_code_details",
    "protocol", "route", "provider", "provider_source", "upstream_cluster", "upstream_host", "bytes_received",
    "bytes_sent", "duration_ms", "request_duration_ms", "response_duration_ms", "downstream_remote",
}  # fmt: skip


@pytest.fixture(scope="module")
def logged(
    tmp_path_factory: pytest.TempPathFactory, fake_provider_server: FakeProvider
) -> Iterator[tuple[list[dict[str, object]], str, FilterProcess]]:
    """Send every kind of request with the secret somewhere outside the body; return the access log."""
    workdir = tmp_path_factory.mktemp("access-log")
    with FilterProcess(workdir) as flt:
        envoy = start_envoy(workdir, "--upstream", fake_provider_server.url, "--filter", flt.address)
        try:
            ua = {"user-agent": f"agent/1.0 (key {SECRET})"}
            sent = [
                # clean request: allowed, its log line is the reference
                ("POST", "/gemini/v1beta/models/gemini-2.0-flash:generateContent", GEMINI, {}),
                # secret in the query string (Gemini accepts ?key=) and in the user-agent
                ("POST", f"/v1beta/models/gemini-2.0-flash:generateContent?key={SECRET}", GEMINI, ua),
                # secret in the path itself (a model name)
                ("POST", f"/gemini/v1beta/models/{SECRET}:generateContent", GEMINI, {}),
                # secret in an ordinary header
                ("POST", "/anthropic/v1/messages", ANTHROPIC, {"x-note": SECRET}),
                # never checked: policy 403 and unknown 404 with the secret in the path
                ("POST", f"/v1/files/{SECRET}", {}, ua),
                ("POST", f"/v1/{SECRET}", {}, ua),
                ("GET", f"/?q={SECRET}", {}, ua),
            ]
            statuses = []
            for method, path, body, headers in sent:
                data = json.dumps(body).encode() if body else b""
                statuses.append(envoy.request(method, path, data, headers)[0])
        finally:
            envoy.stop()  # flushes stdout
        assert statuses[0] == 200 and statuses[4:] == [403, 404, 200], statuses
        yield envoy.access_log(), envoy.stdout_path.read_text(), flt


def test_no_secret_anywhere_in_the_access_log(logged: tuple[list[dict[str, object]], str, FilterProcess]) -> None:
    lines, raw, _ = logged
    assert len(lines) == 7
    assert SECRET not in raw
    assert "agent/1.0" not in raw  # no user-agent at all
    assert "x-note" not in raw


def test_log_lines_carry_only_vetted_fields(logged: tuple[list[dict[str, object]], str, FilterProcess]) -> None:
    lines, _, _ = logged
    for line in lines:
        assert set(line) == LOG_FIELDS


def test_checked_requests_are_logged_with_the_filters_decision_and_masked_path(
    logged: tuple[list[dict[str, object]], str, FilterProcess],
) -> None:
    lines, _, flt = logged
    audit_ids = [a["decision_id"] for a in flt.audit()]
    clean, query, in_path, header = lines[:4]
    assert clean["path"] == "/gemini/v1beta/models/gemini-2.0-flash:generateContent"
    assert (clean["status"], clean["route"], clean["provider"], clean["reason"]) == (200, "gemini-prefix", "gemini",
                                                                                     "allowed")  # fmt: skip
    assert query["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"  # no query string
    assert 400 <= int(str(in_path["status"])) < 500  # denied by the filter
    assert "[REDACTED]" in str(in_path["path"])
    assert 400 <= int(str(header["status"])) < 500
    for line in (clean, query, in_path, header):
        assert line["decision_id"] in audit_ids


def test_local_answers_log_no_path(logged: tuple[list[dict[str, object]], str, FilterProcess]) -> None:
    lines, _, _ = logged
    denied, unknown, root = lines[4:]
    assert (denied["status"], denied["response_code_details"], denied["route"]) == (
        403, "direct_response", "deny-openai-style-surfaces")  # fmt: skip
    assert (unknown["status"], unknown["route"]) == (404, "not-found")
    assert root["route"] == "gateway-info"
    for line in (denied, unknown, root):
        assert line["path"] is None and line["decision_id"] is None
