"""Patterns for a value written next to a name, built once from a rule's `assignment:` or `context:` field.

People write a credential in dozens of syntaxes; a rule names only what differs (the words the name holds and
the value's shape) and gets every syntax from here:

- `assignment` (strict): an identifier holding one of the words, in any case style (`x_token`, `X_TOKEN`,
  `xToken`, `XToken`, `x-token`, `spring.x.password`), then any assignment form: `=`, `:=`, `::=`, `:::=`, `?=`,
  `.=`, `+=`, `??=`, `:`, `=>`, `->`, `<-`, `,` (arguments, map literals), typed declarations
  (`var x string =`, `x: str =`), XML elements (`<xToken>v</xToken>`) and attributes (`key="xToken" value="v"`),
  quoted keys of JSON / YAML / TOML / PHP arrays, `ENV` / `setx` and `--flag value`, and an environment
  lookup's fallback (`getenv("X", "v")`, `process.env.X || "v"`, `${X:-v}`, `.unwrap_or("v")`).
- `context` (loose): one of the words, then the value within `window` characters, newlines included: a
  vendor's name near a value of its token's shape, whatever sits between (`adafruit key: v`,
  `<adafruitToken>\\n  v\\n</adafruitToken>`, `ADAFRUIT = {"key": "v"}`).

The value must stand alone: preceded by a quote, space, `=`, `:`, `>`, a bracket or a comma, followed by a
quote, space, `;`, `,`, a closing bracket, `<`, `&`, `|`, a backslash (a JSON-escaped `\\n`) or the end. A
`.` or `/` on either side is not a boundary, so a hash inside a file name or a URL path is not a value.

All pieces compile both in Hyperscan and in `regex` (no lookaround, no back-references). Repeats are
unbounded (`*`) rather than bounded (`{0,24}`) where the text allows: Hyperscan runs a bounded repeat of a wide
class as many states, an unbounded one as a single loop, and the engine bounds every match by `max_length`.
"""

from __future__ import annotations

import re

# A word of the name matches in any case style. Before it: start, a non-letter (`_`, `-`, `.`, `$`, space,
# quote), or (camelCase) a lower-case letter or digit when the word starts upper-case: `vendorToken`.
_WORD = re.compile(r"[a-z][a-z0-9]*")

# After the secret word: the rest of the identifier (`_token_v2`, `Token`, `.password`, `__ACCESS_KEY`).
IDENT_TAIL = r"[\w.-]*"

# A type between the name and the operator: `x: str =`, `x: &'static str =`, `var x string =`, `x: String =`.
TYPE = (
    r"(?:[ \t]*:[ \t]*(?:str|bytes|string|String|SecretStr|Optional\[str\]|str[ \t]*\|[ \t]*None"
    r"|&(?:'static[ \t]+)?str|[A-Z]\w*(?:<\w+>)?)[ \t]*"
    r"|[ \t]+(?:string|String|str|\[\]byte|&str)[ \t]*)?"
)

# What closes the key before the operator: a quote (`"key":`), an escaped quote (`\"key\":`), `]`, `)`.
CLOSE = r"[\x60'\"\]\\)]{0,3}"

OPERATOR = (
    r"[ \t]*(?:=|:=|::=|:::=|\?=|\.=|\+=|\?\?=|\|\|=|:|=>|->|<-|>"
    r"|,[ \t]*(?:[\x60'\"]|\\['\"])|[ \t]+value[ \t]*=|[ \t]+(?:value|default)[ \t]*:)"
)

# Opening of the value: spaces, a newline and indentation (XML element text, YAML folded), a YAML block scalar
# indicator before the newline (`key: |`, `key: >-`), quotes, brackets.
OPEN = r"[ \t]*(?:(?:[|>][-+]?[ \t]*)?\r?\n[ \t]*)?(?:[(\[{][ \t]*)?[@$]?[\x60'\"\\]{0,3}"

# Fallback of an environment lookup: `getenv("X", "v")`, `X || "v"`, `${X:-v}`, `.unwrap_or("v")`, `.orElse("v")`.
FALLBACK = (
    r"(?:[\x60'\"]\){0,2}[ \t]*,[ \t]*(?:default[ \t]*=[ \t]*)?[\x60'\"]"
    r"|[\x60'\"\]\\]{0,3}\){0,2}[ \t]*(?:\|\||\?\?|\?:|:-|[ \t]or[ \t]|\{|\|[ \t]*default[ \t]*\(?"
    r"|\.unwrap_or(?:_else)?\((?:\|_\|[ \t]*)?|\.orElse\()[ \t]*[\x60'\"\\]{0,2})"
)

