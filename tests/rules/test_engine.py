"""The engine on small packs written here: offsets, secret groups, keywords, allow, placeholders, known secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from filter.model import Mode, Severity, TextSegment
from filter.rules import Fingerprinter, Ruleset, load_ruleset
from tests.conftest import write_pack

PACK = """
pack: test
version: 1
rules:
  - id: exm-token
    category: secret
    description: Example Corp token
    pattern: 'exm_[A-Za-z0-9]{32}'
    examples:
      match: ['token = exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2']
      no_match: ['exm_short']
  - id: kv-secret
    category: secret
    description: secret assignment
    pattern: '(?i)secret\\s*=\\s*"(?P<secret>[A-Za-z0-9]{16,64})"'
    keywords: [secret]
    validators: [{entropy: 3.0}]
    allow: ['Q8mZ2kLp9XvB4nRt']
    examples:
      match: ['secret = "h7Gk2LmQ9pXz4VbN"']
      no_match: ['secret = "aaaaaaaaaaaaaaaa"', 'secret = "Q8mZ2kLp9XvB4nRt"']
  - id: watch-word
    category: pii
    description: shadow rule
    mode: shadow
    pattern: 'frobnicate-[0-9]{4}'
    examples:
      match: ['frobnicate-2024']
      no_match: ['frobnicate']
"""


@pytest.fixture()
def ruleset(tmp_path: Path) -> Ruleset:
    return load_ruleset([write_pack(tmp_path, PACK)], Fingerprinter(b"k"))


def test_finding_has_location_offsets_and_no_text(ruleset: Ruleset) -> None:
    token = "exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2"
    segs = [TextSegment("system", "be helpful"), TextSegment("messages[1].content", f"héllo {token} bye")]
    (f,) = ruleset.scan(segs)
    assert (f.rule_id, f.location, f.start, f.end) == ("exm-token", "messages[1].content", 6, 6 + len(token))
    assert token not in repr(f) and f.fingerprint.startswith("hmac-sha256:")


def test_fingerprint_is_keyed_and_stable(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, PACK)
    seg = [TextSegment("x", "exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2")]
    a1 = load_ruleset([pack], Fingerprinter(b"a")).scan(seg)[0].fingerprint
    a2 = load_ruleset([pack], Fingerprinter(b"a")).scan(seg)[0].fingerprint
    b = load_ruleset([pack], Fingerprinter(b"b")).scan(seg)[0].fingerprint
    assert a1 == a2 != b


def test_every_occurrence_in_every_segment(ruleset: Ruleset) -> None:
    t1, t2 = "exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2", "exm_Zq8Lm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa9kQ"
    found = ruleset.scan([TextSegment("a", f"{t1} and {t2}"), TextSegment("b", t1)])
    assert [(f.location, f.start) for f in found] == [("a", 0), ("a", len(t1) + 5), ("b", 0)]


def test_match_does_not_span_segments(ruleset: Ruleset) -> None:
    assert ruleset.scan([TextSegment("a", "exm_4fJ9qLm2Xz8Rt6Vb1"), TextSegment("b", "Nc3Kd7Hs5Gw0Pa2")]) == ()


def test_keyword_validator_allow_and_placeholder(ruleset: Ruleset) -> None:
    def rules(text: str) -> list[str]:
        return [f.rule_id for f in ruleset.scan([TextSegment("t", text)])]

    assert rules('SECRET = "h7Gk2LmQ9pXz4VbN"') == ["kv-secret"]
    assert rules('secret = "abababababababab"') == []  # entropy too low
    assert rules('secret = "Q8mZ2kLp9XvB4nRt"') == []  # allowlisted value
    assert rules('secret = "YOURexampleKEY12"') == []  # placeholder


def test_shadow_rule_is_reported_in_shadow_mode(ruleset: Ruleset) -> None:
    (f,) = ruleset.scan([TextSegment("t", "frobnicate-1999")])
    assert f.mode is Mode.SHADOW


def test_known_secret_is_critical_even_when_a_validator_drops_it(tmp_path: Path) -> None:
    fp = Fingerprinter(b"k")
    low_entropy = b"abababababababab"
    rs = load_ruleset([write_pack(tmp_path, PACK)], fp, frozenset({fp(low_entropy)}))
    (f,) = rs.scan([TextSegment("t", 'secret = "abababababababab"')])
    assert (f.rule_id, f.severity, f.mode) == ("kv-secret", Severity.CRITICAL, Mode.ENFORCE)


def test_scan_is_thread_safe(ruleset: Ruleset) -> None:
    from concurrent.futures import ThreadPoolExecutor

    seg = [TextSegment("x", "a exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2 b" * 50)]
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: len(ruleset.scan(seg)), range(64)))
    assert set(counts) == {50}
