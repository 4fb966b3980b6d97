"""Frozen values that cross module boundaries.

Data flows one way: Envelope -> ParsedRequest -> Finding -> Decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Category(StrEnum):
    SECRET = "secret"
    PII = "pii"
    FILE = "file"


class Action(StrEnum):
    BLOCK = "block"
    REDACT = "redact"
    LOG = "log"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Mode(StrEnum):
    ENFORCE = "enforce"
    SHADOW = "shadow"


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What Envoy told us about one HTTP request, body still encoded."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    partial: bool = False

    @property
    def content_encoding(self) -> str:
        return self.headers.get("content-encoding", "").strip().lower()


@dataclass(frozen=True, slots=True)
class TextSegment:
    """One piece of text the provider will read, and where it sits in the request."""

    location: str  # e.g. "messages[3].content[1].text"
    text: str


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    provider: str  # openai | anthropic | gemini | bedrock | azure | mistral | groq | raw
    api: str  # e.g. "openai.chat", "anthropic.messages", "raw"
    model: str | None
    segments: tuple[TextSegment, ...]
    max_output_tokens: int | None = None
    image_count: int = 0
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule hit. Never carries the matched text: only where it is and a keyed fingerprint."""

    rule_id: str
    category: Category
    action: Action
    severity: Severity
    mode: Mode
    location: str
    start: int  # character offsets inside the segment text
    end: int
    fingerprint: str
    description: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule_id,
            "category": self.category.value,
            "action": self.action.value,
            "severity": self.severity.value,
            "mode": self.mode.value,
            "location": self.location,
            "start": self.start,
            "end": self.end,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Identity:
    workspace: str | None = None
    team: str | None = None
    project: str | None = None
    agent: str | None = None
    source: str = "none"  # jwt | headers | none


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    http_status: int  # 200 for allow
    reason: str  # snake_case reason code shared by logs, metrics and deny bodies
    message: str  # safe to show to the user: never quotes the body
    decision_id: str
    provider: str = "unknown"
    api: str = "unknown"
    model: str | None = None
    findings: tuple[Finding, ...] = ()
    prompt_tokens: int | None = None
    body_bytes: int = 0
    pack_digest: str = ""
    identity: Identity = field(default_factory=Identity)
    headers: Mapping[str, str] = field(default_factory=dict)  # extra response/request headers

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW
