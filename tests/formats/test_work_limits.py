"""Work limits: JSON nodes per request, CPU seconds and the caller's deadline per Check (filter.formats.limits)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from filter.errors import DeadlineExceeded, RequestError, SettingsError, WorkLimitExceeded
from filter.formats import DecodeLimits, parse
from filter.formats.jsonload import count_nodes
from filter.formats.limits import WorkBudget, work_budget
from filter.settings import load_settings
from tests.formats.helpers import envelope, parsed

CHAT = "/v1/chat/completions"


def nodes_of(value: Any) -> int:
    """Strings (keys included), objects and arrays of a parsed value, counted the slow obvious way."""
    if isinstance(value, dict):
        return 1 + sum(1 + nodes_of(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(nodes_of(v) for v in value)
    return 1 if isinstance(value, str) else 0


@pytest.mark.parametrize("doc", [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    {"a": ['say "hi" {not a [node]}', "back\\slash\\", 'mixed \\" and \\\\"', "", 12, None, True]},
    {"code": "if (x) { y[0] = \"}\"; }", "nested": [[[]], {}, [{"k": ["v"]}]]},
    ["\\", "\\\\", '\\"', '"', "[{", "}]"],
    {'\\u00e9\\"': ["é", "\u2028", "😀"]},
])
@pytest.mark.parametrize("enough", [0, 3, 1000])
def test_node_count_before_parsing_matches_the_parsed_document(doc: Any, enough: int) -> None:
    text = json.dumps(doc, ensure_ascii=False).encode()
    exact = nodes_of(doc)
    counted = count_nodes(text, enough)
    # Never an under-count, and over the limit exactly when the document is (brackets inside strings may be
    # counted only while that cannot matter).
    assert counted >= exact
    assert (counted > enough) == (exact > enough)


def test_body_of_tiny_strings_is_refused_as_too_much_work() -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "x": ["a"] * 5000})
    with pytest.raises(WorkLimitExceeded) as e:
        parsed(CHAT, body, limits=DecodeLimits(max_json_nodes=1000))
    assert e.value.http_status == 413 and e.value.reason == "work_limit_exceeded"
    assert "1000" in e.value.message and "a" * 3 not in e.value.message


def test_same_body_under_the_limit_is_scanned_whole() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "x": ["a"] * 500}
    result = parsed(CHAT, body, limits=DecodeLimits(max_json_nodes=1000))
    assert sum(s.location.startswith("x[") for s in result.segments) == 500


def test_json_inside_strings_counts_towards_the_same_limit() -> None:
    # Few nodes at the top level; the tool arguments hold thousands, which the walk parses too.
    inner = json.dumps({"items": ["b"] * 3000})
    body = {"model": "gpt-4o", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": inner}}]}]}
    assert parsed(CHAT, body).segments  # within the default limit
    with pytest.raises(WorkLimitExceeded):
        parsed(CHAT, body, limits=DecodeLimits(max_json_nodes=2000))


def test_cpu_budget_stops_a_check_at_the_next_safe_point() -> None:
    limits = DecodeLimits(max_check_cpu_seconds=1e-9)  # any decoding spends more than a nanosecond
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(WorkLimitExceeded) as e, work_budget(limits):
        parse(envelope(CHAT, body), limits)
    assert "CPU seconds" in e.value.message


def test_passed_deadline_stops_decoding_with_a_503() -> None:
    limits = DecodeLimits()
    with pytest.raises(DeadlineExceeded) as e, work_budget(limits, deadline=time.monotonic() - 1):
        parse(envelope(CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}), limits)
    assert e.value.http_status == 503 and e.value.reason == "deadline_exceeded"


def test_budget_counts_nodes_across_documents_and_reports_memory() -> None:
    charged: list[int] = []
    budget = WorkBudget(DecodeLimits(max_json_nodes=10), on_charge=charged.append)
    budget.charge_nodes(6, "request body")
    with pytest.raises(WorkLimitExceeded):
        budget.charge_nodes(6, "string at messages[0].content")
    assert charged == [6 * 256]  # the refused charge never reaches the admission budget


def test_refusals_are_request_errors_so_the_pipeline_answers_them() -> None:
    assert issubclass(WorkLimitExceeded, RequestError) and issubclass(DeadlineExceeded, RequestError)


def test_work_limits_are_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("limits:\n  max_json_nodes: 1234\n  max_check_cpu_seconds: 0.5\n  max_inflight_bytes: 1048576\n")
    limits = load_settings(str(cfg), env={}).limits
    assert (limits.max_json_nodes, limits.max_check_cpu_seconds, limits.max_inflight_bytes) == (1234, 0.5, 1048576)
    cfg.write_text("limits:\n  max_check_cpu_seconds: 0\n")
    with pytest.raises(SettingsError, match="max_check_cpu_seconds"):
        load_settings(str(cfg), env={})
