"""Token shapes: what the yard-stick stores instead of the scanners' test strings, and how it makes values back.

A shape is a small regex over the token's structure (literal prefix, separators and placeholder words kept; every
random run replaced by its character class and length) plus an optional post-step that restores a property
the source string had (a valid GitHub/npm CRC-32 suffix, a JWT's JSON header, a private key's PEM type). Values
are drawn from the shape with a seeded RNG, so every run makes the same values and the stored data holds none of
the source strings.
"""

from __future__ import annotations

import base64
import json
import random
import re
import re._constants as sre_c
import re._parser as sre_p
import zlib
from collections.abc import Iterable
from typing import Any

# Words and runs that make a test string a placeholder; they stay literal in a shape (they are no secret).
PLACEHOLDER = re.compile(
    r"(?i)example|placeholder|dummy|sample|redacted|changeme|your|here|fake|"
    r"x{4,}|\*{3,}|0{6,}|1{6,}|(.)\1{5,}"
)
PLACEHOLDER_STRING = re.compile(
    r"(?i)(?:example|placeholder|dummy|redacted|changeme|your[_-]|_here\b|<[a-z_ -]+>|\$\{|\{\{|x{6,}|\*{4,}|"
    r"(.)\1{7,})"
)
RUN = re.compile(r"[A-Za-z0-9]+")
HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
SEPARATED_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,9}(?:[_-][A-Za-z][A-Za-z0-9]{0,9}){0,2}[_.-]")
PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def is_placeholder(value: str) -> bool:
    return bool(PLACEHOLDER_STRING.search(value))


def _class_of(run: str) -> str:
    if len(run) >= 8 and HEX.fullmatch(run) and any(c.isdigit() for c in run):
        return "[0-9a-f]" if run.lower() == run else "[0-9A-F]"
    parts = []
    if any(c.isupper() for c in run):
        parts.append("A-Z")
    if any(c.islower() for c in run):
        parts.append("a-z")
    if any(c.isdigit() for c in run):
        parts.append("0-9")
    return "[" + "".join(parts) + "]"


def _crc_suffix(value: str) -> bool:
    body = value.rsplit("_", 1)[-1]
    return len(body) >= 8 and _b62(zlib.crc32(body[:-6].encode()), 6) == body[-6:]


def _b62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
    return out.rjust(width, "0")


def shape_of(value: str, prefix_len: int = 0) -> dict[str, Any]:
    """The shape of one source string. `prefix_len`: leading characters known to be the format's fixed prefix
    (shared with other examples of the same family)."""
    pem = PEM.search(value)
    if pem:
        return {"pem": pem.group(1)}
    parts = value.split(".")
    if len(parts) == 3 and value.startswith("eyJ") and all(parts):
        try:
            header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
            alg = str(header.get("alg", "HS256")) if isinstance(header, dict) else "HS256"
        except ValueError:
            alg = "HS256"
        return {"jwt": {"alg": alg[:8], "payload": len(parts[1]), "signature": len(parts[2])}}
    keep = [False] * len(value)
    m = SEPARATED_PREFIX.match(value)
    fixed = max(prefix_len, m.end() if m and m.end() <= 16 and len(value) - m.end() >= 8 else 0)
    for i in range(min(fixed, len(value))):
        keep[i] = True
    for pm in PLACEHOLDER.finditer(value):
        for i in range(pm.start(), pm.end()):
            keep[i] = True
    if "://" in value:  # a URI: scheme, host, port and path are structure; only the user info is secret
        scheme_end = value.index("://") + 3
        at = value.find("@", scheme_end)
        for i in range(scheme_end):
            keep[i] = True
        for i in range(at if at != -1 else scheme_end, len(value)):
            keep[i] = True
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if keep[i] or not (c.isascii() and c.isalnum()):
            out.append(re.escape(c))
            i += 1
            continue
        j = i
        while j < len(value) and not keep[j] and value[j].isascii() and value[j].isalnum():
            j += 1
        run = value[i:j]
        out.append(f"{_class_of(run)}{{{len(run)}}}")
        i = j
    shape: dict[str, Any] = {"regex": "".join(out)}
    if re.fullmatch(r"(?:gh[pousr]|npm)_[A-Za-z0-9]{36}", value) and _crc_suffix(value):
        shape["post"] = "crc32-base62"
    return shape


