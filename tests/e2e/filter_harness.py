"""The real filter server (`python -m filter serve`) as a process the e2e tests can stall, kill and restart.

    with FilterProcess(tmp_path, config=cfg) as flt:     # ready (gRPC health SERVING) on return
        ... render Envoy with --filter flt.address ...
        flt.pause(); flt.resume()                        # SIGSTOP / SIGCONT
        flt.kill(); flt.start()                          # SIGKILL, then a new process on the same port
        flt.audit()                                      # its JSON audit lines (stdout), oldest first

Starting, health-waiting and stopping reuse tests/support/processes.py. Its stdout (the audit) and stderr (the log) go to
files in `workdir`, appended across restarts, so neither pipe can fill up and block the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from tests.support import processes
from tests.support.ports import free_port
from tests.support.waiting import wait_until


class FilterProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        config: Path | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        name: str = "filter",
    ) -> None:
        self.port = port or free_port()
        self.config = config
        self.env = env or {}
        self.audit_path = workdir / f"{name}.audit.jsonl"
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self._paused = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "filter not started"
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> FilterProcess:
        """Start a new process on this port (also after kill()); returns once gRPC health says SERVING."""
        assert not self.alive(), "filter already running"
        args = ["--config", str(self.config)] if self.config else []
        with self.audit_path.open("ab") as audit:
            proc = processes.start_filter(self.port, *args, env=self.env, stdout=audit)  # type: ignore[arg-type]
        self._proc, self._paused = proc, False
        assert proc.stderr is not None
        self._drain = threading.Thread(target=_copy, args=(proc.stderr, self.log_path), daemon=True)
        self._drain.start()
        return self

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a stalled filter). Returns once the kernel
        reports every thread of it stopped (a signal is queued, not delivered, when kill() returns)."""
        assert self.alive(), "pause(): the filter process is not running"
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True
        wait_until("the filter process is stopped", lambda: _all_stopped(self.pid), timeout=10, interval=0.01)

    def resume(self) -> None:
        if self._paused and self.alive():
            os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye (a crashed filter)."""
        proc = self._proc
        assert proc is not None
        proc.kill()
        proc.wait(timeout=10)
        self._paused = False
        self._join_drain()

    def stop(self) -> None:
        """SIGTERM (after SIGCONT if paused) and wait; killed if it does not drain in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._paused and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        self._paused = False
        processes.stop(proc)
        self._join_drain()

    def _join_drain(self) -> None:
        if self._drain is not None:
            self._drain.join(timeout=10)
            self._drain = None

    def audit(self) -> list[dict[str, Any]]:
        """Every audit line written so far (the server flushes each line before answering Check)."""
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> FilterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _all_stopped(pid: int) -> bool:
    """Every thread of `pid` in state T (stopped), from /proc."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return bool(states) and all(state in ("T", "t") for state in states)


def _copy(src: IO[bytes], path: Path) -> None:
    with path.open("ab") as out:
        while chunk := src.read1(65536):  # type: ignore[attr-defined]
            out.write(chunk)
            out.flush()


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """A filter config file (YAML is a superset of JSON)."""
    path.write_text(json.dumps(config, indent=2))
    return path


def replace_file(path: Path, text: str) -> None:
    """Write `path` in one step (rename), so a watcher never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
