"""What every SDK test expects of an error a user sees (str(exc) is what a program or agent prints)."""

from __future__ import annotations

from .stack import Leak


def assert_blocked_message(shown: str, decision_id: str, leak: Leak) -> None:
    """A block names the content filter and the decision id, never the secret, and reads as no login problem."""
    assert "content filter" in shown.lower(), shown
    assert decision_id and decision_id in shown, shown
    assert leak.key_id not in shown and leak.secret not in shown
    assert "authenticat" not in shown.lower(), shown  # e.g. "Failed to authenticate" would send users to their keys


def assert_unavailable_message(shown: str) -> None:
    """A fail-closed 503 says the content filter is the reason, so users don't chase the provider."""
    assert "content filter" in shown.lower(), shown


def assert_rate_limit_message(shown: str | None) -> None:
    """Something a user can read (SDKs show "None" or nothing when the body has no message where they look)."""
    assert shown is not None and shown.strip() not in ("", "None"), repr(shown)
