"""A scripted fake of the Anthropic Messages API that drives a coding agent (Claude Code) through tool use.

Real Anthropic cannot be reached from here; this stands in for it behind real Envoy and the real filter.
It answers like the real API (JSON, or SSE when the request says `"stream": true`), from a tiny script:

- the newest user turn (system turns the CLI adds are skipped) says `READ <relative path>` and the request offers the Read tool:
  a `tool_use` turn asking to Read that file (absolute path inside the project folder);
- the newest user turn carries a `tool_result`: a final text answer, `DONE: read <n> lines.`;
- anything else (titles, summaries, quota probes the CLI may send): a short text answer.

Every request is recorded, so a test can show what did, or did not, reach the "provider".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e.clients.sdk_provider import SSE, SdkProvider, answer, anthropic_events, anthropic_message
from tests.e2e.fake_provider import RecordedRequest

READ = re.compile(r"\bREAD (\S+)")
FINAL = "DONE: read {lines} lines."
OTHER = "OK."


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _text(block: dict[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        return "".join(_text(b) for b in _blocks(block.get("content")))
    return ""


class ScriptedAnthropic(SdkProvider):
    def __init__(self, project: Path) -> None:
        super().__init__()
        self.project = project
        self._turn = 0

    def reply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The assistant message for one Messages request."""
        self._turn += 1
        users = [m for m in doc.get("messages") or [] if m.get("role") == "user"]  # the CLI may add system turns
        last = _blocks(users[-1]["content"]) if users else []
        results = [b for b in last if b.get("type") == "tool_result"]
        if results:
            lines = sum(len(_text(r).splitlines()) for r in results)
            return anthropic_message(FINAL.format(lines=lines))
        tools = {t.get("name") for t in doc.get("tools") or []}
        wanted = READ.search(" ".join(_text(b) for b in last))
        if wanted and "Read" in tools:
            use = {"type": "tool_use", "id": f"toolu_fake{self._turn:04d}", "name": "Read",
                   "input": {"file_path": str(self.project / wanted.group(1))}}  # fmt: skip
            return {**anthropic_message(), "content": [use], "stop_reason": "tool_use"}
        return anthropic_message(OTHER)

    def answer(self, request: RecordedRequest) -> tuple[str, dict[str, Any] | Iterator[bytes]]:
        route = request.path.split("?", 1)[0]
        if route.endswith("/v1/messages/count_tokens"):
            return "application/json", {"input_tokens": max(1, len(request.body) // 4)}
        if not route.endswith("/v1/messages"):
            return answer(request.path, request.body)
        doc = json.loads(request.body)
        message = self.reply(doc)
        return (SSE, anthropic_events(message)) if doc.get("stream") else ("application/json", message)
