"""PII in ordinary developer material: where an e-mail address sits decides between block and log. Pure.

An agent reads source files whose header names their author (`Author: Name <a@b>`, `__author__ = ...`,
`@author`, `Copyright (c) 2020 Name <a@b>`), runs `git log` / `git blame -e` / `git shortlog -se`, sees commit
trailers (`Signed-off-by:`, `Co-authored-by:`, `Reviewed-by:`), licence files and package metadata (`"author"`,
`maintainer`, `author_email=`, `authors = [...]`). Those addresses say who wrote the code; blocking them stops
ordinary work. An address in any other place (a list of addresses, a CSV of customers, a JSON record) is still
the rule's own action. Other PII (SSNs, card numbers, phone numbers) is never excused.
"""

from __future__ import annotations

import re
from dataclasses import replace

from filter.model import Action, Category, Finding

# Rules whose findings an authorship context turns into a logged finding.
CONTEXT_RULES = frozenset({"email-address"})

# Authorship keywords on the line, left of the address.
_AUTHORSHIP = re.compile(
    r"(?i)(?:\bauthors?\b|__author__|__email__|__maintainer__|__credits__|@author\b|\bmaintainers?\b|"
    r"\bcontributors?\b|copyright|\(c\)|©|\bsigned-off-by\b|\bco-authored-by\b|\breviewed-by\b|\backed-by\b|"
    r"\btested-by\b|\breported-by\b|\bsuggested-by\b|\bhelped-by\b|\bcommit(?:ter)?:|\bauthor-email\b|"
    r"\bmaintainer-email\b|\bauthor_email\b|\bmaintainer_email\b|\bmaintained\b|\bmailto:)"
)
# "by" credits a person only when a name follows it right up to the address (`Written by Greg Ward <`,
# `by Tim Peters (`) or ends the line above; "sent by billing to <customer>" is no credit.
_BY_NAME = re.compile(r"(?i)\bby\s+(?:[\w.'-]+,?\s+){1,5}[<(]\s*$")
_BY_LINE = re.compile(r"(?i)\bby\b")
# A continuation of an authorship line above (a comment or string going on: `#     fdrake@acm.org`,
# `"Mike Verdone <a@b>, "`): only comment and quote marks, then at most a name, before the address.
_CONTINUATION = re.compile(r"^[\s#*;/'\"(\[,-]*(?:[\w.'-]+,?\s+){0,4}[<(]?$")
_CONTINUATION_LOOKBACK_LINES = 12
_URL = re.compile(r"https?://\S+")  # an author's home page between the name and the address
# A credit in a code comment: `# Gerrit Holl <gerrit@nl.linux.org> moved ...`, `# ... (tim@python.org)`.
_COMMENT_CREDIT = re.compile(r"^\s*(?:#+|//+|/?\*+|;+|--|%+)\s.*[<(]$")
# `git blame -e`: `<hash> (<a@b> 2020-01-01 12:00:00 +0100 12) code` (`^` marks a boundary commit).
_BLAME = re.compile(r"^\^?[0-9a-f]{7,40}\b[^\n(]*\(<?$")
# `git shortlog -se`: `    12\tName <a@b>`.
_SHORTLOG = re.compile(r"^\s*\d+\t[^<\n]*<$")
# A line that is only an `email` field (pyproject `{name = "X", email = "a@b"}`, a JSON `"email": "a@b"`):
# authorship when one of the few lines above opens an authors/maintainer block.
_EMAIL_FIELD = re.compile(r"(?i)(?:^|[{,\s])[\"']?e-?mail[\"']?\s*[:=]\s*[\"']?$")
_FIELD_LOOKBACK_LINES = 3
# JSON walked into fields: the location names the key (`...$.author`, `...$.maintainers[0].email`).
_AUTHORSHIP_FIELD = re.compile(
    r"(?i)(?:^|[.$])(?:authors?|maintainers?|contributors?|author_?email|maintainer_?email|committer)"
    r"(?:\[\d+\])?(?:\.(?:e-?mail|name))?$"
)


def _line_left(text: str, start: int) -> tuple[int, str]:
    line_start = text.rfind("\n", 0, start) + 1
    return line_start, text[line_start:start]


def _authorship(text: str, start: int) -> bool:
    line_start, left = _line_left(text, start)
    if _AUTHORSHIP.search(left) or _BY_NAME.search(left):
        return True
    if _BLAME.search(left) or _SHORTLOG.search(left) or _COMMENT_CREDIT.match(left):
        return True
    if _EMAIL_FIELD.search(left):  # the few lines above open an authors/maintainer block
        above = text[max(0, line_start - 600):line_start].split("\n")[-(_FIELD_LOOKBACK_LINES + 1):-1]
        return any(_AUTHORSHIP.search(line) for line in above)
    if _CONTINUATION.match(left):  # walk up through continuation lines to the authorship line they continue
        lines = text[max(0, line_start - 4000):line_start].split("\n")[:-1]
        for line in reversed(lines[-_CONTINUATION_LOOKBACK_LINES:]):
            if _AUTHORSHIP.search(line) or _BY_LINE.search(line):
                return True
            rest = line.strip(" \t#*/;'\"-")
            if "@" not in line and rest and not _URL.fullmatch(rest):
                return False  # a line of other text: the address does not continue an authorship line
    return False


def in_context(finding: Finding, text: str) -> Finding:
    """The finding as the request's context makes it: an authorship address is logged, not blocked.

    `text` is the text of the segment the finding points into (its original text: offsets point there)."""
    if finding.rule_id not in CONTEXT_RULES or finding.category is not Category.PII or finding.action is Action.LOG:
        return finding
    if _AUTHORSHIP_FIELD.search(finding.location):
        return replace(finding, action=Action.LOG)
    if not 0 <= finding.start <= len(text) or not _authorship(text, finding.start):
        return finding
    return replace(finding, action=Action.LOG)
