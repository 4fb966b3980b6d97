"""Walker: collects the text segments of one request, with locations, while a decoder visits it.

Locations use the request's own field names and indices: `messages[3].content[1].text`. A generic walk
(`Walker.value`) covers every string of any shape; decoders call it for every key they do not handle
themselves, so a field nobody anticipated is still scanned. Raw mode (unknown APIs) roots locations at `$`.
Keys are scanned too: long or unusual ones as `<object location>#keys`, short field-like ones pooled once
each into a document-wide `#keys`. Keys that look like they could be secrets are never spelled in
locations: they appear as `[#i]`, the member's position in its object.
"""

from __future__ import annotations

import codecs
import json
import mimetypes
import re
from typing import Any
from urllib.parse import unquote

from filter import shortcuts
from filter.errors import BodyTooLarge
from filter.formats.derive import b64decode, json_unescaped
from filter.formats.jsonload import UNSURE, charge_json, depth_exceeds, fast_loads, keep_duplicates, too_deep
from filter.formats.limits import DecodeLimits
from filter.formats.pdf import PDF_MAX_BYTES, looks_like_pdf, pdf_text
from filter.model import TextSegment

JSON = Any


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PLAIN_KEY = re.compile(r"[A-Za-z_$@][A-Za-z0-9_\-]{0,39}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=_\-\s]*")
_MAX_NESTED_JSON = 4  # JSON-in-JSON levels expanded
_MAX_NESTED_CHARS = 4 * 1024 * 1024
_BIG_INT = 10**8  # integers this large may be card, phone or account numbers
_SNIFF_CHARS = 8192  # base64 characters decoded to tell a large unknown-type document's kind
_SHORT_KEY = 16  # shorter field-like keys cannot hold the credentials and PII the packs look for
_CONTAINERS = (str, dict, list)

# Values of enum-like fields that cannot carry a secret; skipped in decoder walks to keep segments few.
_BENIGN = _words(
    "user assistant system developer tool function model text image image_url input_text output_text "
    "input_image input_file input_audio tool_use tool_result thinking document message auto none any "
    "required ephemeral base64 object string number integer boolean array null json_schema json_object "
    "function_call function_call_output low high medium completed in_progress incomplete image/png image/jpeg "
    "image/gif image/webp application/pdf text/plain reasoning png jpeg gif webp txt csv html md pdf"
)
# Key names common in requests and JSON schemas; other keys of generically walked objects are scanned.
_COMMON_KEYS = _words(
    "type text role content name description properties required items id input parameters function "
    "enum default title format additionalProperties cache_control source media_type data url detail "
    "tool_call_id tool_calls arguments strict minimum maximum anyOf oneOf allOf $schema $ref $defs "
    "definitions pattern examples const nullable minItems maxItems minLength maxLength input_schema "
    "parts mimeType inlineData functionCall functionResponse response args model messages system "
    "max_tokens max_completion_tokens max_output_tokens stream temperature top_p top_k tools tool_choice "
    "metadata stop stop_sequences n seed user response_format frequency_penalty presence_penalty logprobs "
    "top_logprobs parallel_tool_calls store reasoning reasoning_effort service_tier stream_options thinking "
    "budget_tokens instructions previous_response_id include truncation modalities audio prediction "
    "logit_bias functions function_call tool_use_id is_error citations signature contents generationConfig "
    "safetySettings systemInstruction toolConfig inferenceConfig anthropic_version maxTokens toolUse "
    "toolResult toolUseId toolSpec inputSchema json image document bytes status cachePoint guardContent "
    "reasoningContent reasoningText call_id output summary category threshold maxOutputTokens "
    "responseMimeType responseSchema candidateCount stopSequences temperature topP topK"
)
_TEXT_TYPES = _words(
    "application/json application/xml application/x-yaml application/yaml application/javascript "
    "application/x-sh application/toml application/x-ndjson application/sql application/x-python "
    "application/ecmascript application/x-httpd-php application/graphql"
)


# Top-level body fields named like the request's own parts (roads.py) are located under `$.` instead.
_ROAD_NAMES = frozenset({"path", "query", "headers"})


def _top(key: str) -> str:
    return f"$.{key}" if key in _ROAD_NAMES else key


def plain_key(key: str) -> bool:
    """Whether a key may be spelled in a location (it reads like a field name, not like a token)."""
    if not _PLAIN_KEY.fullmatch(key):
        return False
    if len(key) <= 12:
        return True
    digits = sum(c.isdigit() for c in key)
    return digits <= 1 and not (key.isupper() and "_" not in key and "-" not in key)


