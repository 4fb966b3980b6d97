"""Post-match checks: pure functions from the candidate value to keep (True) or drop (False).

A rule names them under `validators:`; `entropy` takes a number (`- entropy: 3.5`), the others none.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections import Counter
from typing import Callable

Validator = Callable[[str], bool]


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def entropy_at_least(minimum: float) -> Validator:
    def check(value: str) -> bool:
        return shannon_entropy(value) >= minimum

    return check


def luhn(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban(value: str) -> bool:
    """Country length and ISO 13616 mod-97 check digits."""
    compact = re.sub(r"[\s-]", "", value).upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _BASE62[r] + out
    return out.rjust(width, "0")


def crc32_base62_suffix(value: str) -> bool:
    """GitHub / npm style tokens: PREFIX_<30 random base62><6 char base62 CRC32 of the random part>."""
    body = value.rsplit("_", 1)[-1]
    if len(body) < 8:
        return False
    random_part, checksum = body[:-6], body[-6:]
    return _base62(zlib.crc32(random_part.encode()), 6) == checksum


def jwt_structure(value: str) -> bool:
    """Three base64url parts; the header decodes to a JSON object naming an `alg`."""
    parts = value.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def us_ssn(value: str) -> bool:
    """Valid SSA ranges: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    digits = re.sub(r"\D", "", value)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999", "123456789")


def has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def has_letter_and_digit(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


_PLACEHOLDER = re.compile(
    r"(?i)example|your[_-]?|placeholder|changeme|change[_-]me|redacted|dummy|sample|"
    r"x{4,}|\*{3,}|\.{3}|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%[A-Z_]+%|insert[_-]|replace[_-]?me|"
    r"^(?:test|fake|none|null|true|false|secret|password|token)$"
)
_SEQUENTIAL = re.compile(r"(?i)0123456789|abcdefghij|1234567890|qwertyuiop")


def not_placeholder(value: str) -> bool:
    """False for documented examples, templates, masked and sequential values."""
    if _PLACEHOLDER.search(value) or _SEQUENTIAL.search(value):
        return False
    stripped = value.strip("\"' ")
    return len(set(stripped)) > 3


NAMED: dict[str, Validator] = {
    "luhn": luhn,
    "iban": iban,
    "github_checksum": crc32_base62_suffix,
    "crc32_base62": crc32_base62_suffix,
    "jwt": jwt_structure,
    "ssn": us_ssn,
    "has_digit": has_digit,
    "has_letter_and_digit": has_letter_and_digit,
    "not_placeholder": not_placeholder,
}
PARAMETRIZED: dict[str, Callable[[float], Validator]] = {"entropy": entropy_at_least}
