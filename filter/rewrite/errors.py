"""The one error of rewriting: the caller denies the request (fail closed)."""

from __future__ import annotations

from filter.errors import FilterError


class RewriteError(FilterError):
    """A body (or a response) could not be rewritten safely. The message never quotes the body."""
