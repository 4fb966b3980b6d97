"""Reload: a good change goes live atomically; a bad change keeps the last good set and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from filter.model import TextSegment
from filter.runtime import Runtime
from filter.settings import load_settings
from tests.support.waiting import wait_until

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
        pack.write_text(GOOD.format(extra=BETA))  # the snapshot to compare with was taken when the packs loaded
        wait_until("the new rule loads", lambda: rule_ids(runtime, "beta_k3j9x2m7q1w8") == ["beta-token"], 5, 0.05)
    finally:
        runtime.stop()


TAGGED = GOOD.format(extra="").replace("pattern: 'alpha_[a-z0-9]{12}'", "pattern: !!python/name:os.system")
BOMB = """pack: bomb
version: 1
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
rules: [*e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


@pytest.mark.parametrize(("name", "text", "message"), [
    ("tagged.yaml", TAGGED, ":8: -: YAML tags are not allowed (tag:yaml.org,2002:python/name:os.system)"),
    ("bomb.yaml", BOMB, ":3: -: aliases expand to too much data (billion-laughs shape)"),
])
def test_a_hostile_pack_is_a_counted_reload_error_and_the_watcher_keeps_going(
        setup: tuple[Runtime, Path, list[tuple[str, str]]], name: str, text: str, message: str) -> None:
    runtime, pack, events = setup
    before = runtime.current
    thread = runtime.watch()
    try:
        hostile = pack.parent / name
        hostile.write_text(text)
        wait_until("a reload error", lambda: any(r == "error" for r, _ in events), 5, 0.02)
        assert runtime.current is before and rule_ids(runtime, "alpha_k3j9x2m7q1w8") == ["alpha-token"]
        assert [d for r, d in events if r == "error"][0] == f"{hostile}{message}"
        hostile.unlink()
        pack.write_text(GOOD.format(extra=BETA))
        wait_until("the new rule loads", lambda: rule_ids(runtime, "beta_k3j9x2m7q1w8") == ["beta-token"], 5, 0.02)
        assert thread.is_alive() and events[-1][0] == "ok"
    finally:
        runtime.stop()


def test_the_watcher_counts_and_survives_any_exception(setup: tuple[Runtime, Path, list[tuple[str, str]]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, pack, events = setup
    real = runtime.changed
    calls = {"n": 0}

    def flaky() -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("out of memory while stating")
        return real()

    monkeypatch.setattr(runtime, "changed", flaky)
    thread = runtime.watch()
    try:
        wait_until("the error counted", lambda: ("error", "MemoryError: out of memory while stating") in events, 5, 0.02)
        pack.write_text(GOOD.format(extra=BETA))
        wait_until("the new rule loads", lambda: rule_ids(runtime, "beta_k3j9x2m7q1w8") == ["beta-token"], 5, 0.02)
        assert thread.is_alive()
    finally:
        runtime.stop()


def test_the_fingerprint_key_comes_through_injected_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from filter.rules import Fingerprinter

    monkeypatch.delenv("LLM_FILTER_FINGERPRINT_KEY", raising=False)
    runtime = Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "org-key"}))
    (finding,) = runtime.current.ruleset.scan([TextSegment("t", "key AKIAZ5XQ3HR2LMNPQ7TW")])
    assert finding.fingerprint == Fingerprinter(b"org-key")(b"AKIAZ5XQ3HR2LMNPQ7TW")
    monkeypatch.setenv("LLM_FILTER_FINGERPRINT_KEY", "ambient")  # the process env is not read behind settings' back
    again = Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "org-key"}))
    assert again.current.ruleset.scan([TextSegment("t", "key AKIAZ5XQ3HR2LMNPQ7TW")])[0].fingerprint == finding.fingerprint
