"""Agent-like request bodies for benchmarks: multi-turn chats whose turns carry real source files.

Files come from the Python standard library on this machine; any file the shipped packs flag (author
e-mails, sample keys) is left out so the bodies are clean: the benchmark then measures the allow path.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

from filter.model import TextSegment
from filter.rules import Ruleset

INSTRUCTIONS = [
    "Refactor this module for readability and keep the behaviour.",
    "Why does the test below fail intermittently?",
    "Add type hints to the following code.",
    "Explain what this function does, step by step.",
]


def clean_sources(ruleset: Ruleset, limit_bytes: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    total = 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text("utf-8", "replace")
        if not 2_000 <= len(text) <= 60_000 or ruleset.scan([TextSegment("f", text)]):
            continue
        out.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return out


def chat_body(ruleset: Ruleset, size: int) -> bytes:
    """An OpenAI chat-completions body of about `size` bytes: system prompt, then user/assistant turns."""
    sources = clean_sources(ruleset, size * 2)
    messages = [{"role": "system", "content": "You are a careful coding agent working in a repository."}]
    i = 0
    while len(json.dumps(messages)) < size:
        src = sources[i % len(sources)]
        room = size - len(json.dumps(messages))
        messages.append({"role": "user", "content": f"{INSTRUCTIONS[i % 4]}\n\n```python\n{src[:max(room, 200)]}\n```"})
        messages.append({"role": "assistant", "content": "Here is what I found: the code reads its input once."})
        i += 1
    return json.dumps({"model": "gpt-4o", "stream": True, "messages": messages}).encode()
