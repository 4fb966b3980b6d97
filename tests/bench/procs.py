"""Bench-only processes; the filter server, ports and waiting come from tests/support/."""

from __future__ import annotations

import subprocess
import sys

from tests.support.ports import wait_port
from tests.support.processes import ROOT


def start_trivial(port: int) -> subprocess.Popen[bytes]:
    """The do-nothing authz server (tests/bench/trivial_authz.py): the floor the filter is compared against."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.trivial_authz", f"127.0.0.1:{port}"], cwd=ROOT)
    wait_port(port)
    return proc
