"""One JSON audit record per decision. Names rules, locations and fingerprints — never matched text.

The decision's client strings (model, identity, finding locations) are masked when it is made; the path and
the prompt are masked here by the request's Redactor, so no field spells a found value.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

from filter.model import Decision, ParsedRequest
from filter.redact import Redactor


def audit_record(decision: Decision, parsed: ParsedRequest | None, latency_ms: float, log_prompts: str,
                 path: str = "", method: str = "", redactor: Redactor | None = None) -> dict[str, Any]:
    redactor = redactor or Redactor()
    ident = decision.identity
    now = time.time()
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        "decision_id": decision.decision_id,
        "verdict": decision.verdict.value,
        "status": decision.http_status,
        "reason": decision.reason,
        "identity": {"workspace": ident.workspace, "team": ident.team, "project": ident.project,
                     "agent": ident.agent, "source": ident.source},
        "provider": decision.provider,
        "api": decision.api,
        "model": decision.model,
        "method": method,
        "path": redactor.path(path),
        "body_bytes": decision.body_bytes,
        "prompt_tokens": decision.prompt_tokens,
        "findings": [f.to_dict() for f in decision.findings],
        "pack_digest": decision.pack_digest,
        "latency_ms": round(latency_ms, 3),
    }
    if decision.edits.region is not None:  # the in-region upstream the request went to (filter/residency.py)
        record["region"] = decision.edits.region
    if decision.edits.key_injected:  # the gateway sent the team's provider key (never the key itself)
        record["credential"] = "gateway"
    if log_prompts == "none":  # no trace of where in the prompt anything was: rule ids only
        record["findings"] = [{"rule": f.rule_id, "category": f.category.value} for f in decision.findings]
    if log_prompts == "full" and parsed is not None:
        record["prompt"] = redactor.prompt(parsed.prompt_segments())
    return record


class AuditLog:
    """Writes one JSON line per decision to stdout ("-") or a file. Every decision is recorded."""

    def __init__(self, path: str = "-", log_prompts: str = "metadata_only", stream: IO[str] | None = None) -> None:
        self.log_prompts = log_prompts
        self._lock = threading.Lock()
        if stream is not None:
            self._stream = stream
        elif path == "-":
            self._stream = sys.stdout
        else:
            self._stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the server

    def record(self, decision: Decision, parsed: ParsedRequest | None, latency_ms: float,
               path: str = "", method: str = "", redactor: Redactor | None = None) -> None:
        line = json.dumps(audit_record(decision, parsed, latency_ms, self.log_prompts, path, method, redactor),
                          separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
