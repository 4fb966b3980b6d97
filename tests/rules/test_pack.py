"""Pack loading: every authoring mistake names file, line and rule id (tests/rules/invalid/*.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filter.errors import RulePackErrors
from filter.rules import Fingerprinter, load_ruleset

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    return f"{path}:{first.removeprefix('# expect: ')}"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_pack_reports_file_line_and_rule(path: Path) -> None:
    with pytest.raises(RulePackErrors) as info:
        load_ruleset([path], Fingerprinter(b"k"))
    assert str(info.value) == expected_message(path)


def test_every_problem_in_a_load_is_reported(tmp_path: Path) -> None:
    for source in ("bad-id.yaml", "bad-category.yaml"):
        (tmp_path / source).write_text((Path(__file__).parent / "invalid" / source).read_text())
    with pytest.raises(RulePackErrors) as info:
        load_ruleset([tmp_path], Fingerprinter(b"k"))
    assert [e.rule_id for e in info.value.errors] == ["token-x", "Token_X"]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulePackErrors, match="nothing:0: -: cannot read pack: No such file or directory"):
        load_ruleset([tmp_path / "nothing"], Fingerprinter(b"k"))
