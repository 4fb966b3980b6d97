"""Redaction: request bodies rewritten with placeholders, and the originals put back into responses.

    rewrite       (body.py)        findings' spans -> typed, cache-stable placeholders; the body otherwise as sent
    Placeholders  (placeholders.py) `<EMAIL_1a2b3c4d>` from a keyed HMAC of the value
    Rehydrator    (rehydrate.py)   streaming: JSON, SSE, JSON-array streams and Bedrock event streams
    RewriteError                   anything that cannot be done safely: the caller denies
"""

from filter.rewrite.body import Rewrite, rewrite
from filter.rewrite.errors import RewriteError
from filter.rewrite.placeholders import Placeholders, kind_of
from filter.rewrite.rehydrate import (
    EventStreamRehydrator,
    Rehydrator,
    SseRehydrator,
    TextRehydrator,
    rehydrator_for,
)

__all__ = [
    "EventStreamRehydrator",
    "Placeholders",
    "Rehydrator",
    "Rewrite",
    "RewriteError",
    "SseRehydrator",
    "TextRehydrator",
    "kind_of",
    "rehydrator_for",
    "rewrite",
]
