"""Decoding limits: each one, when passed, is a clear 4xx."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_body_bytes: int = 16 * 1024 * 1024  # as received (still encoded) -> 413
    max_decompressed_bytes: int = 64 * 1024 * 1024  # after each Content-Encoding layer -> 413
    max_compression_ratio: int = 200  # decoded : received, checked once past 1 MiB -> 413
    max_json_depth: int = 64  # nesting of objects and arrays -> 400
    max_base64_document_bytes: int = 8 * 1024 * 1024  # one decoded base64 text document -> 413
