"""Nothing found is written down: every shipped match example, sent down every road a client has (message text,
model field, JSON object key, URL path, query parameter, custom and identity headers, percent-encoded), never
appears in the CheckResponse (headers, body, dynamic metadata), the audit line (also under LOG_PROMPTS=full)
or the Prometheus metrics. Over real gRPC against the real servicer and shipped packs."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from filter.audit import AuditLog
from filter.model import TextSegment
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from filter.runtime import Runtime
from filter.server.authz import AuthorizationServicer
from filter.settings import load_settings
from filter.telemetry import Telemetry
from filter.tokens import TokenCounter, load_encoding
from tests.server.conftest import make_check_request

RULESET = load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k"))
EXAMPLES = [(rule.id, i, text) for rule in RULESET.rules for i, text in enumerate(rule.examples.match)]
CLEAN = [{"role": "user", "content": "Refactor the parser to use a dataclass."}]
# A second finding next to the one under test: a JSON key that is itself a secret must not be spelled in the
# location of its neighbour.
NEIGHBOUR = next(r.examples.match[0] for r in RULESET.rules if r.id == "github-pat")


def every_byte_encoded(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


@dataclass(frozen=True)
class Road:
    name: str
    request: Callable[[str], external_auth_pb2.CheckRequest]
    full_prompts: bool = False


ROADS = [
    Road("message", lambda v: make_check_request(chat(v))),
    Road("model", lambda v: make_check_request({"model": v, "messages": CLEAN})),
    Road("json-key", lambda v: make_check_request(chat("see metadata", metadata={v: NEIGHBOUR, "note": NEIGHBOUR}))),
    Road("path", lambda v: make_check_request(chat("hi"), path=f"/v1/{quote(v, safe='')}/chat/completions")),
    Road("path-encoded", lambda v: make_check_request(chat("hi"), path=f"/v1/{every_byte_encoded(v)}/chat/completions")),
    Road("query", lambda v: make_check_request(chat("hi"), path=f"/v1/chat/completions?note={quote(v, safe='')}")),
    Road("custom-header", lambda v: make_check_request(chat("hi"), headers={"x-request-note": v})),
    Road("identity-header", lambda v: make_check_request(chat("hi"), headers={"x-workspace-id": v, "x-team-id": v})),
    Road("message-encoded", lambda v: make_check_request(chat(f"curl https://h/?t={every_byte_encoded(v)}"))),
    Road("message-full-prompts", lambda v: make_check_request(chat(v)), full_prompts=True),
    Road("encoded-full-prompts", lambda v: make_check_request(chat(f"url: {every_byte_encoded(v)}")), full_prompts=True),
]


def matched_values(example: str) -> set[str]:
    """What the rules match in the example on its own: the values that must never be written out."""
    found = RULESET.scan([TextSegment("example", example)])
    # the token itself, not short common words: every matched span of a shipped example is at least 6 characters
    return {example[f.start:f.end] for f in found if f.end - f.start >= 6}


@dataclass
class Filter:
    stub: external_auth_pb2_grpc.AuthorizationStub
    audit: io.StringIO


@pytest.fixture(scope="module")
def filters() -> Iterator[dict[bool, Filter]]:
    """Two real servicers over gRPC: LOG_PROMPTS=metadata_only and LOG_PROMPTS=full, metrics to Prometheus."""
    telemetry = Telemetry([PrometheusMetricReader()])
    servers, out = [], {}
    for full in (False, True):
        settings = load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"})
        stream = io.StringIO()
        servicer = AuthorizationServicer(Runtime(None, replace(settings, log_prompts="full" if full else "metadata_only")),
                                         TokenCounter(load_encoding()),
                                         AuditLog(stream=stream, log_prompts="full" if full else "metadata_only"),
                                         telemetry)
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        out[full] = Filter(external_auth_pb2_grpc.AuthorizationStub(channel), stream)
    yield out
    for server in servers:
        server.stop(None)


@pytest.mark.parametrize("road", ROADS, ids=[r.name for r in ROADS])
def test_no_found_value_is_written_down(filters: dict[bool, Filter], road: Road) -> None:
    target = filters[road.full_prompts]
    leaks: list[str] = []
    found: list[tuple[str, int, set[str]]] = []
    metrics_before = set(generate_latest(REGISTRY).decode().splitlines())

    def check(rule_id: str, i: int, values: set[str], where: str, text: str) -> None:
        for value in values:
            for form in {value, every_byte_encoded(value), quote(value, safe="")}:
                if form in text:
                    at = text.index(form)
                    leaks.append(f"{rule_id} example {i}: in the {where}: {text[max(at - 60, 0):at + len(form)]!r}")

    for rule_id, i, example in EXAMPLES:
        target.audit.seek(0)
        target.audit.truncate()
        resp = target.stub.Check(road.request(example))
        audit = json.loads(target.audit.getvalue())  # one audit line, whatever the outcome
        if not audit["findings"]:
            continue  # nothing found (a rule that needs context, e.g. `cat .env` at a command's start, in a URL path)
        values = matched_values(example)
        found.append((rule_id, i, values))
        check(rule_id, i, values, "response", resp.SerializeToString().decode("utf-8", "replace"))
        check(rule_id, i, values, "audit", target.audit.getvalue())
    # Metric series this road added or moved (the counters are shared by all roads of the module).
    metrics = "\n".join(set(generate_latest(REGISTRY).decode().splitlines()) - metrics_before)
    for rule_id, i, values in found:
        check(rule_id, i, values, "metrics", metrics)
    assert len(found) > len(EXAMPLES) // 2, "most examples are found on every road, else it proves little"
    assert not leaks, "\n".join(sorted(set(leaks))[:40])


TEAM_KEY = "sk-team-injected-7d1f0c9a4be24e13a9"


def test_an_injected_team_key_is_written_nowhere_but_its_header(tmp_path: Path) -> None:
    """The team's provider key (policy `credentials`) is set on the allowed request's provider header and appears in
    no other part of any CheckResponse (dynamic metadata, deny bodies and headers), no audit line (also under
    LOG_PROMPTS=full) and no metric, whatever the outcome: allow, content deny, region deny, malformed body."""
    key_file = tmp_path / "openai-team-a"
    key_file.write_text(TEAM_KEY + "\n")
    (tmp_path / "policy.yaml").write_text(
        "upstreams: {openai: {eu: openai-eu}}\n"
        f"default: {{credentials: {{openai: {key_file}, anthropic: {key_file}}}}}\n"
        "teams: {eu-team: {regions: [eu]}}\n")
    (tmp_path / "filter.yaml").write_text("policy_file: policy.yaml\naudit: {log_prompts: full}\n")
    config = str(tmp_path / "filter.yaml")
    registry = CollectorRegistry()
    stream = io.StringIO()
    servicer = AuthorizationServicer(
        Runtime(config, load_settings(config, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}), warn_random_key=False),
        TokenCounter(load_encoding()), AuditLog(stream=stream, log_prompts="full"),
        Telemetry([PrometheusMetricReader(scope_info_enabled=False, registry=registry)]))
    messages = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    requests = [
        make_check_request(chat("hi"), path="/openai/v1/chat/completions?key=client"),  # allowed: key injected
        make_check_request(chat(NEIGHBOUR), path="/openai/v1/chat/completions"),  # content deny
        make_check_request(messages, path="/anthropic/v1/messages", headers={"x-team-id": "eu-team"}),  # region deny
        make_check_request(b"{not json", path="/openai/v1/chat/completions"),  # malformed
    ]
    responses = [servicer.Check(r, _Context()) for r in requests]
    allowed = responses[0].ok_response
    assert [h.header.value for h in allowed.headers if h.header.key == "authorization"] == [f"Bearer {TEAM_KEY}"]
    rest = [h for h in allowed.headers if h.header.key != "authorization"]
    assert [r.denied_response.status.code for r in responses[1:]] == [400, 403, 400]
    written = {
        "the rest of the allow": "".join(str(h) for h in rest) + str(responses[0].dynamic_metadata),
        "the denies": "".join(r.SerializeToString().decode("utf-8", "replace") for r in responses[1:]),
        "the audit": stream.getvalue(),
        "the metrics": generate_latest(registry).decode(),
    }
    assert len(stream.getvalue().splitlines()) == 4
    for where, text in written.items():
        assert TEAM_KEY not in text and TEAM_KEY[3:20] not in text, where


class _Context:
    """What the servicer asks of a gRPC context, for a call without a server."""

    def time_remaining(self) -> float:
        return 10.0
