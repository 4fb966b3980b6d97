"""Shared factories. Nothing here fakes a part of the product."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from filter.model import Envelope
from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, load_ruleset


def make_envelope(body: bytes | str | dict[str, Any], path: str = "/v1/chat/completions",
                  headers: dict[str, str] | None = None, method: str = "POST", partial: bool = False) -> Envelope:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return Envelope(method, path, {"content-type": "application/json", **(headers or {})}, body, partial)


def write_pack(directory: Path, text: str, name: str = "pack.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def shipped_ruleset() -> Ruleset:
    return load_ruleset([SHIPPED_PACKS], Fingerprinter(b"test-key"))
