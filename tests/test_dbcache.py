"""Compiled rule databases are cached on disk: a second start loads them, a bad file is replaced, a change misses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from filter.errors import RulePackErrors
from filter.model import TextSegment
from filter.rules import DatabaseCache, Fingerprinter, dbcache, load_ruleset
from filter.runtime import Runtime
from filter.settings import CACHE_DIR_ENV, load_settings

PACK = """
pack: cached
version: 1
rules:
  - id: alpha-token
    category: secret
    description: alpha
    pattern: '{pattern}'
    examples: {{match: ['alpha_k3j9x2m7q1w8'], no_match: ['alpha_']}}
"""


def write_pack(tmp_path: Path, pattern: str = "alpha_[a-z0-9]{12}") -> Path:
    pack = tmp_path / "packs" / "cached.yaml"
    pack.parent.mkdir(exist_ok=True)
    pack.write_text(PACK.format(pattern=pattern))
    return pack


def found(pack: Path, cache: DatabaseCache) -> list[str]:
    ruleset = load_ruleset([pack], Fingerprinter(b"k"), cache=cache)
    return [f.rule_id for f in ruleset.scan([TextSegment("t", "key alpha_k3j9x2m7q1w8 here")])]


def test_a_second_start_loads_the_database_from_the_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pack = write_pack(tmp_path)
    first = DatabaseCache(tmp_path / "cache")
    assert found(pack, first) == ["alpha-token"]
    assert (first.hits, first.misses, first.writes) == (0, 1, 1)
    second = DatabaseCache(tmp_path / "cache")
    with caplog.at_level(logging.DEBUG, logger="llm_content_filter"):
        assert found(pack, second) == ["alpha-token"]
    assert (second.hits, second.misses, second.writes) == (1, 0, 0)
    assert "rule database loaded from cache" in caplog.text


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "not a cache file"])
def test_a_corrupt_cache_file_is_ignored_and_replaced(tmp_path: Path, damage: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    pack = write_pack(tmp_path)
    found(pack, DatabaseCache(tmp_path / "cache"))
    (path,) = (tmp_path / "cache").glob("*.hsdb")
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 3]
    else:
        data = bytearray(b"\x00" * 50)
    path.write_bytes(bytes(data))
    cache = DatabaseCache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="llm_content_filter"):
        assert found(pack, cache) == ["alpha-token"]  # compiled again, same findings
    assert (cache.hits, cache.misses, cache.writes) == (0, 1, 1)
    assert "compiling and replacing it" in caplog.text
    again = DatabaseCache(tmp_path / "cache")
    assert found(pack, again) == ["alpha-token"]
    assert again.hits == 1  # the rewritten file is whole


def test_a_different_pack_misses_and_both_stay_cached(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    found(write_pack(tmp_path), DatabaseCache(cache_dir))
    changed = DatabaseCache(cache_dir)
    pack = write_pack(tmp_path, "alpha_[a-z0-9]{10,12}")
    assert found(pack, changed) == ["alpha-token"]
    assert (changed.hits, changed.misses) == (0, 1)
    assert len(list(cache_dir.glob("*.hsdb"))) == 2


def test_old_cache_files_are_pruned(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    for n in range(dbcache.KEEP + 3):
        found(write_pack(tmp_path, f"alpha_[a-z0-9]{{{12 - n % 3},12}}x?{'y?' * n}"), DatabaseCache(cache_dir))
    assert len(list(cache_dir.glob("*.hsdb"))) == dbcache.KEEP


def test_an_unwritable_cache_path_compiles_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    with caplog.at_level(logging.WARNING, logger="llm_content_filter"):
        for _ in range(2):
            cache = DatabaseCache(blocker / "cache")
            assert found(write_pack(tmp_path), cache) == ["alpha-token"]
            assert cache.writes == 0
    assert caplog.text.count("rule database cache off") == 1


def test_the_cache_directory_is_a_setting_and_reloads_use_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_pack(tmp_path)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("packs: [packs/]\ncache_dir: rule-cache\n")
    settings = load_settings(str(cfg), env={})
    assert settings.cache_dir == str(tmp_path / "rule-cache")
    runtime = Runtime(str(cfg), settings)
    assert len(list((tmp_path / "rule-cache").glob("*.hsdb"))) == 1
    with caplog.at_level(logging.DEBUG, logger="llm_content_filter"):
        assert runtime.reload()
    assert "rule database loaded from cache" in caplog.text


def test_the_environment_overrides_the_cache_directory_and_empty_turns_it_off(tmp_path: Path) -> None:
    assert load_settings(None, env={CACHE_DIR_ENV: str(tmp_path)}).cache_dir == str(tmp_path)
    assert load_settings(None, env={CACHE_DIR_ENV: ""}).cache_dir is None
    assert load_settings(None, env={"XDG_CACHE_HOME": str(tmp_path)}).cache_dir == str(tmp_path / "llm-content-filter")


def _checks_run(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pack example checks that run."""
    from filter.rules.engine import Ruleset

    runs: list[int] = []
    check = Ruleset.check_examples

    def counted(self: Ruleset) -> list:  # type: ignore[type-arg]
        runs.append(1)
        return check(self)

    monkeypatch.setattr(Ruleset, "check_examples", counted)
    return runs


def test_examples_that_passed_are_not_run_again_for_the_same_rule_set(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _checks_run(monkeypatch)
    pack = write_pack(tmp_path)
    assert found(pack, DatabaseCache(tmp_path / "cache")) == ["alpha-token"]
    second = DatabaseCache(tmp_path / "cache")
    assert found(pack, second) == ["alpha-token"]
    assert (len(runs), second.example_hits) == (1, 1)
    pack.write_text(pack.read_text().replace("no_match: ['alpha_']", "no_match: ['alpha_', 'beta']"))
    found(pack, DatabaseCache(tmp_path / "cache"))  # the pack changed (its examples too): they run again
    assert len(runs) == 2
    found(pack, DatabaseCache(tmp_path / "other"))  # another cache knows nothing of it
    assert len(runs) == 3
    load_ruleset([pack], Fingerprinter(b"k"))  # no cache: always checked
    assert len(runs) == 4


def test_a_pack_whose_examples_fail_is_refused_at_every_load(tmp_path: Path) -> None:
    pack = write_pack(tmp_path)
    pack.write_text(pack.read_text().replace("match: ['alpha_k3j9x2m7q1w8']", "match: ['alpha_short']"))
    for _ in range(2):
        with pytest.raises(RulePackErrors, match="example does not match"):
            load_ruleset([pack], Fingerprinter(b"k"), cache=DatabaseCache(tmp_path / "cache"))
    assert not list((tmp_path / "cache").glob("*.examples-ok"))


def test_other_code_runs_the_examples_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _checks_run(monkeypatch)
    pack = write_pack(tmp_path)
    found(pack, DatabaseCache(tmp_path / "cache"))
    monkeypatch.setattr(dbcache, "_SOURCE_DIGEST", ["another version of the filter"])
    found(pack, DatabaseCache(tmp_path / "cache"))
    assert len(runs) == 2