# Space-separated forms: `ENV X_TOKEN v` (Dockerfile), `setx X_TOKEN v`, `--x-token v`, also right after a grep
# prefix (`Dockerfile:7:ENV X_TOKEN v`). (Not `set`, nor single-dash flags: both are so common in text that
# Hyperscan would track every one.)
SPACED_PREFIX = r"(?:(?:^|[ \t;&|:])(?:ENV|setx)[ \t]*[\w.-]*|(?:^|[ \t:])--[\w-]*)"

# Before the value: any of these. After it: one of these, or the end of the text.
LEFT = r"(?:[\s\x60'\"=:>(,\[{]|\\[nrt\"'])"
RIGHT = r"(?:[\s\x60'\";,)}\]<>&|\\]|$)"


def word(name: str, embedded: bool = False) -> str:
    """A name word in any case style, at a word start: `token` matches `x_token`, `X_TOKEN`, `xToken`,
    `XToken`, `token`; `lob` does not match inside `global`. A word is lower-case letters and digits."""
    if not _WORD.fullmatch(name):
        raise ValueError(f"a name word is lower-case letters and digits: {name!r}")
    cap = name[0].upper() + name[1:]
    start = "[^A-Za-z]" if embedded else "(?:^|[^A-Za-z])"  # Hyperscan refuses `^` after other items
    joined = f"|[A-Z0-9]{name.upper()}" if len(name) >= 5 else ""  # PGPASSWORD, GHTOKEN
    return f"(?:{start}(?i:{name})|(?-i:[a-z0-9]{cap}|[a-z0-9]{name.upper()}{joined}))"


def name(words: list[str], embedded: bool = False) -> str:
    """Alternatives, each a name made of words separated by nothing, `_`, `-`, `.` or a space: `api key`
    matches `apikey`, `api_key`, `apiKey`, `API-KEY`. An all-capitals entry (`KEY`) matches only as the
    last part of an UPPER_SNAKE name (`STRIPE_KEY`)."""
    out = []
    for entry in words:
        if entry.isupper():  # `KEY`: an UPPER_SNAKE name ending in it (`STRIPE_KEY`), not any `key`
            out.append(f"(?-i:[A-Z0-9]_{entry})")
            continue
        parts = entry.split()
        first, rest = word(parts[0], embedded), parts[1:]
        out.append(first + "".join(rf"[_.\- ]?(?i:{p})" for p in rest))
    return "(?:" + "|".join(out) + ")"


def last_word(words: list[str]) -> str:
    """The all-capitals entries as the last word of a longer name in the other case styles, with nothing after
    it: `KEY` matches `vendor_key`, `vendorKey`, `VendorKey`, `vendor-key`, `vendor.key`, but not `key`,
    `keyboard`, `vendor_key_id` or `filePattern` (for `PAT`). UPPER_SNAKE names keep `name()`'s form, which
    lets the identifier go on (`STRIPE_KEY_PROD`). Empty when there is no such entry."""
    out = []
    for entry in words:
        if entry.isupper():
            low, cap = entry.lower(), entry[0] + entry[1:].lower()
            out.append(f"(?-i:[a-z0-9][_.\\-]{low}|[a-z0-9]{cap})")
    return "|".join(out)


def identifier(words: list[str], embedded: bool = False) -> str:
    """A whole identifier holding one of the names: `name()` and the rest of the identifier, or a
    `last_word()` form, which ends the identifier. An UPPER_SNAKE name ending in an all-capitals entry goes on
    only after a separator or digit (`STRIPE_KEY_PROD`, `API_KEY2`, `STRIPE_KEYS`), not into a longer word:
    `FILE_PATTERN` and `LD_LIBRARY_PATH` hold no `PAT`."""
    spelled = [w for w in words if not w.isupper()]
    forms = [name(spelled, embedded) + IDENT_TAIL] if spelled else []
    forms += [f"(?-i:[A-Z0-9]_{entry}S?)(?:[_.\\-0-9]{IDENT_TAIL})?" for entry in words if entry.isupper()]
    last = last_word(words)
    if last:
        forms.append(last)
    return forms[0] if len(forms) == 1 else "(?:" + "|".join(forms) + ")"


def assignment(words: list[str], value: str) -> str:
    """The strict form: an identifier holding one of the names, an assignment, the value."""
    ident = identifier(words)
    assigned = f"{ident}{TYPE}(?:{CLOSE}{OPERATOR}{OPEN}|{FALLBACK})"
    spaced = f"{SPACED_PREFIX}{identifier(words, embedded=True)}[ \\t]+[\\x60'\"]?"
    return f"(?:{assigned}|{spaced})(?P<secret>{value}){RIGHT}"


def context(words: list[str], value: str, window: int) -> str:
    """The loose form: one of the names, then the value within `window` characters."""
    return f"{name(words)}[\\s\\S]{{0,{window}}}{LEFT}(?P<secret>{value}){RIGHT}"
