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
    # allowed once rewritten: the gateway's rewriter replaces the found values in the body with placeholders
    REWRITE = "rewrite"


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
class Piece:
    """A stretch of a derived text (decoded, normalised, joined) and the original text it came from.

    `marks` map derived to original offsets piecewise linearly: (derived offset inside the piece, original
    offset) pairs, sorted, the first at 0; between marks offsets advance together. Without marks the piece is
    opaque (base64, JSON re-encoding): any hit in it stands for the whole original span.
    """

    at: int  # first index of the piece in the derived text
    length: int
    location: str  # the original segment
    start: int  # span of the original segment's text the piece came from
    end: int
    marks: tuple[tuple[int, int], ...] = ()

    def original(self, offset: int) -> int:
        """Original index of the derived character `offset` (relative to the piece)."""
        if not self.marks:
            return self.start
        lo, hi = 0, len(self.marks)
        while hi - lo > 1:  # last mark at or before offset
            mid = (lo + hi) // 2
            if self.marks[mid][0] <= offset:
                lo = mid
            else:
                hi = mid
        derived, original = self.marks[lo]
        return original + offset - derived

    def original_end(self, offset: int) -> int:
        """Original index just past the derived character before `offset` (an exclusive end, relative)."""
        if not self.marks or offset >= self.length:
            return self.end
        return max(self.original(offset - 1) + 1, self.original(offset)) if offset > 0 else self.start


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a derived segment's text came from; findings in it are reported at the original text."""

    pieces: tuple[Piece, ...]  # sorted by `at`; text between pieces (separators) maps nowhere
    across: bool = False  # only findings spanning pieces of different segments are new (joined text blocks)


@dataclass(frozen=True, slots=True)
class TextSegment:
    """One piece of text the provider will read, and where it sits in the request.

    A derived segment (percent-decoded, normalised, base64-decoded or joined copy of others) has an `origin`:
    the engine reports its findings at the original segments' locations and offsets. `decoded` names the
    transform that produced the text ("" for text as sent).
    """

    location: str  # e.g. "messages[3].content[1].text"
    text: str
    decoded: str = ""  # "", "percent", "json", "unicode", "base64", "joined", "pdf", "document"
    origin: Origin | None = None


ROAD_LOCATIONS = ("path", "query.", "query[", "headers.", "headers[")  # request parts outside the body


def is_road(location: str) -> bool:
    """A location outside the body: the URL path, a query parameter or a header (or a decoded copy of one)."""
    return location.startswith(ROAD_LOCATIONS)


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    provider: str  # openai | anthropic | gemini | bedrock | azure | mistral | groq | raw
    api: str  # e.g. "openai.chat", "anthropic.messages", "raw"
    model: str | None
    segments: tuple[TextSegment, ...]  # everything scanned: body text, path/query/headers, derived copies
    max_output_tokens: int | None = None
    image_count: int = 0
    stream: bool = False

    def prompt_segments(self) -> tuple[TextSegment, ...]:
        """The body text as sent, the model's prompt: no derived copies (they repeat it), no path, query or
        headers. What token counts and prompt logs should read."""
        return tuple(s for s in self.segments if s.origin is None and not is_road(s.location))


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
    decoded: str = ""  # how the value was found: "" as sent, or "percent", "unicode", "base64", "pdf", ...
    # The value continues in the next segments (text blocks the provider joins): their (location, start, end).
    also: tuple[tuple[str, int, int], ...] = ()

    def spans(self) -> tuple[tuple[str, int, int], ...]:
        """Every (location, start, end) the value covers: masking all of them hides it."""
        return ((self.location, self.start, self.end), *self.also)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
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
        if self.decoded:
            out["decoded"] = self.decoded
        if self.also:
            out["also"] = [{"location": loc, "start": start, "end": end} for loc, start, end in self.also]
        return out


@dataclass(frozen=True, slots=True)
class Identity:
    workspace: str | None = None
    team: str | None = None
    project: str | None = None
    agent: str | None = None
    source: str = "none"  # jwt | headers | none


@dataclass(frozen=True, slots=True)
class RequestEdits:
    """What the gateway changes on an allowed request on its way upstream, besides its own headers: the in-region
    upstream (filter/residency.py) and a team's provider key (filter/credentials.py). `set_headers` may carry a key:
    it is never shown (repr) and only the CheckResponse holds it."""

    region: str | None = None  # the chosen upstream's region; None: the route's own cluster
    set_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    remove_headers: tuple[str, ...] = ()
    remove_query: tuple[str, ...] = ()  # query parameters removed (a client's `?key=`)
    key_injected: bool = False  # the provider key is the gateway's (the scope's credentials)


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
    # USD per million tokens (input, output) of the USD reservation made for it; None: none was made
    usd_price: tuple[float, float] | None = None
    edits: RequestEdits = field(default_factory=RequestEdits)  # on allow: upstream region, provider key

    @property
    def allowed(self) -> bool:
        """Forwarded (as sent, or rewritten): budgets are reserved and usage is observed for both."""
        return self.verdict is not Verdict.DENY

    @property
    def rewrite(self) -> bool:
        return self.verdict is Verdict.REWRITE
