"""Typed, cache-stable placeholders: `<EMAIL_1a2b3c4d>`, `<SECRET:github-pat_0f9e8d7c>`.

A placeholder is derived from a keyed HMAC of the value (the server's fingerprint key), never from the value
in clear, so the same value gets the same placeholder on every turn and every request of a scope (workspace):
a rewritten conversation prefix stays byte-identical and the provider's prompt cache keeps hitting. Without
the key a placeholder tells nothing about the value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from filter.model import Category

_PII_KINDS = (  # rule id prefix -> placeholder type, for the shipped pii pack and rules named like it
    ("email", "EMAIL"),
    ("phone", "PHONE"),
    ("us-ssn", "SSN"),
    ("ssn", "SSN"),
    ("payment-card", "CARD"),
    ("card", "CARD"),
    ("iban", "IBAN"),
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
HEX_DIGITS = 8  # 32 bits: collisions inside one request are refused (RewriteError), not guessed
# Every placeholder this module makes, and nothing else: what rehydration looks for.
PATTERN = re.compile(r"<(?:[A-Z]+|(?:SECRET|PII):[A-Za-z0-9_.-]+)_[0-9a-f]{" + str(HEX_DIGITS) + "}>")
MAX_LENGTH = 96  # rule ids are cut so a placeholder stays short (rehydration holds back at most this much)


def kind_of(rule_id: str, category: Category) -> str:
    """EMAIL, PHONE, SSN, CARD, IBAN for personal data the pii pack names; `SECRET:<rule-id>` for secrets and
    files; `PII:<rule-id>` for other personal-data rules."""
    if category is Category.PII:
        for prefix, kind in _PII_KINDS:
            if rule_id.startswith(prefix):
                return kind
        return "PII:" + _safe(rule_id)
    return "SECRET:" + _safe(rule_id)


def _safe(rule_id: str) -> str:
    return _UNSAFE.sub("-", rule_id)[:48] or "rule"


@dataclass(frozen=True, slots=True)
class Placeholders:
    """Makes placeholders under one key; `scope` (e.g. the workspace) keeps scopes' placeholders unlinkable."""

    key: bytes
    scope: str = ""

    def __repr__(self) -> str:  # never print the key
        return f"Placeholders(scope={self.scope!r})"

    def make(self, kind: str, value: str) -> str:
        message = b"\0".join((self.scope.encode(), kind.encode(), value.encode("utf-8", "surrogatepass")))
        digest = hmac.new(self.key, message, hashlib.sha256).hexdigest()[:HEX_DIGITS]
        return f"<{kind}_{digest}>"