def child(loc: str, key: str, index: int) -> str:
    """Location of member `key` (the `index`-th member) of the object at `loc`."""
    if plain_key(key):
        return f"{loc}.{key}" if loc else _top(key)
    return f"{loc}[#{index}]"


def field(loc: str, key: str) -> str:
    """Location of a known field."""
    return f"{loc}.{key}" if loc else _top(key)


def as_int(value: JSON) -> int | None:
    return value if type(value) is int and value >= 0 else None


def as_str(value: JSON) -> str | None:
    return value if isinstance(value, str) and value else None


def media_kind(media_type: str | None) -> str:
    """`text` (decode and scan), `binary` (count only) or `sniff` (scan if it decodes as UTF-8)."""
    m = (media_type or "").split(";", 1)[0].strip().lower()
    if m.startswith("text/") or m in _TEXT_TYPES or m.endswith(("+json", "+xml", "+yaml")):
        return "text"
    if m.startswith(("image/", "audio/", "video/")) or m == "application/pdf":
        return "binary"
    return "sniff"


def guess_media_type(filename: JSON) -> str | None:
    return mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None


def clean_base64(data: str) -> bool:
    """Only base64 alphabet, padding and whitespace: lenient decoding dropped nothing."""
    return _BASE64_TEXT.fullmatch(data) is not None


def bytes_to_text(raw: bytes, *, strict: bool) -> str | None:
    """Decode document bytes (UTF-8, or UTF-16 with a BOM); None when `strict` and they are not text."""
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None if strict else raw.decode("utf-8", "replace")


