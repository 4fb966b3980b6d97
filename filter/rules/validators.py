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
from collections.abc import Callable

Validator = Callable[[str], bool]
_DIGITS = frozenset("0123456789")


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
    digits = [int(c) for c in value if c in _DIGITS]
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
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not (compact.isascii() and compact.isalnum()):
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


_CHECKSUMMED = re.compile(r"(?:gh[pousr]|npm)_[A-Za-z0-9]{36}")


def known_checksum(value: str) -> bool:
    """For generic rules: a value in a checksummed format (GitHub ghp_/gho_/ghu_/ghs_/ghr_, npm_) must carry
    a valid checksum, so a fake or mistyped token is not reported just because it sits in `TOKEN=`;
    any other value passes."""
    return _CHECKSUMMED.fullmatch(value) is None or crc32_base62_suffix(value)


def jwt_structure(value: str) -> bool:
    """Three base64url parts; the header decodes to a JSON object naming an `alg`."""
    parts = value.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(header, dict) and "alg" in header


def us_ssn(value: str) -> bool:
    """Valid SSA ranges: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    digits = "".join(c for c in value if c in _DIGITS)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999", "123456789")


def basic_auth(value: str) -> bool:
    """HTTP Basic / docker `auth` credentials: base64 of printable `user:password`, both parts non-empty,
    or an empty user with a token-length password (`:<16+ characters>`)."""
    compact = value.strip()
    try:
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    # An empty user name is how token-as-password schemes are written (Azure DevOps `:PAT`, `-u :token`).
    return bool(sep and password and (user or len(password) >= 16)) and decoded.isprintable()


def discord_bot_token(value: str) -> bool:
    """Discord bot tokens start with the bot's user id (a 17-20 digit snowflake) in base64."""
    head = value.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return 17 <= len(decoded) <= 20 and all(c in _DIGITS for c in decoded) and decoded[0] != "0"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _nanp_ok(ten: str) -> bool:
    """NPA-NXX-XXXX: area and exchange start 2-9 and are not N11; area codes N9X and 555 are unassigned;
    555-0100 through 555-0199 are reserved for fiction (films, docs, tests) in every area code."""
    area, exchange = ten[:3], ten[3:6]
    if area[0] in "01" or exchange[0] in "01" or area[1:] == "11" or exchange[1:] == "11" or area[1] == "9":
        return False
    if area == "555" or (exchange == "555" and ten[6:8] == "01"):
        return False
    return len(set(ten)) > 2


def nanp_phone(value: str) -> bool:
    """A North American number (optionally +1 / 1 prefixed) with valid area and exchange codes."""
    digits = "".join(c for c in value if c in _DIGITS)
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and _nanp_ok(digits)


# ITU-T E.164 country calling codes in use (1-3 digits); +1 numbers are checked as NANP.
_CALLING_CODES = _words(
    "1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63 64 65 66 "
    "81 82 84 86 90 91 92 93 94 95 98 211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 "
    "232 233 234 235 236 237 238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256 257 "
    "258 260 261 262 263 264 265 266 267 268 269 290 291 297 298 299 350 351 352 353 354 355 356 357 358 359 "
    "370 371 372 373 374 375 376 377 378 380 381 382 383 385 386 387 389 420 421 423 500 501 502 503 504 505 "
    "506 507 508 509 590 591 592 593 594 595 596 597 598 599 670 672 673 674 675 676 677 678 679 680 681 682 "
    "683 685 686 687 688 689 690 691 692 800 808 850 852 853 855 856 870 880 881 882 883 886 888 960 961 962 "
    "963 964 965 966 967 968 970 971 972 973 974 975 976 977 979 992 993 994 995 996 998"
)


def e164_phone(value: str) -> bool:
    """+<country code><number>: 8-15 digits in all, an assigned calling code; +1 must be a valid NANP
    number written without separators (the NANP rule covers the formatted ones). A `(0)` trunk prefix
    is ignored."""
    text = value.replace("(0)", "")
    digits = "".join(c for c in text if c in _DIGITS)
    if not 8 <= len(digits) <= 15 or len(set(digits)) < 3:
        return False
    if digits[0] == "1":
        return len(digits) == 11 and _nanp_ok(digits[1:]) and text.strip().lstrip("+").isdigit()
    return digits[:2] in _CALLING_CODES or digits[:3] in _CALLING_CODES or digits[:1] == "7"


