"""The rule engine: every rule in one Hyperscan database, hits confirmed backwards from their end.

Hyperscan reports end offsets only (no SOM: it is ~3x slower and refuses many patterns). For each
hit, the rule's own pattern is run in reverse (`regex`, REVERSE) anchored at that end to recover the
start and the `secret` group; then keywords, validators, placeholder and allow checks decide whether
it is a Finding. The matched text never leaves this module: a Finding carries a keyed fingerprint.

Findings in derived segments (decoded, normalised or joined copies, see `TextSegment.origin`) are mapped back
to the original segment's location and offsets, so masking the original text by finding spans hides the
value. One value is one finding: the same hit found in the original and a derived copy is reported once, and
a looser rule over exactly the span of a stricter finding (higher severity, same category, enforced at least
as hard) is dropped: a verified `ghp_` token is `github-pat`, not also `github-token-unverified`.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import hyperscan
import regex

from filter import shortcuts
from filter.errors import RulePackError
from filter.formats.limits import check_work
from filter.model import Action, Finding, Mode, Origin, Severity, TextSegment
from filter.rules.dbcache import DatabaseCache, compile_cached
from filter.rules.pack import Rule, RulePack
from filter.rules.segcache import RelativeFinding, SegmentCache, SegmentFindings, SegmentKey
from filter.rules.validators import not_placeholder

# The gateway's own redaction placeholders (filter.rewrite.placeholders.PATTERN, repeated here: that package imports
# this one): `<SECRET:github-pat_1a2b3c4d>` stands for a value, it is none. A rewritten conversation sends them
# again every turn, and a model echoes them; they must not read as `password = <...>` secrets.
REDACTION_PLACEHOLDER = regex.compile(rb"<(?:[A-Z]+|(?:SECRET|PII):[A-Za-z0-9_.-]+)_[0-9a-f]{8}>")
_PLACEHOLDER_REACH = 128  # longer than any placeholder (filter.rewrite.placeholders.MAX_LENGTH)


def in_redaction_placeholder(buf: bytes, start: int, end: int, value: bytes, lo: int, hi: int) -> bool:
    """Is the match buf[start:end] with this value (a rule's secret group) part of a redaction placeholder?
    `lo`, `hi`: the segment's bounds in `buf`."""
    for m in REDACTION_PLACEHOLDER.finditer(buf, max(lo, start - _PLACEHOLDER_REACH), min(hi, end + _PLACEHOLDER_REACH)):
        if m.start() < end and start < m.end() and value in m.group(0):
            return True
    return False

SEPARATOR = b"\n\x00\n"  # between segments: no token pattern spans a NUL between newlines
# What a segment's findings can depend on after its text: a match may end inside the separator, and Hyperscan's
# assertions at its end (`$`, `\b`, `\B`) read the next byte.
_TAIL = len(SEPARATOR) + 1


@dataclass(frozen=True, slots=True)
class _Candidate:
    rule: Rule
    segment: int
    start: int  # byte offsets in the joined buffer
    end: int
    value: bytes
    before: bytes  # the matched text before the value: the name and the assignment


class _ScanState:
    """One scan's buffer and segment table; lower-cased segments are made once, on demand."""

    def __init__(self, buf: bytes, starts: list[int], segments: Sequence[TextSegment], encoded: list[bytes]) -> None:
        self.buf = buf
        self.starts = starts
        self.segments = segments
        self.encoded = encoded
        self._lowered: dict[int, bytes] = {}
        self._marks: dict[int, tuple[list[int], list[int]]] = {}  # segment -> (byte offsets, char offsets)

    def lowered(self, segment: int) -> bytes:
        if segment not in self._lowered:
            self._lowered[segment] = self.encoded[segment].lower()
        return self._lowered[segment]

    def char_offset(self, segment: int, byte_offset: int) -> int:
        """Character offset of a byte offset inside a segment. ASCII segments map 1:1; otherwise the count starts
        from the nearest earlier offset already mapped, so many findings in one large segment cost O(n), not O(n²)."""
        text = self.encoded[segment]
        if len(text) == len(self.segments[segment].text):
            return byte_offset
        marks = self._marks.setdefault(segment, ([0], [0]))
        i = bisect.bisect_right(marks[0], byte_offset) - 1
        base_byte, base_char = marks[0][i], marks[1][i]
        chars = base_char + len(text[base_byte:byte_offset].decode("utf-8", "replace"))
        if byte_offset < len(text) and text[byte_offset] & 0xC0 != 0x80:  # a character boundary: reusable
            marks[0].insert(i + 1, byte_offset)
            marks[1].insert(i + 1, chars)
        return chars


class Fingerprinter:
    """HMAC-SHA256 of a value under the deployment key: stable, comparable, not reversible."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, value: bytes) -> str:
        return "hmac-sha256:" + hmac.new(self._key, value, hashlib.sha256).hexdigest()[:32]


class Ruleset:
    """Rules from one or more packs, compiled once; `scan` is safe to call from many threads."""

    def __init__(
        self,
        packs: Sequence[RulePack],
        fingerprint: Fingerprinter,
        known_fingerprints: frozenset[str] = frozenset(),
        cache: DatabaseCache | None = None,
        segment_cache: SegmentCache | None = None,
    ) -> None:
        self.packs = tuple(packs)
        self.rules: tuple[Rule, ...] = tuple(r for p in packs for r in p.rules)
        self._check_unique_ids()
        self.digest = hashlib.sha256("".join(p.digest for p in packs).encode()).hexdigest()[:16]
        self._fingerprint = fingerprint
        self._known = known_fingerprints
        self._confirm = [
            regex.compile(r.pattern.encode(), regex.MULTILINE | regex.REVERSE) for r in self.rules
        ]
        self._db = compile_cached(self.rules, _compile, cache)  # a start with unchanged rules skips the compile
        self._scratch_proto = hyperscan.Scratch(self._db)
        self._local = threading.local()
        # Findings per segment text, for this rule set only (a reload builds a new Ruleset, so a new cache).
        self.segment_cache = segment_cache if segment_cache is not None else SegmentCache()

    def _check_unique_ids(self) -> None:
        seen: dict[str, Rule] = {}
        for rule in self.rules:
            if rule.id in seen:
                first = seen[rule.id]
                raise rule.error(f"duplicate rule id (also in {first.file}:{first.line})")
            seen[rule.id] = rule

    def _scratch(self) -> hyperscan.Scratch:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._scratch_proto.clone()
        return scratch

    def scan(self, segments: Sequence[TextSegment], *, each_rule: bool = False) -> tuple[Finding, ...]:
        """Findings in `segments`, one per value; `each_rule` keeps looser rules under a stricter finding too
        (pack example checks test each rule on its own)."""
        if not segments:
            return ()
        if shortcuts.enabled():
            return self._scan_cached(segments, each_rule)
        return self._scan_joined(segments, each_rule)

    def _scan_joined(self, segments: Sequence[TextSegment], each_rule: bool = False) -> tuple[Finding, ...]:
        """The plain scan: every segment in one buffer, one Hyperscan call."""
        encoded = [s.text.encode("utf-8", "surrogatepass") for s in segments]
        buf = SEPARATOR.join(encoded)
        starts: list[int] = []
        pos = 0
        for chunk in encoded:
            starts.append(pos)
            pos += len(chunk) + len(SEPARATOR)
        ends: dict[int, list[int]] = defaultdict(list)

        def on_match(rule_index: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            ends[rule_index].append(to)

        self._db.scan(buf, match_event_handler=on_match, scratch=self._scratch())
        check_work("rule scan")  # the Check's CPU time and Envoy's deadline (filter.formats.limits)
        if not ends:
            return ()
        scan = _ScanState(buf, starts, segments, encoded)
        return _merged(((finding, segments[segment]) for rule_index, rule_ends in ends.items()
                        for finding, segment in self._rule_findings(rule_index, rule_ends, scan)), each_rule)

    def _rule_findings(
        self, rule_index: int, rule_ends: list[int], scan: _ScanState, limits: list[int] | None = None
    ) -> Iterable[tuple[Finding, int]]:
        """Confirm one rule's end offsets right to left. A confirmed match covers the ends inside it even when
        judged not a finding: those are truncations of the same value (as in gitleaks' non-overlapping matches).
        `limits`: per segment, the last end offset that belongs to it (the cached scan's buffer has filler
        after each segment's tail: ends there belong to no segment)."""
        rule = self.rules[rule_index]
        rx = self._confirm[rule_index]
        covered_from = -1  # start of the last accepted match: ends at or after it are inside it
        for n, end in enumerate(sorted(set(rule_ends), reverse=True)):
            if n & 15 == 15:  # each confirmation costs tens of microseconds or more
                check_work("confirming rule matches")  # a body can hold hundreds of thousands of candidates
            if covered_from != -1 and end >= covered_from:
                continue
            segment = bisect.bisect_right(scan.starts, max(end - 1, 0)) - 1
            if limits is not None and end > limits[segment]:
                continue
            lo = max(scan.starts[segment], end - rule.max_length)
            m = rx.search(scan.buf, lo, end)
            if m is None or m.end() != end or m.start() == m.end():
                continue
            covered_from = m.start()
            has_secret = "secret" in rx.groupindex and m.group("secret")
            value = m.group("secret") if has_secret else m.group(0)
            before = _name_before(scan.buf, max(scan.starts[segment], m.start() - 48), m.start(),
                                  m.start("secret")) if has_secret else b""
            finding = self._judge(_Candidate(rule, segment, m.start(), m.end(), value, before), scan)
            if finding is not None:
                yield finding, segment

    def _judge(self, c: _Candidate, scan: _ScanState) -> Finding | None:
        rule = c.rule
        fingerprint = self._fingerprint(c.value)
        severity = rule.severity
        if fingerprint in self._known:
            severity = Severity.CRITICAL  # the org's real key or canary: no validator may drop it
        else:
            value = c.value.decode("utf-8", "replace")
            if rule.keywords and not _keyword_near(rule, scan.lowered(c.segment), c.start - scan.starts[c.segment],
                                                   c.end - scan.starts[c.segment]):
                return None
            if rule.placeholder_check and not not_placeholder(value):
                return None
            seg_end = scan.starts[c.segment] + len(scan.encoded[c.segment])
            if in_redaction_placeholder(scan.buf, c.start, c.end, c.value, scan.starts[c.segment], seg_end):
                return None
            if value in rule.allow_values or any(p.search(value) for p in rule.allow_patterns):
                return None
            if rule.allow_names and _names_allowed(rule, c.before):
                return None
            if not all(check(value) for _, check in rule.validators):
                return None
        seg_start = scan.starts[c.segment]
        start = scan.char_offset(c.segment, c.start - seg_start)
        end = start + len(scan.buf[c.start : c.end].decode("utf-8", "replace"))
        return _finding(rule, severity, scan.segments[c.segment], start, end, fingerprint)

    # -- the same scan, reusing per-segment findings (filter.shortcuts; tests/test_differential.py) ----------
    def _scan_cached(self, segments: Sequence[TextSegment], each_rule: bool) -> tuple[Finding, ...]:
        """`scan` with the findings of each unit (a large segment, or a run of short ones: segcache.py) looked up by
        its texts and surroundings. The plain scan's findings of a segment depend only on the bytes from the one
        before it to the byte after the separator that follows it (confirmation and every check stay inside the
        segment, see `_rule_findings`); the segments not found are scanned in one buffer that repeats exactly
        those bytes around each run of them.
        Findings are then merged in the plain scan's order: per rule, last segment first, ends right to left
        (the de-duplication below keeps the first of equals)."""
        cache = self.segment_cache
        n = len(segments)
        units: list[tuple[int, int]] = []  # [first, last) segment indices
        i = 0
        while i < n:
            j = i + 1
            if len(segments[i].text) < cache.min_chars:
                while j < n and len(segments[j].text) < cache.min_chars:
                    j += 1
            units.append((i, j))
            i = j
        keys: list[SegmentKey] = [
            cache.key([s.text for s in segments[a:z]], a == 0, _tail(segments, z - 1)) for a, z in units]
        cached = cache.get_many(keys)
        found: list[SegmentFindings] = [()] * n
        todo: list[int] = []
        for (a, z), unit in zip(units, cached, strict=True):
            if unit is None:
                todo += range(a, z)
            else:
                found[a:z] = unit
        if todo:
            scanned = self._scan_alone(segments, todo)
            for i in todo:
                found[i] = scanned[i]
            cache.put_many((key, tuple(found[a:z])) for (a, z), key, unit in zip(units, keys, cached, strict=True)
                           if unit is None)
        by_rule: dict[int, list[tuple[int, RelativeFinding]]] = defaultdict(list)
        for i in range(n - 1, -1, -1):
            for rel in found[i]:
                by_rule[rel.rule].append((i, rel))
        return _merged(((_finding(self.rules[rel.rule], rel.severity, segments[i], rel.start, rel.end, rel.fingerprint),
                         segments[i]) for hits in by_rule.values() for i, rel in hits), each_rule)

    def _scan_alone(self, segments: Sequence[TextSegment], todo: list[int]) -> dict[int, SegmentFindings]:
        """Findings of segments[i] for i in `todo`, at offsets inside each, as the plain joined scan finds them.
        Runs of consecutive segments are laid out as there; a run starts after the byte that precedes it there
        ("\n", or nothing for the first segment) and ends with the bytes that follow it there (`_tail`); ends
        past those bytes are filler and belong to no segment."""
        parts: list[bytes] = []
        starts: list[int] = []
        limits: list[int] = []
        encoded: list[bytes] = []
        pos = 0
        for k, i in enumerate(todo):
            data = segments[i].text.encode("utf-8", "surrogatepass")
            if k == 0 or todo[k - 1] != i - 1:  # a run starts
                lead = b"" if i == 0 else b"\n"
                parts.append(lead)
                pos += len(lead)
            else:
                parts.append(SEPARATOR)
                pos += len(SEPARATOR)
            starts.append(pos)
            encoded.append(data)
            parts.append(data)
            pos += len(data)
            if k + 1 == len(todo) or todo[k + 1] != i + 1:  # the run ends
                tail = _tail(segments, i)
                parts.append(tail)
                limits.append(pos + min(len(tail), len(SEPARATOR)))
                pos += len(tail)
            else:
                limits.append(pos + len(SEPARATOR))
        buf = b"".join(parts)
        ends: dict[int, list[int]] = defaultdict(list)

        def on_match(rule_index: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            ends[rule_index].append(to)

        self._db.scan(buf, match_event_handler=on_match, scratch=self._scratch())
        check_work("rule scan")
        out: dict[int, list[RelativeFinding]] = {i: [] for i in todo}
        if ends:
            scan = _ScanState(buf, starts, [segments[i] for i in todo], encoded)
            for rule_index, rule_ends in ends.items():
                for finding, k in self._rule_findings(rule_index, rule_ends, scan, limits):
                    out[todo[k]].append(RelativeFinding(rule_index, finding.start, finding.end, finding.fingerprint,
                                                        finding.severity))
        return {i: tuple(v) for i, v in out.items()}

    def check_examples(self) -> list[RulePackError]:
        """Every rule's match examples must hit it and no_match examples must not; each failure is reported at
        the example's line and says which check decided."""
        errors: list[RulePackError] = []
        for rule in self.rules:
            for i, text in enumerate(rule.examples.match):
                # joined scan: examples are not conversation text, they would only fill the segment cache
                if not any(f.rule_id == rule.id for f in self._scan_joined([TextSegment("example", text)], True)):
                    errors.append(rule.error_at(
                        f"examples.match.{i}", f"example does not match: {_shorten(text)!r} ({self.why_missed(rule, text)})"))
            for i, text in enumerate(rule.examples.no_match):
                if any(f.rule_id == rule.id for f in self._scan_joined([TextSegment("example", text)], True)):
                    errors.append(rule.error_at(f"examples.no_match.{i}", f"no_match example matches: {_shorten(text)!r}"))
        return errors

    def why_missed(self, rule: Rule, text: str) -> str:
        """Which check kept `rule` from reporting `text`: the regex, a keyword, the placeholder filter, an allowlist
        entry or a validator (the first that drops the leftmost match, in the order `_judge` applies them)."""
        rx = regex.compile(rule.pattern, regex.MULTILINE)
        matches = [m for m in rx.finditer(text, overlapped=True) if m.end() > m.start()]
        if not matches:
            return "regex did not match"
        m = matches[0]
        value = m.group("secret") if "secret" in rx.groupindex and m.group("secret") else m.group(0)
        if len(m.group(0).encode()) > rule.max_length:
            return f"match longer than max_length {rule.max_length}"
        raw = text.encode("utf-8", "surrogatepass")
        start = len(text[: m.start()].encode("utf-8", "surrogatepass"))
        if rule.keywords and not _keyword_near(rule, raw.lower(), start, start + len(m.group(0).encode())):
            far = any(k.encode() in raw.lower() for k in rule.keywords)
            where = f" within {rule.keyword_window} bytes of the match" if far else ""
            return f"keyword missing (one of: {', '.join(rule.keywords)}){where}"
        if rule.placeholder_check and not not_placeholder(value):
            return "placeholder filter: the value looks like a placeholder"
        if in_redaction_placeholder(text.encode(), m.start(), m.end(), value.encode(), 0, len(text.encode())):
            return "the value is one of the gateway's redaction placeholders"
        if value in rule.allow_values:
            return f"allowlist entry {_shorten(value)!r}"
        for p in rule.allow_patterns:
            if p.search(value):
                return f"allowlist entry {{pattern: {p.pattern!r}}}"
        named = "secret" in rx.groupindex and m.group("secret")
        raw_before = _name_before(raw, max(0, start - 48), start, len(text[: m.start("secret")].encode())) if named else b""
        if rule.allow_names and named and _names_allowed(rule, raw_before):
            return f"allow_names: the name is one of {', '.join(rule.allow_names)}"
        for name, check in rule.validators:
            if not check(value):
                return f"validator {name} rejected the value"
        return "the engine reports no match ending there (a longer overlapping match covers it)"


_IDENT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _name_before(buf: bytes, lo: int, start: int, value_start: int) -> bytes:
    """The text before a value that names it: the match up to the value, and the start of the identifier the
    match began inside (`nextPage` of `nextPageToken`, `X-CSRF` of `X-CSRF-Token`)."""
    if start >= len(buf) or buf[start] not in _IDENT_BYTES:
        return buf[start:value_start]  # the match starts on a separator: the identifier starts with it
    lead = buf[lo:start]
    n = len(lead)
    while n and lead[n - 1] in _IDENT_BYTES:
        n -= 1
    return lead[n:] + buf[start:value_start]


def _names_allowed(rule: Rule, before: bytes) -> bool:
    lowered = before.lower()
    return any(n.encode() in lowered for n in rule.allow_names)


def _keyword_near(rule: Rule, lowered: bytes, start: int, end: int) -> bool:
    """One of the rule's keywords within `keyword_window` bytes either side of the match [start, end) of the
    lower-cased segment (anywhere in it when the window is 0)."""
    w = rule.keyword_window
    near = lowered if w == 0 else lowered[max(0, start - w) : end + w]
    return any(k.encode() in near for k in rule.keywords)


def _map_back(f: Finding, origin: Origin) -> Finding | None:
    """The finding at the original text: first covered segment's location and offsets, the others in `also`.

    None when it lies in separators between pieces, or (joined text blocks) inside one block, where the
    block's own segment already reports it."""
    pieces = origin.pieces
    ats = [p.at for p in pieces]
    first = bisect.bisect_right(ats, f.start) - 1
    if first < 0 or f.start >= pieces[first].at + pieces[first].length:
        first += 1  # starts in a separator: the next piece
    last = bisect.bisect_right(ats, max(f.end - 1, f.start)) - 1
    if first >= len(pieces) or last < first:
        return None
    spans: dict[str, list[int]] = {}
    for i in range(first, last + 1):
        p = pieces[i]
        lo = p.original(f.start - p.at) if i == first else p.start
        hi = p.original_end(f.end - p.at) if i == last and f.end - p.at < p.length else p.end
        span = spans.get(p.location)
        if span is None:
            spans[p.location] = [lo, hi]
        else:
            span[0], span[1] = min(span[0], lo), max(span[1], hi)
    if origin.across and len(spans) < 2:
        return None
    (location, (start, end)), *rest = spans.items()
    return replace(f, location=location, start=start, end=end, also=tuple((loc, a, b) for loc, (a, b) in rest))


_MODE_RANK = {Mode.SHADOW: 0, Mode.ENFORCE: 1}
_ACTION_RANK = {Action.LOG: 0, Action.REDACT: 1, Action.BLOCK: 2}
_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


def _drop_looser(findings: Iterable[Finding]) -> list[Finding]:
    """Drop a finding when a stricter one has exactly its span (same location and category, higher severity,
    mode and action at least as strong): a looser rule confirmed the same value. Findings with different spans
    (a key-name assignment around a token) are different evidence and stay."""
    groups: dict[tuple[str, int, int, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.location, f.start, f.end, f.category.value), []).append(f)
    kept: list[Finding] = []
    for group in groups.values():
        if len(group) == 1:
            kept.extend(group)
            continue
        for f in group:
            if not any(_stricter(g, f) for g in group):
                kept.append(f)
    return kept


def _stricter(a: Finding, b: Finding) -> bool:
    return (
        _SEVERITY_RANK[a.severity] > _SEVERITY_RANK[b.severity]
        and _MODE_RANK[a.mode] >= _MODE_RANK[b.mode]
        and _ACTION_RANK[a.action] >= _ACTION_RANK[b.action]
    )


def _merged(found: Iterable[tuple[Finding, TextSegment]], each_rule: bool) -> tuple[Finding, ...]:
    """Findings at the original text (derived copies mapped back), one per rule and place, looser rules dropped
    unless `each_rule`; sorted. The first of equal findings in `found`'s order is kept."""
    findings: dict[tuple[str, int, str], Finding] = {}
    for finding, segment in found:
        mapped = finding if segment.origin is None else _map_back(finding, segment.origin)
        if mapped is None:
            continue
        key = (mapped.rule_id, mapped.start, mapped.location)
        seen = findings.get(key)
        # as sent beats a derived copy, unless the copy saw the value go on into the next text block
        if seen is None or (seen.decoded and not mapped.decoded and not seen.also):
            findings[key] = mapped
    kept = findings.values() if each_rule else _drop_looser(findings.values())
    return tuple(sorted(kept, key=lambda f: (f.location, f.start, f.rule_id)))


def _finding(rule: Rule, severity: Severity, segment: TextSegment, start: int, end: int, fingerprint: str) -> Finding:
    return Finding(
        rule_id=rule.id,
        category=rule.category,
        action=rule.action,
        severity=severity,
        mode=rule.mode if severity is not Severity.CRITICAL else Mode.ENFORCE,
        location=segment.location,
        start=start,
        end=end,
        fingerprint=fingerprint,
        description=rule.description,
        decoded=segment.decoded,
    )


def _tail(segments: Sequence[TextSegment], i: int) -> bytes:
    """The bytes after segments[i] in the plain scan's buffer that its findings can depend on (`_TAIL` of them):
    the separator and the next segment's first byte, fewer at the end of the buffer."""
    out = b""
    for j in range(i + 1, len(segments)):
        out += SEPARATOR + segments[j].text[:1].encode("utf-8", "surrogatepass")
        if len(out) >= _TAIL:
            return out[:_TAIL]
    return out


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compile(rules: Sequence[Rule]) -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    if not rules:
        rules = ()
    # Longest patterns first: Hyperscan's database for the shipped packs scans 30-50 % faster in this order than in
    # pack order (measured, tests/bench); the ids keep naming the rules in pack order.
    order = sorted(range(len(rules)), key=lambda i: (-len(rules[i].pattern), i))
    try:
        db.compile(
            expressions=[rules[i].pattern.encode() for i in order],
            ids=order,
            flags=[hyperscan.HS_FLAG_MULTILINE] * len(rules),
        )
        return db
    except hyperscan.error as e:
        # Compile each rule alone to name the one Hyperscan refuses.
        for rule in rules:
            try:
                hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
                    expressions=[rule.pattern.encode()], flags=[hyperscan.HS_FLAG_MULTILINE]
                )
            except hyperscan.error as one:
                raise rule.error(f"Hyperscan cannot compile pattern: {_hs_message(one)}") from None
        raise RulePackError(rules[0].file, 0, "-", f"Hyperscan cannot compile the rule set: {_hs_message(e)}") from None


def _hs_message(e: Exception) -> str:
    text = str(e.args[0] if e.args else e)
    return text.decode() if isinstance(text, bytes) else text
