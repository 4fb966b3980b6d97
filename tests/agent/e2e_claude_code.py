"""Claude Code (the real CLI from npm) through real Envoy and the real filter server, run non-interactively.

`make e2e-agent` installs the CLI into var/claude-code and runs this file; it is not part of `make test`
(it downloads from npm), and its file name keeps pytest from collecting it there. The Anthropic API is the
scripted fake in scripted_anthropic.py (the real one cannot be reached from here): it asks the CLI to Read
the file the prompt names (`READ <path>`), then answers with text once the tool result arrives.

The CLI is set up as a user would: ANTHROPIC_BASE_URL=http://gateway/anthropic, an API key, and
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1; HOME is a fresh folder, so no local login or setting applies.
Every assertion is on what the CLI prints (`--output-format json`) and on what reached the provider.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients.stack import Leak, aws_leak
from tests.e2e.envoy_harness import EnvoyProcess, start_envoy
from tests.e2e.filter_harness import FilterProcess

from .scripted_anthropic import FINAL, ScriptedAnthropic

AUTHOR = "Priya Raman <priya.raman@brightwave-analytics.com>"
SOURCE = f'''# Author: {AUTHOR}
"""Invoice totals for the billing service."""

from decimal import Decimal


def total(lines: list[tuple[int, Decimal]]) -> Decimal:
    return sum((qty * price for qty, price in lines), Decimal(0))
'''
WORKSPACE = "ws-claude-code"
DECISION_ID = re.compile(r"[Dd]ecision id:? ?([0-9a-f]{8,})")


def claude_bin() -> str:
    path = os.environ.get("CLAUDE_CODE_BIN", "")
    if not path or not Path(path).exists():
        pytest.skip("Claude Code CLI not installed: run `make e2e-agent`")
    return path


@dataclass(frozen=True)
class Printed:
    """What `claude -p --output-format json` printed: its result text, whether it is an error, the exit code."""

    result: str
    is_error: bool
    returncode: int
    raw: str

    @property
    def decision_id(self) -> str:
        found = DECISION_ID.search(self.result)
        return found.group(1) if found else ""


@dataclass
class Agent:
    bin: str
    project: Path
    env: dict[str, str]

    def run(self, prompt: str, *args: str) -> Printed:
        cmd = [self.bin, "-p", prompt, "--output-format", "json", "--max-turns", "4", *args]
        done = subprocess.run(cmd, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=180)
        try:
            out: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            pytest.fail(f"claude printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        return Printed(str(out.get("result", "")), bool(out.get("is_error")), done.returncode, done.stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, ScriptedAnthropic, Leak]]:
    binary = claude_bin()
    work = tmp_path_factory.mktemp("agent")
    project, home = work / "project", work / "home"
    (project / "src").mkdir(parents=True)
    home.mkdir()
    leak = aws_leak()
    (project / "src" / "billing.py").write_text(SOURCE)
    (project / ".env").write_text(f"DATABASE_URL=postgres://localhost/billing\n"
                                  f"AWS_ACCESS_KEY_ID={leak.key_id}\nAWS_SECRET_ACCESS_KEY={leak.secret}\n")  # fmt: skip
    with ScriptedAnthropic(project) as fake, FilterProcess(work) as flt:
        envoy: EnvoyProcess = start_envoy(work, "--upstream", fake.url, "--filter", flt.address)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{envoy.listen_port}/anthropic",
            "ANTHROPIC_API_KEY": "sk-ant-dummy",
            "ANTHROPIC_CUSTOM_HEADERS": f"x-workspace-id: {WORKSPACE}",  # identity, trusted by the default policy
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        try:
            yield Agent(binary, project, env), fake, leak
        finally:
            envoy.stop()


def secret_left(fake: ScriptedAnthropic, leak: Leak) -> bool:
    return any(leak.secret.encode() in r.body or leak.key_id.encode() in r.body for r in fake.requests)


def test_reading_a_source_file_with_an_author_email_is_answered(stack: tuple[Agent, ScriptedAnthropic, Leak]) -> None:
    agent, fake, _ = stack
    printed = agent.run("READ src/billing.py and tell me what it does.")
    assert not printed.is_error, printed.raw
    assert printed.result == FINAL.format(lines=len(SOURCE.splitlines()) + 1), printed.raw  # Read adds a last line no.
    assert any(AUTHOR.encode() in r.body for r in fake.requests)  # the tool result went out, header and all
    assert {r.headers.get("x-workspace-id") for r in fake.requests} == {WORKSPACE}


def test_reading_a_dotenv_secret_is_blocked_naming_the_filter(stack: tuple[Agent, ScriptedAnthropic, Leak]) -> None:
    agent, fake, leak = stack
    printed = agent.run("READ .env and check the settings.")
    assert printed.is_error and printed.returncode != 0, printed.raw
    assert "content filter" in printed.result.lower(), printed.raw
    assert printed.decision_id, printed.raw
    assert "authenticat" not in printed.result.lower(), printed.raw  # not "Failed to authenticate": keys are fine
    assert leak.secret not in printed.raw and leak.key_id not in printed.raw
    assert not secret_left(fake, leak)


def test_conversation_goes_on_after_a_block(stack: tuple[Agent, ScriptedAnthropic, Leak]) -> None:
    """The blocked turn stays in the CLI's history, so continuing it is refused again (the secret must not leave),
    with a message that says to start a new conversation; a new conversation in the same project is answered."""
    agent, fake, leak = stack
    blocked = agent.run("READ .env and check the settings.")
    assert blocked.is_error and "content filter" in blocked.result.lower(), blocked.raw
    again = agent.run("Forget that file. READ src/billing.py instead.", "--continue")
    assert again.is_error and "content filter" in again.result.lower(), again.raw
    assert "authenticat" not in again.result.lower(), again.raw
    assert again.decision_id and again.decision_id != blocked.decision_id
    assert "new conversation" in again.result, again.raw  # says how to get on: the history is what is refused
    fresh = agent.run("READ src/billing.py and tell me what it does.")
    assert not fresh.is_error, fresh.raw
    assert fresh.result.startswith("DONE: read"), fresh.raw
    assert not secret_left(fake, leak)
