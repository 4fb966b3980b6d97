"""Findings from the real pipeline (shipped packs), and the rewrite of the same request."""

from __future__ import annotations

import json
import random
import string
import zlib
from functools import lru_cache
from typing import Any

from filter.model import Envelope, Finding
from filter.pipeline import Evaluation, evaluate
from filter.rewrite import Placeholders, Rewrite, rewrite
from filter.rules.validators import _base62
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.support.envelopes import make_envelope

KEY = b"rewrite-test-key"
PLACEHOLDERS = Placeholders(KEY, "ws-1")
RNG = random.Random(11)


@lru_cache(maxsize=1)
def _runtime() -> tuple[Runtime, TokenCounter]:
    settings = load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": KEY.decode()})
    return Runtime(None, settings, warn_random_key=False), TokenCounter(load_encoding())


def run(envelope: Envelope) -> Evaluation:
    runtime, counter = _runtime()
    return evaluate(envelope, runtime.current, counter)


def findings_of(envelope: Envelope) -> tuple[Finding, ...]:
    return run(envelope).decision.findings


def redact(body: Any, path: str = "/v1/chat/completions", headers: dict[str, str] | None = None) -> tuple[Envelope, Rewrite]:
    """The request as the client sent it, and its rewrite with every finding replaced."""
    envelope = make_envelope(body, path, headers)
    evaluation = run(envelope)
    assert evaluation.parsed is not None
    assert evaluation.decision.findings, "the request should have findings"
    runtime, _ = _runtime()
    out = rewrite(envelope, evaluation.parsed, evaluation.decision.findings, PLACEHOLDERS,
                  rules=runtime.current.ruleset)
    return envelope, out


def github_token() -> str:
    body = "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + _base62(zlib.crc32(body.encode()), 6)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def assert_only_spans_changed(original: bytes, rewritten: bytes, replaced: dict[str, str]) -> list[str]:
    """The rewritten body is the original with some spans replaced by placeholders, nothing else: every byte
    between placeholders is as sent, and each replaced span is the placeholder's value as it was encoded in the
    body (as sent, JSON-escaped once, or twice inside JSON text). Returns the placeholders in body order."""
    import re

    from filter.rewrite.placeholders import PATTERN

    text, new = original.decode(), rewritten.decode()
    pieces = PATTERN.split(new)
    found = PATTERN.findall(new)
    assert found, "nothing was replaced"
    rx = "(.+?)".join(re.escape(p) for p in pieces)
    m = re.fullmatch(rx, text, re.DOTALL)
    assert m is not None, "bytes outside the placeholders changed"
    for placeholder, sent in zip(found, m.groups(), strict=True):
        value = replaced[placeholder]
        readings = [sent]
        for _ in range(2):
            try:
                readings.append(json.loads(f'"{readings[-1]}"'))
            except ValueError:
                break
        assert value in readings, f"{placeholder} does not stand for the text it replaced"
    return found
