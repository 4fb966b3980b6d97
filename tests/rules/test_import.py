"""`rules import gitleaks`: a gitleaks config becomes a pack that loads, whose examples hold, and whose rules
find real tokens in real request bodies; what cannot be carried over is reported, rule by rule.

The real gitleaks default config (config/gitleaks.toml) is not available offline, so it is not used here;
`fixtures/gitleaks.toml` is a small config written for these tests in gitleaks' v8 schema, with the
constructs that matter: a prefixed token, the generic "identifier ... operator ... value" template with a
mid-pattern (?i) and lazy quantifiers, keywords, entropy, secretGroup, rule and global allowlists (regexes,
stopwords, regexTarget match / line, AND), POSIX classes, \\Q...\\E, \\z, a path filter, a path-only rule,
a lookahead that Hyperscan refuses, and [extend].
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import regex
import yaml

from filter.formats import parse
from filter.model import TextSegment
from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, load_ruleset
from filter.rules.gitleaks import (
    BRACE,
    HEX,
    LAZY,
    QUOTED,
    UNGREEDY,
    Report,
    adapt_pattern,
    hyperscan_error,
    import_gitleaks,
    regex_error,
)
from tests.conftest import make_envelope

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "gitleaks.toml"
CONVERTED = {
    "acme-api-token", "generic-api-key", "alibaba-access-key-id", "sendbird-access-token", "datadog-api-key",
    "chatops-webhook-url", "private-key", "hashicorp-tf-password",
}  # fmt: skip


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    text, report = import_gitleaks(FIXTURE)
    assert text is not None, report.render()
    path = tmp_path_factory.mktemp("import") / "gitleaks.yaml"
    path.write_text(text)
    return path, report


@pytest.fixture(scope="module")
def ruleset(imported: tuple[Path, Report]) -> Ruleset:
    return load_ruleset([imported[0]], Fingerprinter(b"k"))  # loads = schema, Hyperscan and every example hold


def rules_by_id(path: Path) -> dict[str, Any]:
    return {r["id"]: r for r in yaml.safe_load(path.read_text())["rules"]}


def changes(report: Report, rule_id: str) -> str:
    return " | ".join(next(c for c in report.converted if c.id == rule_id).changes)


# --- the fixture config, end to end ---------------------------------------------------------------


def test_pack_loads_with_the_expected_rules(imported: tuple[Path, Report], ruleset: Ruleset) -> None:
    path, report = imported
    doc = yaml.safe_load(path.read_text())
    assert doc["pack"] == "gitleaks" and doc["description"] == "Imported from gitleaks config gitleaks.toml"
    assert {r.id for r in ruleset.rules} == CONVERTED
    assert all(r.category.value == "secret" for r in ruleset.rules)
    assert (report.total, len(report.converted), len(report.adapted), len(report.skipped)) == (11, 8, 6, 3)


def test_skipped_rules_name_their_reason(imported: tuple[Path, Report]) -> None:
    skipped = dict(imported[1].skipped)
    assert set(skipped) == {"pkcs12-file", "password-with-digit", "broken-secret-group"}
    assert skipped["pkcs12-file"].startswith("path-only rule")
    assert skipped["password-with-digit"] == (
        "Hyperscan cannot compile the pattern: Zero-width assertions are not supported."
    )
    assert skipped["broken-secret-group"] == "secretGroup 3 but the regex has 1 group"


def test_adaptations_and_drops_are_reported_per_rule(imported: tuple[Path, Report]) -> None:
    report = imported[1]
    generic = changes(report, "generic-api-key")
    assert f"{LAZY} (x2)" in generic and "(?i) scoped as (?i:...)" in generic and "has_digit added" in generic
    assert "dropped: allowlist 2: 1 regex with regexTarget 'match'" in generic
    assert "dropped: allowlist 3: 1 regex with regexTarget 'line'" in generic
    assert "(?i) scoped" in changes(report, "alibaba-access-key-id")
    datadog = changes(report, "datadog-api-key")
    assert "id 'Datadog_API_Key' written as 'datadog-api-key'" in datadog
    assert "POSIX class [:space:] expanded (x2)" in datadog and "POSIX class [:xdigit:] expanded" in datadog
    assert QUOTED in changes(report, "chatops-webhook-url")
    assert f"{LAZY} (x2)" in changes(report, "private-key")
    tf = changes(report, "hashicorp-tf-password")
    assert "dropped: path filter" in tf and "dropped: allowlist 1: 1 path" in tf
    assert {c.id for c in report.adapted} == CONVERTED - {"acme-api-token", "sendbird-access-token"}
    notes = "\n".join(report.notes)
    assert "[extend]" in notes and "not supported" in notes
    assert "dropped: global allowlist 1: 2 paths" in notes
    assert "global allowlist 1: 3 patterns added to the allow list of every rule" in notes


def test_rule_fields_follow_gitleaks(imported: tuple[Path, Report]) -> None:
    rules = rules_by_id(imported[0])
    generic = rules["generic-api-key"]
    assert generic["keywords"] == ["access", "api", "auth", "key", "credential", "creds", "passwd", "password",
                                   "secret", "token"]
    assert generic["validators"] == [{"entropy": 3.5}, "has_digit"]
    allow = [a["pattern"] for a in generic["allow"]]
    assert "^[a-zA-Z_.-]+$" in allow  # regexTarget secret (default)
    assert "(?i)(?:localhost|changeit|example|000000|sample)" in allow  # stopwords: case-insensitive substrings
    assert "(?i:^true)|(?i:false)|(?i:null$)" in allow  # global allowlist, flags scoped per branch as in Go
    assert not any("mount=type=secret" in a or "author" in a for a in allow)  # match / line targets: dropped
    # secretGroup = 2: the token is the secret, the vendor-name group is no longer capturing
    sendbird = str(rules["sendbird-access-token"]["pattern"])
    assert "(?:sendbird|sb)" in sendbird and "(?P<secret>[a-f0-9]{40})" in sendbird
    # mid-pattern (?i) scoped to the end of its group, not the whole pattern
    assert str(rules["alibaba-access-key-id"]["pattern"]).startswith(r"\b(?P<secret>LTAI(?i:[a-z0-9]{20}))")
    # AND of a regex and stopwords on the secret: one pattern with two lookaheads
    assert {"pattern": "(?s)^(?=.*?(?:^T0))(?=.*?(?i:sandbox))"} in rules["chatops-webhook-url"]["allow"]
    assert "?KEY" not in str(rules["private-key"]["pattern"])  # lazy quantifiers made greedy
    for rule in rules.values():
        pattern = str(rule["pattern"])
        assert hyperscan_error(pattern) is None and regex_error(pattern) is None


def test_examples_are_generated_verified_and_reproducible(imported: tuple[Path, Report]) -> None:
    rules = rules_by_id(imported[0])
    token = rules["acme-api-token"]["examples"]["match"][0]
    assert regex.fullmatch(r"acme_(?:live|test)_[A-Za-z0-9]{32}", token)
    assert "acme_live_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" in rules["acme-api-token"]["examples"]["no_match"]
    again, _ = import_gitleaks(FIXTURE)
    assert again == imported[0].read_text()  # seeded: the same config gives the same pack


# --- imported rules on real traffic ---------------------------------------------------------------


def scan_openai(ruleset: Ruleset, content: str) -> list[tuple[str, str]]:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a senior engineer. Review the user's changes."},
            {"role": "user", "content": content},
        ],
        "temperature": 0.2,
    }
    parsed = parse(make_envelope(body))
    return [(f.rule_id, f.location) for f in ruleset.scan(parsed.segments)]


def test_imported_rules_find_tokens_in_an_openai_chat_body(ruleset: Ruleset) -> None:
    content = (
        "Why does the deploy fail? Here is the config:\n"
        "```python\n"
        "ACME_TOKEN = 'acme_live_Q7vN2kLp9XzR4tBw8Hc3Md6Fj1Gs5Ya0'\n"
        "client = Alibaba(access_key_id=\"LTAI5tRk8wQ2mZ9pL3vX7nB4\")\n"
        "db_password = \"Xk29vLq8Rt5mZp3Nw7\"\n"
        "```\n"
    )
    found = scan_openai(ruleset, content)
    assert ("acme-api-token", "messages[1].content") in found
    assert ("alibaba-access-key-id", "messages[1].content") in found
    assert ("generic-api-key", "messages[1].content") in found


def test_allowlists_and_placeholders_hold_on_real_traffic(ruleset: Ruleset) -> None:
    quiet = (
        "api_key = \"YOUR_API_KEY_HERE\"\n"  # placeholder
        "api_token = \"localhost8080Zq\"\n"  # rule stopword
        "token = \"${DEPLOY_TOKEN}\"\n"  # template
        "ACME_TOKEN = 'acme_live_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n"  # masked
    )
    assert scan_openai(ruleset, quiet) == []
    # the dropped path filter (*.tf, *.hcl) is why the report says "dropped": the rule now fires anywhere
    assert scan_openai(ruleset, 'password = "localhost8080zq"') == [("hashicorp-tf-password", "messages[1].content")]


def test_imported_pack_loads_next_to_the_shipped_packs_with_an_id_prefix(tmp_path: Path) -> None:
    text, report = import_gitleaks(FIXTURE, id_prefix="gitleaks-")
    assert text is not None
    path = tmp_path / "gitleaks.yaml"
    path.write_text(text)
    combined = load_ruleset([SHIPPED_PACKS, path], Fingerprinter(b"k"))
    assert "gitleaks-alibaba-access-key-id" in {r.id for r in combined.rules}
    assert not any("shipped packs" in n for n in report.notes)
    _, plain = import_gitleaks(FIXTURE)
    assert any("alibaba-access-key-id" in n and "--id-prefix" in n for n in plain.notes)


# --- the Go RE2 adapter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("go", "secret_group", "expected", "change"),
    [
        (r"a(?i)b|c", None, r"a(?i:b)|(?i:c)", "(?i) scoped"),  # Go: the flag holds in later branches too
        (r"(?i)abc|d", None, r"(?i)abc|d", None),  # leading flags stay global
        (r"x(y(?i)z|w)v", None, r"x(?P<secret>y(?i:z)|(?i:w))v", "(?i) scoped"),
        (r"(?i)a(?-i)B", None, r"(?i)a(?-i:B)", "(?-i) scoped"),
        (r"a.*?b+?c??d{2,5}?", None, r"a.*b+c?d{2,5}", LAZY),
        (r"(?U)a+b", None, r"a+b", UNGREEDY),
        (r"[[:alnum:]_]{8}", None, r"[0-9A-Za-z_]{8}", "POSIX class [:alnum:] expanded"),
        (r"[[:^digit:]]", None, r"[\x00-/:-\xff]", "POSIX class [:^digit:] expanded"),
        (r"\Qa.b*\E+x", None, r"a\.b\*+x", QUOTED),
        (r"x{,3}y{2,3}", None, r"x\{,3}y{2,3}", BRACE),
        (r"\x{41}B", None, r"\x41B", HEX),
        (r"(?P<name>a)(b)", 2, r"(?:a)(?P<secret>b)", None),
        (r"(a)(b)", None, r"(?P<secret>a)(?:b)", "secretGroup"),
        (r"[\w.-]{0,50}?key", None, r"[\w.-]{0,50}key", LAZY),
        (r"\b(sha256~[\w-]{43})(?:[^\w-]|\z)", None, r"\b(?P<secret>sha256~[\w-]{43})(?:[^\w-]|\z)", None),
    ],
)
def test_adapt_pattern(go: str, secret_group: int | None, expected: str, change: str | None) -> None:
    adapted = adapt_pattern(go, secret_group)
    assert adapted.pattern == expected
    assert hyperscan_error(adapted.pattern) is None and regex_error(adapted.pattern) is None
    listed = " ".join(adapted.changes)
    if change == "secretGroup":
        assert adapted.groups == 2  # the importer reports "secretGroup unset: group 1 is the secret"
    elif change:
        assert change in listed
    else:
        assert not listed


def test_adapted_flags_keep_go_semantics() -> None:
    rx = regex.compile(adapt_pattern(r"a(?i)b|c").pattern)
    assert rx.fullmatch("aB") and rx.fullmatch("C") and not rx.fullmatch("AB")  # as Go's regexp does
    assert adapt_pattern(r"abc\z").re_pattern == r"abc\Z"  # the example generator's dialect
    refused = adapt_pattern(r"password=(?=\S*\d)(\S{8,})")
    assert regex_error(refused.pattern) is None
    assert hyperscan_error(refused.pattern) == "Zero-width assertions are not supported."


def test_examples_match_only_their_rule(ruleset: Ruleset) -> None:
    for rule in ruleset.rules:
        for text in rule.examples.match:
            assert rule.id in {f.rule_id for f in ruleset.scan([TextSegment("x", text)])}


# --- the CLI ----------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "filter", "rules", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_cli_writes_a_pack_that_lints_and_reports_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "team.yaml"
    run = cli("import", "gitleaks", str(FIXTURE), "-o", str(out), "--pack-name", "team-secrets")
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert "11 rules: 8 converted, 6 adapted, 3 skipped" in run.stderr
    assert "  pkcs12-file: path-only rule" in run.stderr
    assert "  password-with-digit: Hyperscan cannot compile the pattern: Zero-width assertions" in run.stderr
    assert "  generic-api-key: " in run.stderr and LAZY in run.stderr
    assert yaml.safe_load(out.read_text())["pack"] == "team-secrets"
    lint = cli("lint", str(out))
    assert lint.returncode == 0, lint.stderr
    assert "8 rules" in lint.stdout


def test_cli_pack_to_stdout() -> None:
    run = cli("import", "gitleaks", str(FIXTURE))
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(run.stdout)["description"] == "Imported from gitleaks config gitleaks.toml"


def test_cli_exits_1_when_nothing_converts(tmp_path: Path) -> None:
    config = tmp_path / "paths-only.toml"
    config.write_text(
        "[[rules]]\nid = 'pem-file'\npath = '''\\.pem$'''\n\n"
        "[[rules]]\nid = 'lookbehind'\nregex = '''(?<=token=)[a-z0-9]{32}'''\nkeywords = ['token=']\n"
    )
    out = tmp_path / "out.yaml"
    run = cli("import", "gitleaks", str(config), "-o", str(out))
    assert run.returncode == 1
    assert "2 rules: 0 converted, 0 adapted, 2 skipped" in run.stderr
    assert "lookbehind: Hyperscan cannot compile the pattern" in run.stderr
    assert not out.exists()


def test_cli_exits_2_on_invalid_or_missing_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]]\nid = 'x'\nregex = abc\n")
    run = cli("import", "gitleaks", str(bad))
    assert run.returncode == 2 and run.stdout == ""
    assert f"{bad}: invalid TOML: " in run.stderr and "(at line 3, column 9)" in run.stderr
    unclosed = tmp_path / "unclosed.toml"
    unclosed.write_text("[[rules]]\nid = 'x'\nkeywords = [\"a\"\n")
    run = cli("import", "gitleaks", str(unclosed))
    assert run.returncode == 2 and "Unclosed array (at end of document, line 4)" in run.stderr
    missing = cli("import", "gitleaks", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    wrong_shape = tmp_path / "shape.toml"
    wrong_shape.write_text("rules = 'not a table array'\n")
    shape = cli("import", "gitleaks", str(wrong_shape))
    assert shape.returncode == 2 and "must be an array of tables" in shape.stderr

