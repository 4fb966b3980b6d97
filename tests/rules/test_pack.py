"""Pack loading: every authoring mistake names file, line and rule id (tests/rules/invalid/*.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filter.errors import RulePackErrors
from filter.rules import Fingerprinter, load_ruleset, parse_pack

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def expected_message(path: Path) -> str:
    """The fixture's `# expect: LINE: RULE: MESSAGE` comments (the first line, more at the end), in order."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# expect: ")
    return "\n".join(f"{path}:{line.removeprefix('# expect: ')}" for line in lines if line.startswith("# expect: "))


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


def test_one_refused_pattern_does_not_hide_example_failures_in_other_files(tmp_path: Path) -> None:
    for source in ("hyperscan-refuses.yaml", "example-fails.yaml"):
        text = (Path(__file__).parent / "invalid" / source).read_text()
        (tmp_path / source).write_text(text.replace("token-x", source.removesuffix(".yaml")))
    with pytest.raises(RulePackErrors) as info:
        load_ruleset([tmp_path], Fingerprinter(b"k"))
    assert [str(e).removeprefix(f"{tmp_path}/") for e in info.value.errors] == [
        "example-fails.yaml:9: example-fails: example does not match: 'x_QWHDKEUZMA' (regex did not match)",
        "hyperscan-refuses.yaml:8: hyperscan-refuses: Hyperscan cannot compile pattern: "
        "Zero-width assertions are not supported.",
    ]


def test_the_same_file_twice_is_loaded_once(tmp_path: Path) -> None:
    text = (Path(__file__).parent / "invalid" / "example-fails.yaml").read_text().replace("x_QWHDKEUZMA", "x_qwhdkeuzma")
    (tmp_path / "a.yaml").write_text(text)
    ruleset = load_ruleset([tmp_path / "a.yaml", tmp_path, str(tmp_path / "." / "a.yaml")], Fingerprinter(b"k"))
    assert [r.id for r in ruleset.rules] == ["token-x"]


def test_the_same_rule_id_in_two_files_names_both(tmp_path: Path) -> None:
    text = (Path(__file__).parent / "invalid" / "example-fails.yaml").read_text().replace("x_QWHDKEUZMA", "x_qwhdkeuzma")
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(RulePackErrors) as info:
        load_ruleset([tmp_path], Fingerprinter(b"k"))
    assert str(info.value) == f"{tmp_path / 'b.yaml'}:5: token-x: duplicate rule id (also in {tmp_path / 'a.yaml'}:5)"


def test_a_pack_loads_from_text_and_every_loading_failure_is_a_pack_error() -> None:
    good = (Path(__file__).parent / "invalid" / "example-fails.yaml").read_text().replace("x_QWHDKEUZMA", "x_qwhdkeuzma")
    pack = parse_pack(good, "inline")
    assert [r.id for r in pack.rules] == ["token-x"] and pack.rules[0].line_of("pattern") == 8
    cases = {
        # refused by the filter's depth check, or first by libyaml's own (its parser reads ahead of the composer)
        "[" * 5000 + "]" * 5000: ("inline:1: -: nested deeper than 64 levels",
                                  "inline:1: -: YAML syntax error: exceeded maximum nesting depth"),
        "pack: a\npack: b\n": "inline:2: -: duplicate key 'pack'",
        "? [a, b]\n: c\n": "inline:1: -: mapping keys must be plain scalars",
        "- just a list\n": "inline:1: -: a pack is a mapping with keys pack, version, rules, not a list",
        "": "inline:1: -: a pack is a mapping with keys pack, version, rules",
        "pack: x\nversion: 1\nrules: [1]\n": "inline:3: -: each rule must be a mapping, not 1",
    }
    for text, message in cases.items():
        with pytest.raises(RulePackErrors) as info:
            parse_pack(text, "inline")
        assert str(info.value) in ((message,) if isinstance(message, str) else message), text[:20]


def test_a_bad_rule_reports_every_schema_error_and_the_good_rules_still_load(tmp_path: Path) -> None:
    from filter.rules.pack import read_pack

    pack, errors = read_pack(Path(__file__).parent / "invalid" / "field-types.yaml")
    assert pack is not None and pack.rules == () and len(errors) == 7