_CC_TLDS = _words(
    "ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs bt bw by bz "
    "ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg er es et eu fi fj fk "
    "fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir "
    "is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mh mk "
    "ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl "
    "pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sk sl sm sn so sr ss st su sv sx sy sz tc "
    "td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw"
)
_GENERIC_TLDS = _words(
    "com net org edu gov mil int info biz name pro aero coop museum mobi jobs travel tel asia cat post app dev "
    "cloud tech online site store shop xyz email blog news media design agency digital solutions services "
    "company group team works tools software systems network global world today live life studio space page "
    "link website club inc llc ltd gmbh ventures capital finance financial bank insurance health healthcare "
    "care clinic law legal engineering consulting academy school university education science run io ai "
    "host hosting support center city london berlin nyc tokyo paris amsterdam moe fun one top win vip "
    "internal corp"
)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def email_address(value: str) -> bool:
    """A deliverable-looking address: sane local part, valid labels, a real top-level domain
    (all two-letter country codes and common generic TLDs), so `x@self.weight` or `icon@2x.png` fail.
    Leading punctuation is ignored: the match is found right-to-left and may start on `...` or `-`.

    The match may also take in what precedes the address up to whitespace or a quote (`:` and `/` are in
    the rule's local-part class, which keeps the pattern cheap for Hyperscan): `mailto:` is dropped, an
    address in a URL path (`https://host/users/jane@corp.com`) is kept, and the user-info of a URI
    (`amqp://orders:pw@rabbitmq.internal`, `http://svc@proxy.corp`) or `user:password@host` is rejected."""
    local, sep, domain = value.rpartition("@")
    if local[:7].lower() == "mailto:":
        local = local[7:]
    scheme, authority_sep, rest = local.partition("://")
    if authority_sep and "/" not in rest:
        return False  # scheme://user[:password]@host
    if "/" in local:
        local = local.rsplit("/", 1)[1]
    if ":" in local:
        return False  # user:password@host
    local = local.lstrip(".%+-")  # a match found right-to-left may start on punctuation before the address
    if not sep or not local or local[-1] == "." or ".." in local:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    tld = labels[-1].lower()
    return tld in _CC_TLDS or tld in _GENERIC_TLDS


