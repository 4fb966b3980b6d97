"""Ports on 127.0.0.1 for servers a test starts."""

from __future__ import annotations

import socket

from tests.support.waiting import wait_until


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; closed again before it is returned)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """P such that P, P+1, …, P+count-1 are all free now: `serve --workers N` listens on N consecutive ports."""
    for _ in range(100):
        base = free_port()
        if base + count > 65536:
            continue
        try:
            for i in range(1, count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + i))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def listening_socket(backlog: int = 0) -> socket.socket:
    """A socket bound to a free port and listening, that never accepts: a busy port, or (with a backlog) a
    server that takes connections and answers nothing. Close it (or use it as a context manager) when done."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    if backlog:
        held.listen(backlog)
    else:
        held.listen()
    return held


def accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something listens on 127.0.0.1:`port`."""
    wait_until(f"a listener on 127.0.0.1:{port}", lambda: accepts(port), timeout, interval=0.05, error=TimeoutError)
