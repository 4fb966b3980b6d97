"""The switch over the hot path's shortcuts: cheaper ways to compute exactly what the plain code computes.

Every shortcut keeps its plain counterpart next to it and takes it when `plain()` is active, so tests run
each request both ways and compare decisions, findings and status (tests/test_differential.py). A context
variable, not a global: a test's plain run does not change what other threads compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_PLAIN: ContextVar[bool] = ContextVar("llm_filter_plain_path", default=False)


def enabled() -> bool:
    return not _PLAIN.get()


@contextmanager
def plain() -> Iterator[None]:
    """Run the enclosed code with every shortcut off."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)