def has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def has_letter_and_digit(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


_PASSWORD_SYMBOLS = frozenset("!@#$%^&*?~+=/")


# Case-words of a value: `getAccessToken` -> get, Access, Token; `HTTPServer` -> HTTP, Server; `aB3c` -> a, B, c.
_CASE_WORD = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/_.~=!@#$%^&*?-]+")


def random_mixed_case(value: str, min_length: int = 20) -> bool:
    """A long mixed-case value that reads as random, not as words: split at case changes and symbols, its
    case-words average under three letters (`RcTox-tWJjtJelBrXBh` -> Rc, Tox, t, WJjt, Jel, ...), where
    identifiers average four or more (`getAccessTokenFromCache`). About 85 % of random base62 / base64url
    strings of 20+ characters pass; among some 70,000 identifiers and string literals of a Python
    distribution, a handful do. Lowercase- or uppercase-only values never pass."""
    if len(value) < min_length or not _TOKEN_CHARS.fullmatch(value):
        return False
    upper = sum(c.isupper() for c in value)
    lower = sum(c.islower() for c in value)
    if upper < 3 or lower < 3:
        return False
    words = _CASE_WORD.findall(value)
    return sum(map(len, words)) < 3 * len(words)


def token_like(value: str) -> bool:
    """A credential-looking random string: letters and a digit, or (no digit) long, mixed case and random.
    Replaces has_letter_and_digit where a random token may simply happen to contain no digit (a 24-character
    base62 string has none in 1.5 % of cases, a 32-character one in 0.35 %)."""
    return has_letter_and_digit(value) or random_mixed_case(value)


def password_like(value: str) -> bool:
    """Letters plus a digit or a symbol: `S3cure-pw`, `jlse#kJRW!tEPo`; not `self.password` or `hunter`."""
    has_letter = any(c.isalpha() for c in value)
    return has_letter and any(c in _DIGITS or c in _PASSWORD_SYMBOLS for c in value)


_PLACEHOLDER = re.compile(
    r"(?i)example|your[_-]?|placeholder|changeme|change[_-]me|redacted|dummy|sample|"
    r"x{4,}|\*{3,}|\.{3}|<[^>]*>|^\[[^\]]*\]$|\$\{[^}]*\}|\{\{[^}]*\}\}|%[A-Z_]+%|insert[_-]|replace[_-]?me|"
    r"^(?:test|fake|none|null|true|false|secret|password|token)$"
)
_SEQUENTIAL = re.compile(r"(?i)0123456789|abcdefghij|1234567890|qwertyuiop")

# Template and substitution syntaxes a value is filled in from: `#{Name}#` (Azure DevOps, Octopus), `@name@`
# (Maven / Gradle resource filtering), `__NAME__` (token replacers), `{NAME}` and `%(name)s` (format strings),
# `$(NAME)` (Make, Kubernetes, Azure Pipelines), `$NAME`.
_TEMPLATE = re.compile(
    r"#\{[^}]*\}|^@[\w.-]+@$|^__[A-Za-z0-9_]+__$|^\{[\w.-]*\}$|^\$\([\w.-]+\)$|%\(\w+\)[sdr]|^\$\w+$"
)
# A reference to where a secret is kept, not the secret: secret-store URIs (1Password `op://`, Vault,
# `ref+…://`, cloud secret managers), an AWS Secrets Manager / SSM ARN, a GCP secret resource name.
_STORE_REFERENCE = re.compile(
    r"(?i)^(?:op|vault|ref\+\w+|sm|awssm|gcpsm|azkv|keyvault|secrets?|bws|doppler|infisical)://|^vault:"
    r"|^arn:aws[\w-]*:(?:secretsmanager|ssm):|^projects/[^/]+/secrets/"
)
# Code that reads a secret: `os.environ['X']`, `ENV["X"]`, `System.getenv("X")`, `config.get('x')`, also cut
# at its bracket where a rule's value stops at the quote (`os.environ[`); an opening `<` of a placeholder cut at a
# space (`<insert token here>`).
_LOOKUP = re.compile(r"^[A-Za-z_$][\w.$]*(?:\[['\"][\w.-]+['\"]\]|\((?:['\"][\w.-]*['\"])?\)|[\[(])$|^<[A-Za-z]")
# One part of a name: lower snake / kebab words, UPPER_SNAKE words (each may end in up to 3 digits: `v2`,
# `oauth2`), camelCase / PascalCase words (every capital followed by lower-case letters, digits only at the
# end), or a short number.
_NAME_PART = (
    r"(?:[a-z]+[0-9]{0,3}(?:[_-][a-z]+[0-9]{0,3})*|[A-Z]+[0-9]{0,3}(?:[_-][A-Z]+[0-9]{0,3})*"
    r"|[A-Za-z][a-z]+(?:[A-Z][a-z]+)*[0-9]{0,3}|[0-9]{1,4})"
)
# The name of a secret written where its value goes: `STRIPE_SECRET_KEY` (UPPER_SNAKE letters only: a random
# upper-case token has digits), `ApiKeySecretName` (three or more words, each with a vowel), and dotted or
# slashed paths of names (`process.env.API_KEY`, `secrets.GITHUB_TOKEN`, `steps.auth.outputs.token`,
# `prod/payments/api-key`, see _name_path). A random token does not split into such parts: its mixed-case runs
# (`qHxWvTbK`) are not words, and its single-case runs are longer than words.
_SECRET_NAME = re.compile(r"[A-Z]+(?:_[A-Z]+)+")
_PASCAL_NAME = re.compile(r"(?:[A-Z][a-z]{2,}){3,}")
_NAME_PATH = re.compile(rf"{_NAME_PART}(?:[./]{_NAME_PART})+")
# Roots of references in configuration languages: `process.env.X`, `secrets.X`, `vars.X`, `steps.x.outputs.y`.
_REFERENCE_WORDS = _words(
    "env environ process secrets vars settings config configuration inputs outputs steps github var local data "
    "values params parameters props properties options opts os spec"
)
# Words of a value that only talks about a secret: `your-api-key-here`, `super-secret-key`, `not-a-real-token`,
# `change_this_secret`, `test_secret_for_ci`, `secret123`. A value made of nothing else is a placeholder.
_META_WORDS = _words(
    "a an the my your our some this that it me here there goes go put insert paste enter add replace change set "
    "with for in of to only use do not no real fake mock dummy sample example demo test tests testing default "
    "unset none null nil empty todo tbd fixme placeholder redacted hidden masked omitted filtered removed "
    "generate generated new own value string random super very long strong secure secret secrets key keys api "
    "token tokens access auth password passwd pass pwd passphrase jwt client private credential credentials "
    "ci dev development local localhost prod production staging changeit changeme signing encryption session "
    "webhook master app service"
)
_CAMEL_WORD = re.compile(r"[A-Z]?[a-z]+")
_VOWEL = re.compile(r"[aeiouAEIOU]")
_VALUE_WORD = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Filler: runs of one repeated character (`sk_live_aaaaaaaa…`, `ghp_0000…`), or a short unit repeated
# (`abc123abc123abc123`). Real tokens can hold a run (base64 of zero bytes: `AAAAAAAA`), never this much of one.
_RUN = re.compile(r"(.)\1{4,}")
_REPEATED_UNIT = re.compile(r"(.{2,6}?)\1{2,}")


def _meta_only(value: str) -> bool:
    words = _VALUE_WORD.findall(value)
    if not words or sum(map(len, words)) < len(re.sub(r"[\s_.\-/]", "", value)):
        return False  # characters other than words and separators (symbols): not a phrase
    return all(w.lower() in _META_WORDS or (w.isdigit() and len(w) <= 4) for w in words) and not words[0].isdigit()


def _filler(value: str) -> bool:
    n = len(value)
    if n < 8:
        return False
    if sum(m.end() - m.start() for m in _RUN.finditer(value)) * 5 >= n * 2:  # 40 % or more in runs of 5+
        return True
    return any((m.end() - m.start()) * 2 >= n for m in _REPEATED_UNIT.finditer(value))


def not_placeholder(value: str) -> bool:
    """False for documented examples, templates, masked, filler and sequential values, references to where a
    secret is kept, the name of a secret written as its value, and phrases that only talk about a secret."""
    if _PLACEHOLDER.search(value) or _SEQUENTIAL.search(value) or _TEMPLATE.search(value):
        return False
    stripped = value.strip("\"' ")
    if len(set(stripped)) <= 3:
        return False
    if _STORE_REFERENCE.search(stripped) or _LOOKUP.search(stripped) or _SECRET_NAME.fullmatch(stripped):
        return False
    if _PASCAL_NAME.fullmatch(stripped) and all(_VOWEL.search(w) for w in _CAMEL_WORD.findall(stripped)):
        return False
    return not (_name_path(stripped) or _code_path(stripped) or _meta_only(stripped) or _filler(stripped))


_CODE_PATH = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+")
_DIGIT_RUN = re.compile(r"[0-9]+")


def _code_path(value: str) -> bool:
    """A dotted path of code (`rfc5958.EncryptedPrivateKeyInfo`, `ed25519.Ed25519PrivateKey`, `cfg.signing_key`):
    one part is an identifier of several words (snake_case or camelCase), and no part reads as random: mixed-case
    words averaging under 3.5 letters or one without a vowel (`qHxWvTbK`), digits in three places or more, or a
    single-case run longer than a word. Tokens with dots (`SG.…`, `hvs.…`, JWTs) have such parts."""
    if not _CODE_PATH.fullmatch(value):
        return False
    identifier = False
    for part in value.split("."):
        pieces = [p for p in part.split("_") if p]
        identifier = identifier or len(pieces) >= 2
        for piece in pieces:
            if len(_DIGIT_RUN.findall(piece)) >= 3:
                return False
            letters = _DIGIT_RUN.sub("", piece)
            if letters == letters.lower() or letters == letters.upper():
                if len(letters) > 16 or any(len(w) >= 4 and not _VOWEL.search(w) for w in _DIGIT_RUN.split(piece)):
                    return False
                continue
            words = _CASE_WORD.findall(letters)
            if sum(map(len, words)) < 3.5 * len(words) or any(len(w) > 1 and not _VOWEL.search(w) for w in words):
                return False
            if any(w.isupper() and len(w) > 1 for w in words[1:]):
                return False  # an acronym leads an identifier (`RSAPrivateKey`); capitals mid-run are random
            identifier = identifier or len(words) >= 2
    return identifier


def _word_like(piece: str) -> bool:
    """A piece of an identifier: at most one run of digits, at most 14 letters, every run of four letters or
    more with a vowel (`krb5`, `rfc1964`, `keydata`; not `tvbn`, `q7zk2xw9`)."""
    letters = _DIGIT_RUN.sub("", piece)
    return (bool(letters) and len(letters) <= 14 and len(_DIGIT_RUN.findall(piece)) <= 1
            and all(len(w) < 4 or _VOWEL.search(w) for w in _DIGIT_RUN.split(piece)))


_SNAKE_OR_KEBAB = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+){2,}")