def looks_like_text(head: bytes) -> bool:
    """The first bytes of a document decode as UTF-8 (a cut character at the end is fine) without NULs."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _scrub(text: str) -> str:
    """Unpaired surrogates (from `\\udXXX` escapes) cannot be encoded for the scanner: U+FFFD each."""
    return _SURROGATE.sub("\ufffd", text)


class Walker:
    """Collects segments, attachment counts and request metadata for one body."""

    __slots__ = (
        "limits",
        "raw",
        "segments",
        "image_count",
        "model",
        "max_output_tokens",
        "stream",
        "_scrub",
        "_nest",
        "_labels",
        "_key_kinds",
        "_short_keys",
        "_blocks",
    )

    def __init__(self, limits: DecodeLimits, *, scrub_surrogates: bool = False, raw: bool = False) -> None:
        self.limits = limits
        self.raw = raw
        self.segments: list[TextSegment] = []
        self.image_count = 0
        self.model: str | None = None
        self.max_output_tokens: int | None = None
        self.stream = False
        self._scrub = scrub_surrogates
        self._nest = 0
        self._labels: dict[str, bool] = {}  # key -> plain_key(key); keys repeat a lot
        self._key_kinds: dict[str, bool] = {}  # key -> short and field-like
        self._short_keys: dict[str, None] = {}  # ordered set of short field-like keys seen anywhere
        self._blocks: dict[str, list[tuple[int, int]]] = {}  # content list -> (block index, segment index)

    def result(self) -> tuple[TextSegment, ...]:
        """All segments; short field-like keys of the whole document come last, once each, as `#keys`."""
        if self._short_keys:
            self.text("#keys", "\n".join(self._short_keys))
            self._short_keys = {}
        return tuple(self.segments)

    def block_runs(self) -> list[tuple[str, list[TextSegment]]]:
        """Runs of text blocks at consecutive indices of one content list: (list location, blocks)."""
        runs: list[tuple[str, list[TextSegment]]] = []
        for loc, blocks in self._blocks.items():
            chain: list[TextSegment] = []
            previous = -2
            for index, segment in blocks:
                if index != previous + 1 and len(chain) > 1:
                    runs.append((loc, chain))
                if index != previous + 1:
                    chain = []
                chain.append(self.segments[segment])
                previous = index
            if len(chain) > 1:
                runs.append((loc, chain))
        return runs

    # -- emitting ---------------------------------------------------------------------------------------
    def text(self, loc: str, text: str) -> None:
        """One piece of text the provider reads."""
        if text:
            self.segments.append(TextSegment(loc, _scrub(text) if self._scrub else text))

    def block_text(self, block_loc: str, loc: str, text: str, *, tool: bool = False) -> None:
        """The text of a text block `<list>[i]` of a content list: the provider reads adjacent text blocks
        as one text, so their boundaries are scanned too (derive.joined). `tool`: JSON inside is expanded."""
        if text and block_loc.endswith("]"):
            head, _, index = block_loc[:-1].rpartition("[")
            if index.isdigit():
                self._blocks.setdefault(head, []).append((int(index), len(self.segments)))
        (self.json_text if tool else self.text)(loc, text)

    def json_text(self, loc: str, text: str) -> None:
        """Text that may itself be JSON (tool arguments, tool output): also scan the strings inside it."""
        self.text(loc, text)
        self._expand(loc, text)

    def attachment(self) -> None:
        """An image or other binary attachment: counted, not scanned."""
        self.image_count += 1

    # -- generic walk ----------------------------------------------------------------------------------
    def value(self, loc: str, value: JSON, *, expand: bool = False, keys: bool = True) -> None:
        """Every string (and key, and long integer) under `value`, in document order.

        `expand` also scans JSON found inside strings (tool results); `keys=False` skips object keys when
        the caller has already scanned them (a serialised tool input). This is the hot loop of big bodies.
        """
        segments, labels, pooled, kinds = self.segments, self._labels, self._short_keys, self._key_kinds
        benign, common = ((), ()) if self.raw else (_BENIGN, _COMMON_KEYS)
        simple = not (expand or self._scrub)
        stack: list[tuple[str, JSON]] = [(loc, value)]
        pop, push = stack.pop, stack.append
        while stack:
            loc, v = pop()
            kind = type(v)
            if kind is str:
                if simple and v and v[:5] != "data:" and v not in benign:
                    segments.append(TextSegment(loc, v))
                else:
                    self.string(loc, v, expand=expand)
            elif kind is dict:
                notable: list[str] = []
                children: list[tuple[str, JSON]] = []
                for i, (k, x) in enumerate(v.items()):
                    if keys and k not in pooled and k not in common:  # see _keys()
                        short = kinds.get(k)
                        if short is None:
                            short = kinds[k] = len(k) < _SHORT_KEY and plain_key(k)
                        if short:
                            pooled[k] = None
                        else:
                            notable.append(k)
                    if type(x) in _CONTAINERS or (type(x) is int and abs(x) >= _BIG_INT):
                        label = labels.get(k)
                        if label is None:
                            label = labels[k] = plain_key(k)
                        children.append(((f"{loc}.{k}" if loc else _top(k)) if label else f"{loc}[#{i}]", x))
                if notable:
                    self.text(f"{loc or '$'}#keys", "\n".join(notable))
                children.reverse()
                stack.extend(children)
            elif kind is list:
                for i in range(len(v) - 1, -1, -1):
                    x = v[i]
                    if type(x) in _CONTAINERS or (type(x) is int and abs(x) >= _BIG_INT):
                        push((f"{loc}[{i}]", x))
            elif kind is int and abs(v) >= _BIG_INT:
                self.text(loc, str(v))

    def string(self, loc: str, text: str, *, expand: bool = False) -> None:
        """A string found by the generic walk: data: URLs are decoded or counted, enum values skipped."""
        if not text or (not self.raw and text in _BENIGN):
            return
        if text.startswith("data:") and self.data_url(loc, text):
            return
        self.text(loc, text)
        if expand:
            self._expand(loc, text)

    def rest(self, loc: str, obj: dict[str, JSON], handled: frozenset[str], *, expand: bool = False) -> None:
        """Scan every member (and unusual key) of a known object that its decoder did not handle itself."""
        self._keys(loc, obj, handled)
        for i, (k, v) in enumerate(obj.items()):
            if k not in handled:
                self.value(child(loc, k, i), v, expand=expand, keys=True)

    def _keys(self, loc: str, obj: dict[str, JSON], handled: frozenset[str]) -> None:
        """Keys that could hold a secret (long or not field-like) are scanned as `<loc>#keys`; short
        field-like keys are pooled into one document-wide `#keys` segment. Decoders skip their own keys."""
        pooled, kinds, common = self._short_keys, self._key_kinds, () if self.raw else _COMMON_KEYS
        notable: list[str] = []
        for k in obj:
            if k in handled or k in common or k in pooled:
                continue
            short = kinds.get(k)
            if short is None:
                short = kinds[k] = len(k) < _SHORT_KEY and plain_key(k)
            if short:
                pooled[k] = None
            else:
                notable.append(k)
        if notable:
            self.text(f"{loc or '$'}#keys", "\n".join(notable))

    def structured(self, loc: str, value: JSON) -> None:
        """A tool input/output object: its JSON text (keys give context) plus every string, unescaped."""
        if isinstance(value, str):
            self.json_text(loc, value)
        elif isinstance(value, dict | list):
            self.text(loc, json.dumps(value, ensure_ascii=False))
            self.value(loc, value, expand=True, keys=False)
        else:
            self.value(loc, value)

    def _expand(self, loc: str, text: str) -> None:
        if self._nest >= _MAX_NESTED_JSON or len(text) > _MAX_NESTED_CHARS:
            return
        head = text[:64].lstrip()
        if not head or head[0] not in '{["':
            return
        data = text.encode("utf-8", "surrogatepass")
        if depth_exceeds(data, self.limits.max_json_depth):
            raise too_deep(self.limits.max_json_depth, f"string at {loc}")
        quotes = charge_json(data, self.limits, f"string at {loc}")  # the Check's node and CPU budget (limits.py)
        # orjson when it reads the text exactly as json does (no repeated keys: keep_duplicates changes nothing)
        inner = fast_loads(data, quotes, self.limits.max_json_depth) if shortcuts.enabled() else UNSURE
        if inner is UNSURE:
            try:
                inner = json.loads(text, object_pairs_hook=keep_duplicates)
            except (ValueError, RecursionError):
                return
        if not isinstance(inner, dict | list | str):
            return
        self._nest += 1
        try:
            if isinstance(inner, str):  # double-encoded: a JSON string holding JSON text
                self.json_text(loc + "$", inner)
            else:
                if "\\u" in text or "\\/" in text:
                    # Escapes hid characters: scan the text with them undone too (`$#decoded`, mapped to `loc`).
                    decoded = json_unescaped(TextSegment(loc, _scrub(text) if self._scrub else text))
                    if decoded is not None:
                        self.segments.append(decoded)
                self.value(loc + "$", inner, expand=True, keys=True)
        finally:
            self._nest -= 1

    # -- attachments -----------------------------------------------------------------------------------
    def data_url(self, loc: str, url: str) -> bool:
        """Handle a `data:` URL; False if it is not one (the caller then scans it as text)."""
        comma = url.find(",", 5, 512)
        if comma < 0:
            return False
        params = url[5:comma].split(";")
        media = params[0].strip() or "text/plain"
        payload = url[comma + 1 :]
        if any(p.strip().lower() == "base64" for p in params[1:]):
            self.document(loc, payload, media)
        elif media_kind(media) == "binary":
            self.attachment()
        else:
            self.text(loc, unquote(payload))
        return True

    def document(self, loc: str, data: JSON, media_type: str | None) -> None:
        """A base64 attachment: text types are decoded and scanned, PDFs counted and their text scanned, images
        counted, others sniffed."""
        if not isinstance(data, str):
            self.value(loc, data)
            return
        kind = media_kind(media_type)
        if (media_type or "").split(";", 1)[0].strip().lower() == "application/pdf":
            self.pdf(loc, data)
            return
        if kind == "binary":
            self.attachment()
            return
        if len(data) // 4 * 3 > self.limits.max_base64_document_bytes:
            head = b64decode(data[:_SNIFF_CHARS])
            if head is None:
                self.text(loc, data)  # not base64: scan what was sent
                return
            if kind == "sniff" and looks_like_pdf(head):
                self.pdf(loc, data)
                return
            if kind == "sniff" and not looks_like_text(head):
                self.attachment()
                return
            raise BodyTooLarge(
                f"base64 text document at {loc} is larger than {self.limits.max_base64_document_bytes} bytes"
            )
        raw = b64decode(data)
        if raw is None:
            self.text(loc, data)  # not base64 after all: scan what was sent
            return
        if kind == "sniff" and looks_like_pdf(raw):
            self.pdf(loc, data, raw)
            return
        text = bytes_to_text(raw, strict=kind != "text")
        if text is None:
            self.attachment()
        else:
            self.text(loc, text)
        if not clean_base64(data):
            self.text(f"{loc}#raw", data)  # characters the decoder skipped could hide text

    def pdf(self, loc: str, data: str, raw: bytes | None = None) -> None:
        """A base64 PDF: counted as an attachment; its text, when it can be read, scanned at `loc` (pdf.py)."""
        self.attachment()
        if raw is None:
            if len(data) // 4 * 3 > PDF_MAX_BYTES:
                return
            raw = b64decode(data)
        found = pdf_text(raw) if raw is not None else None
        if found is not None and found.text.strip():
            self.segments.append(TextSegment(loc, _scrub(found.text), "pdf"))