def common_prefix_lengths(values: list[str]) -> list[int]:
    """For each value, its longest prefix shared with another value of the same family (a format's fixed
    prefix shows up that way: AKIA…, AIza…), capped so at least 8 characters stay random."""
    out = []
    for i, v in enumerate(values):
        best = 0
        for j, w in enumerate(values):
            if i != j and v != w:
                n = 0
                while n < min(len(v), len(w)) and v[n] == w[n]:
                    n += 1
                best = max(best, n)
        out.append(min(best, 12, max(0, len(v) - 8)) if best >= 2 else 0)
    return out


# -- drawing values ------------------------------------------------------------------------------------------


def sample_regex(pattern: str, rng: random.Random) -> str:
    """A string matching `pattern` (the subset the shapes and gitleaks' generator patterns use)."""
    return "".join(_emit(sre_p.parse(pattern), rng))


def _emit(tree: Iterable[tuple[Any, Any]], rng: random.Random) -> Iterable[str]:
    for op, av in tree:
        if op is sre_c.LITERAL:
            yield chr(av)
        elif op is sre_c.IN:
            yield rng.choice(_chars(av))
        elif op is sre_c.ANY:
            yield rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            hi = lo + 8 if hi is sre_c.MAXREPEAT else hi
            for _ in range(rng.randint(lo, hi)):
                yield from _emit(sub, rng)
        elif op is sre_c.SUBPATTERN:
            yield from _emit(av[-1], rng)
        elif op is sre_c.BRANCH:
            yield from _emit(rng.choice(av[1]), rng)
        elif op is sre_c.CATEGORY:
            yield rng.choice(_category(av))
        elif op is sre_c.AT:
            continue
        elif op is sre_c.NOT_LITERAL:
            yield "a" if av != ord("a") else "b"
        else:
            raise ValueError(f"unsupported regex element {op}")


def _category(cat: Any) -> str:
    if cat is sre_c.CATEGORY_DIGIT:
        return "0123456789"
    if cat is sre_c.CATEGORY_SPACE:
        return " "
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


def _chars(items: list[tuple[Any, Any]]) -> str:
    out: list[str] = []
    negate = False
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            out.append(chr(av))
        elif op is sre_c.RANGE:
            out.extend(chr(c) for c in range(av[0], av[1] + 1))
        elif op is sre_c.CATEGORY:
            out.extend(_category(av))
    if negate:
        banned = set(out)
        return "".join(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" if c not in banned)
    return "".join(sorted(set(out))) or "a"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def draw(shape: dict[str, Any], rng: random.Random) -> str:
    """A fresh value of this shape."""
    if "pem" in shape:
        from tests.yardstick.keys import private_key

        return private_key(shape["pem"], rng)
    if "jwt" in shape:
        spec = shape["jwt"]
        header = _b64url(json.dumps({"alg": spec["alg"], "typ": "JWT"}, separators=(",", ":")).encode())
        claims: dict[str, Any] = {"sub": str(rng.randrange(10**6, 10**7)), "iat": rng.randrange(1_600_000_000, 1_800_000_000)}
        while len(_b64url(json.dumps(claims, separators=(",", ":")).encode())) < spec["payload"] - 4:
            claims[f"c{len(claims)}"] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return f"{header}.{payload}." + "".join(rng.choice(alphabet) for _ in range(max(spec["signature"], 16)))
    value = sample_regex(shape["regex"], rng)
    if shape.get("post") == "crc32-base62":
        head, body = value.rsplit("_", 1)
        value = f"{head}_{body[:-6]}{_b62(zlib.crc32(body[:-6].encode()), 6)}"
    return value