def not_identifier(value: str) -> bool:
    """For token-named assignments: False for a lower-case snake or kebab identifier of three or more word-like
    pieces (`gss_krb5_rfc1964_keydata`, `w32-register-hot-key`: an item of a list of names next to one ending in
    `_key`). Random lower-case tokens in groups (`q7zk2xw9-tvbn-…`) have pieces that are not words. Not for
    password rules: a passphrase of words is a password."""
    return not (_SNAKE_OR_KEBAB.fullmatch(value) and all(_word_like(p) for p in re.split(r"[_-]", value)))


def _name_path(value: str) -> bool:
    """A dotted or slashed path of names that reads as a reference: one of its parts is a snake / kebab
    identifier (`DEPLOY_TOKEN`, `api_key`, `deploy-token`) or a camelCase one (`ApiKey`), or one of its words names a
    secret or a reference root (`env`, `secrets`, `token`). Two plain words (`sunny.day`) may be a passphrase and
    stay a value; a short random run that fits the camelCase outline (`XrvyPpgGn`) is not a word."""
    if not _NAME_PATH.fullmatch(value) or any(len(w) > 14 for w in _VALUE_WORD.findall(value)):
        return False  # a word longer than names have is a random run
    for part in re.split(r"[./]", value):
        if "_" in part.strip("_") or "-" in part:
            return True
        if part != part.lower() and part != part.upper():
            camel = _CAMEL_WORD.findall(part)
            if len(camel) >= 2 and all(len(w) >= 3 and _VOWEL.search(w) for w in camel):
                return True
    words = {w.lower() for w in _VALUE_WORD.findall(value)}
    return bool(words & (_META_WORDS | _REFERENCE_WORDS))


NAMED: dict[str, Validator] = {
    "luhn": luhn,
    "iban": iban,
    "github_checksum": crc32_base62_suffix,
    "crc32_base62": crc32_base62_suffix,
    "known_checksum": known_checksum,
    "jwt": jwt_structure,
    "ssn": us_ssn,
    "has_digit": has_digit,
    "has_letter_and_digit": has_letter_and_digit,
    "token_like": token_like,
    "password_like": password_like,
    "not_placeholder": not_placeholder,
    "not_identifier": not_identifier,
    "basic_auth": basic_auth,
    "discord_bot_token": discord_bot_token,
    "nanp_phone": nanp_phone,
    "e164_phone": e164_phone,
    "email": email_address,
}
PARAMETRIZED: dict[str, Callable[[float], Validator]] = {"entropy": entropy_at_least}
