"""PII in ordinary developer material: where an e-mail address sits decides between block and log. Pure.

An agent reads source files whose header names their author (`Author: Name <a@b>`, `__author__ = ...`,
`@author`, `Copyright (c) 2020 Name <a@b>`), runs `git log` / `git blame -e` / `git shortlog -se`, sees commit
trailers (`Signed-off-by:`, `Co-authored-by:`, `Reviewed-by:`), licence files and package metadata (`"author"`,
`maintainer`, `author_email=`, `authors = [...]`). Those addresses say who wrote the code; blocking them stops
ordinary work. An address in any other place (a list of addresses, a CSV of customers, a JSON record) is still
the rule's own action. Other PII (SSNs, card numbers, phone numbers) is never excused.

A login on a host is not an address either: `ssh deploy@web1.corp.io`, `scp f ops@host:/tmp`, a git remote
`deploy@git.corp.io:team/app.git`, a shell prompt `dev@box.corp.io:~/app$` or `[dev@box.corp.io ~]$`, ssh's own
`user@host: Permission denied`. Those findings are logged too, so the audit still shows them.
"""

from __future__ import annotations

import re
from dataclasses import replace

from filter.model import Action, Category, Finding

# Rules whose findings an authorship context turns into a logged finding.
CONTEXT_RULES = frozenset({"email-address"})

# Authorship keywords on the line, left of the address.
_AUTHORSHIP = re.compile(
    r"(?i)(?:(?:\b|module|section|code)authors?\b|__author__|__email__|__maintainer__|__credits__|@author\b|\bmaintainers?\b|"
    r"\bcontributors?\b|copyright|\(c\)|©|\bsigned-off-by\b|\bco-authored-by\b|\breviewed-by\b|\backed-by\b|"
    r"\btested-by\b|\breported-by\b|\bsuggested-by\b|\bhelped-by\b|\bcommit(?:ter)?:|\bauthor-email\b|"
    r"\bmaintainer-email\b|\bauthor_email\b|\bmaintainer_email\b|\bmaintained\b|\bmailto:|\buploaders?:)"
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
_EMAIL_FIELD = re.compile(r"(?i)(?:^|[{,.\s])[\"']?e-?mail[\"']?\s*[:=]\s*\[?\s*[\"']?$")
_FIELD_LOOKBACK_LINES = 3
# JSON walked into fields: the location names the key (`...$.author`, `...$.maintainers[0].email`).
_AUTHORSHIP_FIELD = re.compile(
    r"(?i)(?:^|[.$])(?:authors?|maintainers?|contributors?|author_?email|maintainer_?email|committer)"
    r"(?:\[\d+\])?(?:\.(?:e-?mail|name))?$"
)


# `git format-patch`: `From: Name <a@b>` under the `From <commit hash> Mon Sep 17 00:00:00 2001` line.
_PATCH_FROM = re.compile(r"^From: [^\n]*$")
_PATCH_START = re.compile(r"^From [0-9a-f]{40} ", re.MULTILINE)
# `.mailmap`: `Proper Name <proper@a.b> Commit Name <commit@a.b>`, two addresses on a line of names.
_MAILMAP = re.compile(r"^[^<>\n@]*<[^<>\s@]+@[^<>\s]+>[^<>\n@]*<[^<>\s@]+@[^<>\s]+>\s*$")

# A login on a host. Right of the address: a remote path (`:/srv`, `:~/app`, `:team/app.git`), the rest of a
# prompt (`:~/app$`, ` ~]$` after `[`), or ssh's own messages.
_REMOTE_PATH = re.compile(r":(?:[~/.]|[\w.-]+/|\d+/)")
_PROMPT_BRACKET = re.compile(r"^ [^\]\n]*\][$#]")
_SSH_MESSAGE = re.compile(r"^: (?:Permission denied|Connection (?:refused|closed|reset|timed out))")
# Left of it on the line: a remote-login command, then only options, paths and numbers before the address.
_LOGIN_COMMAND = re.compile(
    r"(?:^|[\s;&|(`'\"$])(?:ssh|scp|sftp|rsync|mosh|ssh-copy-id|sshfs|autossh|rsh|telnet|ProxyJump|"
    r"ProxyCommand|git[ \t]+(?:clone|remote[ \t]+(?:add|set-url)[ \t]+\S+|push|pull|fetch|ls-remote))"
    r"(?P<args>(?:[ \t]+(?:-[^\s]*|[^\s@]*[/.~][^\s@]*|\d+))*)[ \t]+[\"']?$"
)


def _host_login(text: str, start: int, end: int) -> bool:
    """The address is a user on a host in a command, a remote path, a prompt or ssh's output."""
    right = text[end:end + 80]
    if _REMOTE_PATH.match(right) or _SSH_MESSAGE.match(right):
        return True
    _, left = _line_left(text, start)
    if left.endswith("[") and _PROMPT_BRACKET.match(right):
        return True
    return _LOGIN_COMMAND.search(left[-400:]) is not None


def _line_left(text: str, start: int) -> tuple[int, str]:
    line_start = text.rfind("\n", 0, start) + 1
    return line_start, text[line_start:start]


def _authorship(text: str, start: int) -> bool:
    line_start, left = _line_left(text, start)
    if _AUTHORSHIP.search(left) or _BY_NAME.search(left):
        return True
    if _BLAME.search(left) or _SHORTLOG.search(left) or _COMMENT_CREDIT.match(left):
        return True
    if _PATCH_FROM.match(left) and _PATCH_START.search(text, max(0, line_start - 300), line_start):
        return True
    line_end = text.find("\n", start)
    if "<" in left and _MAILMAP.match(text[line_start:line_end if line_end != -1 else len(text)]):
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
    if not 0 <= finding.start <= finding.end <= len(text):
        return finding
    if _authorship(text, finding.start) or _host_login(text, finding.start, finding.end):
        return replace(finding, action=Action.LOG)
    return finding
