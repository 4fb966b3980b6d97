"""Reload: a good change goes live atomically; a bad change keeps the last good set and says why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from filter.model import TextSegment
from filter.runtime import Runtime
from filter.settings import load_settings

GOOD = """
pack: live
version: 1
rules:
  - id: alpha-token
    category: secret
    description: alpha
    pattern: 'alpha_[a-z0-9]{{12}}'
    examples: {{match: ['alpha_k3j9x2m7q1w8'], no_match: ['alpha_']}}
{extra}
"""
BETA = """
  - id: beta-token
    category: secret
    description: beta
    pattern: 'beta_[a-z0-9]{12}'
    examples: {match: ['beta_k3j9x2m7q1w8'], no_match: ['beta_']}
"""


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Runtime, Path, list[tuple[str, str]]]:
    pack = tmp_path / "packs" / "live.yaml"
    pack.parent.mkdir()
    pack.write_text(GOOD.format(extra=""))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("packs: [packs/]\nreload_interval_seconds: 0.05\n")
    events: list[tuple[str, str]] = []
    runtime = Runtime(str(cfg), load_settings(str(cfg), env={}), on_reload=lambda r, d: events.append((r, d)))
    return runtime, pack, events


def rule_ids(runtime: Runtime, text: str) -> list[str]:
    return [f.rule_id for f in runtime.current.ruleset.scan([TextSegment("t", text)])]


def test_good_change_goes_live(setup: tuple[Runtime, Path, list[tuple[str, str]]]) -> None:
    runtime, pack, events = setup
    assert rule_ids(runtime, "beta_k3j9x2m7q1w8") == []
    pack.write_text(GOOD.format(extra=BETA))
    assert runtime.reload()
    assert rule_ids(runtime, "beta_k3j9x2m7q1w8") == ["beta-token"]
    assert events[-1][0] == "ok"


def test_bad_change_keeps_last_good_set(setup: tuple[Runtime, Path, list[tuple[str, str]]]) -> None:
    runtime, pack, events = setup
    before = runtime.current
    pack.write_text(GOOD.format(extra=BETA.replace("beta_[a-z0-9]{12}", "(?<=x)beta")))
    assert not runtime.reload()
    assert runtime.current is before
    assert rule_ids(runtime, "alpha_k3j9x2m7q1w8") == ["alpha-token"]
    result, detail = events[-1]
    assert result == "error" and f"{pack}:" in detail and "beta-token: Hyperscan cannot compile" in detail


def test_watcher_picks_up_file_changes(setup: tuple[Runtime, Path, list[tuple[str, str]]]) -> None:
    runtime, pack, events = setup
    runtime.watch()
    try:
        time.sleep(0.1)
        pack.write_text(GOOD.format(extra=BETA))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and rule_ids(runtime, "beta_k3j9x2m7q1w8") != ["beta-token"]:
            time.sleep(0.05)
        assert rule_ids(runtime, "beta_k3j9x2m7q1w8") == ["beta-token"]
    finally:
        runtime.stop()
