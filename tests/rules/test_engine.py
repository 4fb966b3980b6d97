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


# -- derived segments are reported at the original text; one finding per value ------------------------------
from filter.model import Origin, Piece  # noqa: E402

TOKEN = "exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2"


def test_finding_in_a_derived_copy_is_reported_at_the_original_offsets(ruleset: Ruleset) -> None:
    # the original spells the token with a zero-width space after each of its first 4 characters
    original = "k: " + "".join(c + "\u200b" for c in TOKEN[:4]) + TOKEN[4:]
    marks = ((0, 3), (1, 5), (2, 7), (3, 9), (4, 11))  # derived offset -> original offset, inside the piece
    piece = Piece(0, len(TOKEN) + 3, "m", 0, len(original), ((0, 0), *((d + 3, o) for d, o in marks)))
    derived = TextSegment("m#normalized", "k: " + TOKEN, "unicode", Origin((piece,)))
    (f,) = ruleset.scan([TextSegment("m", original), derived])
    assert (f.location, f.start, f.end, f.decoded) == ("m", 3, len(original), "unicode")


def test_finding_in_an_opaque_piece_covers_the_whole_encoded_run(ruleset: Ruleset) -> None:
    derived = TextSegment("m#base64", f"x\n{TOKEN}", "base64", Origin((Piece(0, 1, "m", 0, 4), Piece(2, 36, "m", 10, 58))))
    (f,) = ruleset.scan([derived])
    assert (f.location, f.start, f.end, f.decoded) == ("m", 10, 58, "base64")


def test_same_value_in_original_and_exact_copy_is_one_finding(ruleset: Ruleset) -> None:
    text = f"url ?t={TOKEN}&x=%20"
    copy = TextSegment("m#urldecoded", text.replace("%20", " "), "percent",
                       Origin((Piece(0, len(text) - 2, "m", 0, len(text), ((0, 0), (len(text) - 3, len(text) - 3))),)))
    (f,) = ruleset.scan([TextSegment("m", text), copy])
    assert (f.location, f.start, f.decoded) == ("m", 7, "")


def test_joined_blocks_report_only_values_across_the_boundary(ruleset: Ruleset) -> None:
    a, b = f"see {TOKEN[:10]}", f"{TOKEN[10:]} and {TOKEN}"
    pieces = (Piece(0, len(a), "b0", 0, len(a), ((0, 0),)), Piece(len(a), len(b), "b1", 0, len(b), ((0, 0),)))
    joined = TextSegment("c#joined", a + b, "joined", Origin(pieces, across=True))
    found = ruleset.scan([TextSegment("b0", a), TextSegment("b1", b), joined])
    assert [(f.location, f.start, f.end, f.also) for f in found] == [
        ("b0", 4, len(a), (("b1", 0, len(TOKEN) - 10),)),  # split: one finding, both halves
        ("b1", len(b) - len(TOKEN), len(b), ()),  # inside one block: reported once, by the block itself
    ]
    assert found[0].spans() == (("b0", 4, len(a)), ("b1", 0, len(TOKEN) - 10))


LOOSE_PACK = """
pack: loose
version: 1
rules:
  - id: exm-token-verified
    category: secret
    description: Example Corp token whose check digit verifies
    severity: high
    pattern: 'exm_[A-Za-z0-9]{32}'
    examples: {match: ['exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2'], no_match: ['exm_short']}
  - id: exm-token-unverified
    category: secret
    description: Example Corp token format
    severity: medium
    pattern: 'exm_[A-Za-z0-9]{32}'
    examples: {match: ['exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2'], no_match: ['exm_short']}
  - id: exs-token-watch
    category: secret
    description: stricter but only watched
    severity: high
    mode: shadow
    pattern: 'exs_[A-Za-z0-9]{32}'
    examples: {match: ['exs_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2'], no_match: ['exs_short']}
  - id: exs-token-loose
    category: secret
    description: looser but enforced
    severity: medium
    pattern: 'exs_[A-Za-z0-9]{32}'
    examples: {match: ['exs_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2'], no_match: ['exs_short']}
  - id: exm-assignment
    category: secret
    description: token assigned to a name
    severity: medium
    pattern: 'EXM_TOKEN=exm_[A-Za-z0-9]{32}'
    examples: {match: ['EXM_TOKEN=exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2'], no_match: ['EXM_TOKEN=x']}
"""


