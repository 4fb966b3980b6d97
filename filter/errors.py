"""Errors a user can act on: one tree, so a caller catches FilterError (or a branch) and shows the message.

FilterError
├── ConfigError                     the operator fixes a file, flag or environment variable
│   ├── SettingsError               bad config file, env or flags (the process exits non-zero)
│   ├── RulePackError               "packs/pii.yaml:42: credit-card: message"
│   ├── RulePackErrors              several RulePackErrors from one load
│   └── ConfigImportError           a foreign rule config cannot be imported (unreadable, invalid TOML, ...)
└── RequestError                    answered to the client; message is safe to show (never quotes the body)
    ├── MalformedRequest            400
    │   └── JSONSyntaxError         400, not UTF-8 JSON at all (filter.formats.jsonload; names the byte offset)
    ├── UnsupportedEncoding         415
    ├── BodyTooLarge                413 (byte limit, decompression caps, partial body)
    ├── WorkLimitExceeded           413 (JSON nodes, CPU seconds per Check)
    ├── DeadlineExceeded            503 (the gateway stopped waiting)
    └── Overloaded                  503 (the worker's in-flight budget is full)

A policy deny (secret found, prompt too large) is a Decision, not an exception.
"""

from __future__ import annotations

from filter.reasons import Reason


class FilterError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(FilterError):
    pass


class SettingsError(ConfigError):
    pass


class RulePackError(ConfigError):
    def __init__(self, file: str, line: int, rule_id: str, message: str) -> None:
        self.file = file
        self.line = line
        self.rule_id = rule_id
        self.message = message
        super().__init__(f"{file}:{line}: {rule_id}: {message}")


class RulePackErrors(ConfigError):
    """Several pack errors found in one load; each keeps file, line and rule id."""

    def __init__(self, errors: list[RulePackError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ConfigImportError(ConfigError):
    """A foreign rule config (e.g. gitleaks TOML) cannot be imported at all: unreadable, invalid, wrong shape."""


class RequestError(FilterError):
    http_status = 400
    reason = Reason.BAD_REQUEST

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class MalformedRequest(RequestError):
    http_status = 400
    reason = Reason.MALFORMED_REQUEST


class UnsupportedEncoding(RequestError):
    http_status = 415
    reason = Reason.UNSUPPORTED_ENCODING


class BodyTooLarge(RequestError):
    http_status = 413
    reason = Reason.BODY_TOO_LARGE


class WorkLimitExceeded(RequestError):
    """Too many JSON nodes or too much CPU time for one body (filter.formats.limits)."""

    http_status = 413
    reason = Reason.WORK_LIMIT_EXCEEDED


class DeadlineExceeded(RequestError):
    """The gateway's deadline for this Check passed: stop working on a request nobody waits for."""

    http_status = 503
    reason = Reason.DEADLINE_EXCEEDED


class Overloaded(RequestError):
    """The worker's in-flight budget is full (filter.server.admission): answered at once, retry later."""

    http_status = 503
    reason = Reason.OVERLOADED
