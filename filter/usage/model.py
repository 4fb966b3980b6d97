"""What a provider response cost, normalised across providers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one response used.

    `input_tokens` counts every prompt token the provider processed, cached ones included (OpenAI and Gemini
    report it that way; Anthropic and Bedrock report cache reads and writes apart, so they are added back).
    `cache_read_tokens` and `cache_write_tokens` are the parts of `input_tokens` read from / written to the
    provider's prompt cache. `output_tokens` includes reasoning ("thinking") tokens.
    `estimated`: the response carried no (final) usage, so the numbers are a local estimate: output from the
    streamed text, input from the provider's partial report or the filter's own prompt count.
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
