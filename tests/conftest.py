"""Shared factories. Nothing here fakes a part of the product."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, load_ruleset
from tests.support.envelopes import make_envelope as make_envelope  # re-exported: tests import it from here


def write_pack(directory: Path, text: str, name: str = "pack.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def shipped_ruleset() -> Ruleset:
    return load_ruleset([SHIPPED_PACKS], Fingerprinter(b"test-key"))