def test_looser_rule_over_the_same_span_is_dropped(tmp_path: Path) -> None:
    rs = load_ruleset([write_pack(tmp_path, LOOSE_PACK)], Fingerprinter(b"k"))
    other = "exs_" + TOKEN[4:]
    found = rs.scan([TextSegment("t", f"EXM_TOKEN={TOKEN} {other}")])
    # the medium rule over the same span goes; a shadow rule cannot hide an enforced one; a wider span stays
    assert sorted(f.rule_id for f in found) == [
        "exm-assignment",
        "exm-token-verified",
        "exs-token-loose",
        "exs-token-watch",
    ]
    every = rs.scan([TextSegment("t", f"EXM_TOKEN={TOKEN}")], each_rule=True)
    assert "exm-token-unverified" in {f.rule_id for f in every}


def test_shipped_github_token_is_one_finding(shipped_ruleset: Ruleset) -> None:
    import zlib

    from filter.rules.validators import _base62

    body = "pLIix6MEOLeMa61EqJomTEI1JEx7Qa"
    token = "ghp_" + body + _base62(zlib.crc32(body.encode()), 6)
    assert [f.rule_id for f in shipped_ruleset.scan([TextSegment("t", token)])] == ["github-pat"]


OPEN_PACK = """
pack: open
version: 1
rules:
  - id: tok-open
    category: secret
    description: a token of open length
    pattern: 'tok_[a-z0-9]{8,40}'
    examples: {match: ['tok_q7f3k9z2m4'], no_match: ['tok_short']}
"""


def test_value_going_on_into_the_next_block_keeps_both_parts(tmp_path: Path) -> None:
    rs = load_ruleset([write_pack(tmp_path, OPEN_PACK)], Fingerprinter(b"k"))
    a, b = "x tok_q7f3k9z2m4", "w8r1t6y5 y"  # a match in the first block alone, and a longer one across
    pieces = (Piece(0, len(a), "b0", 0, len(a), ((0, 0),)), Piece(len(a), len(b), "b1", 0, len(b), ((0, 0),)))
    joined = TextSegment("c#joined", a + b, "joined", Origin(pieces, across=True))
    (f,) = rs.scan([TextSegment("b0", a), TextSegment("b1", b), joined])
    assert f.spans() == (("b0", 2, len(a)), ("b1", 0, 8))


def test_offsets_of_many_findings_in_one_non_ascii_segment(shipped_ruleset: Ruleset) -> None:
    """Character offsets (not byte offsets) for every one of many hits in a text with multi-byte characters."""
    import random

    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    keys = ["AKIA" + "".join(rng.choice(alphabet) for _ in range(16)) for _ in range(300)]
    text = "".join(f"é→ 日本 key {k} ✓\n" for k in keys)
    findings = [f for f in shipped_ruleset.scan([TextSegment("doc", text)]) if f.rule_id == "aws-access-key-id"]
    assert sorted(text[f.start:f.end] for f in findings) == sorted(keys)
    assert sorted(f.start for f in findings) == sorted(text.index(k) for k in keys)


EDGE_PACK = """
pack: edges
version: 1
rules:
  - id: ends-in-space
    category: secret
    description: a value that needs white space after it
    pattern: 'zzkey[a-z0-9]{6}\\s'
    examples:
      match: ['zzkeyabc123 and more']
      no_match: ['zzkeyabc']
  - id: starts-the-text
    category: secret
    description: only at the very start of the scanned text
    pattern: '\\Azzfirst[0-9]{4}'
    examples:
      match: ['zzfirst1234']
      no_match: ['x zzfirst1234']
  - id: wide
    category: secret
    description: crosses anything, the separator too
    pattern: 'zzwide[\\s\\S]{0,4}'
    examples:
      match: ['zzwide']
      no_match: ['zzwid']
  - id: word-next
    category: secret
    description: three characters, then no word starts
    pattern: 'zzedge[\\s\\S]{3}\\B'
    examples:
      match: ['zzedge.,;']
      no_match: ['zzedge']
"""


