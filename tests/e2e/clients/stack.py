"""Helpers shared by the SDK tests (fixtures are in conftest.py)."""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass

from ..envoy_harness import EnvoyProcess

WORKSPACE_RPM = 2
CLEAN_PROMPT = "Refactor the parser in src/app.py to use a dataclass and keep the tests green."


def base_url(envoy: EnvoyProcess, prefix: str = "") -> str:
    return f"http://127.0.0.1:{envoy.listen_port}{prefix}"


def new_workspace() -> str:
    return f"ws-sdk-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Leak:
    """A freshly generated AWS credential pair (the shape of a real one, never a documented example)."""

    key_id: str
    secret: str

    @property
    def prompt(self) -> str:
        return ("Why does this fail?\n[default]\n"
                f"aws_access_key_id = {self.key_id}\naws_secret_access_key = {self.secret}\n")  # fmt: skip


def aws_leak() -> Leak:
    key_id = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    alphabet = string.ascii_letters + string.digits + "+/"
    body = "".join(secrets.choice(alphabet) for _ in range(37))
    return Leak(key_id, body[:12] + "/7" + body[12:24] + "q" + body[24:])  # a digit, a slash, mixed case: token-like