def test_reused_findings_depend_on_what_surrounds_the_segment(tmp_path: Path) -> None:
    """A segment's findings are reused across scans only where the bytes around it are the same: a value needing
    white space after it is found when a separator follows, not at the end of the text; `\\A` only in the first."""
    from filter import shortcuts

    ruleset = load_ruleset([write_pack(tmp_path, EDGE_PACK)], Fingerprinter(b"k"))
    filler = "lorem ipsum dolor sit amet\n" * 30  # long enough to be cached
    a = TextSegment("a", "zzfirst1234 " + filler + "zzkeyabc123")
    b = TextSegment("b", filler + "zzwide")
    edge = TextSegment("edge", filler + "zzedge")
    space = TextSegment("space", " " + filler)
    orders = [[a, b], [b, a], [a], [b], [a, b, a], [b, TextSegment("e", ""), a], [b, a, TextSegment("c", "\n")],
              [edge, a], [edge, space], [edge, a, edge, space]]
    seen = set()
    for _ in range(2):  # the second round finds every segment in the cache
        for segments in orders:
            fast = ruleset.scan(segments)
            with shortcuts.plain():
                plain = ruleset.scan(segments)
            assert fast == plain, [s.location for s in segments]
            seen |= {(f.rule_id, f.location, f.end - f.start) for f in fast}
    assert ruleset.segment_cache.hits > 0
    key_ends = {size for rule, _, size in seen if rule == "ends-in-space"}
    assert key_ends == {len("zzkeyabc123") + 1}  # the separator's newline; at the very end there is no match
    assert {loc for rule, loc, _ in seen if rule == "starts-the-text"} == {"a"}
    assert {size for rule, _, size in seen if rule == "wide"} == {len("zzwide"), len("zzwide") + 3}
    # the separator, then the next segment's first byte decides: a word starts after it ("z") or not (" ")
    assert {loc for rule, loc, _ in seen if rule == "word-next"} == {"edge"}
    assert not any(f.rule_id == "word-next" for f in ruleset.scan([edge, a]))


def test_the_segment_cache_is_bounded_and_holds_no_text(tmp_path: Path) -> None:
    from filter.rules.segcache import SegmentCache

    token = "exm_4fJ9qLm2Xz8Rt6Vb1Nc3Kd7Hs5Gw0Pa2"
    ruleset = Ruleset(load_ruleset([write_pack(tmp_path, PACK)], Fingerprinter(b"k")).packs, Fingerprinter(b"k"),
                      segment_cache=SegmentCache(max_entries=3))
    for n in range(10):
        segments = [TextSegment(f"m{n}", f"turn {n}: {token} " + "padding text " * 50)]
        (f,) = ruleset.scan(segments)
        assert (f.rule_id, f.start) == ("exm-token", len(f"turn {n}: "))
    cache = ruleset.segment_cache
    assert len(cache) == 3
    entries = repr(list(cache._entries.items()))
    assert token not in entries and "padding" not in entries and "turn" not in entries
    assert cache.bytes > 0
    small = SegmentCache(max_bytes=16 * 200)  # an entry is estimated at 280 bytes or more: over a sixteenth of this
    small.put((1, 2, 1, True, b""), ())
    assert len(small) == 0 and small.bytes == 0


def test_keys_without_hash_randomisation_are_keyed_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    from filter import textcache

    monkeypatch.setattr(textcache, "_RANDOM_HASH", False)
    a, b = "x" * 600, "x" * 599 + "y"
    assert textcache.text_hash(a) == textcache.text_hash("x" * 600) != textcache.text_hash(b)
    assert textcache.texts_hash(["ab", "c"]) != textcache.texts_hash(["a", "bc"])
    assert textcache.text_hash(a)[0] != hash(a)
