"""Decoding and work limits: each one, when passed, is a clear 4xx (or a 503 when the filter, not the body, is
the limit).

Byte limits bound what one body may be; the work limits bound what one body may cost: JSON nodes (strings,
keys, objects, arrays; each costs ~100-250 bytes and ~1 µs once parsed and walked, so a body of tiny strings
is far dearer than its size), CPU seconds per Check, and Envoy's deadline. The work limits are enforced
through a WorkBudget that the server opens around one Check (`work_budget`). Safe points call `check_work`:
after each JSON parse (the body, JSON inside strings), before the rule scan, after Hyperscan and every 16 rule
confirmations; JSON parsing calls `charge_nodes` first, from a count made without parsing. Without an open
budget (CLI, library use) only the per-document node limit applies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from filter.errors import DeadlineExceeded, WorkLimitExceeded


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_body_bytes: int = 16 * 1024 * 1024  # as received (still encoded) -> 413
    max_decompressed_bytes: int = 64 * 1024 * 1024  # after each Content-Encoding layer -> 413
    max_compression_ratio: int = 200  # decoded : received, checked once past 1 MiB -> 413
    max_json_depth: int = 64  # nesting of objects and arrays -> 400
    max_base64_document_bytes: int = 8 * 1024 * 1024  # one decoded base64 text document -> 413
    # Work per Check. 500k nodes parse and walk in ~0.5-1.5 s and ~60-130 MB; real agent requests have
    # tens of thousands. Nodes of JSON found inside strings count too. -> 413 work_limit_exceeded
    max_json_nodes: int = 500_000
    max_check_cpu_seconds: float = 3.0  # CPU time of one Check (the Check's thread) -> 413 work_limit_exceeded
    # Per worker process: the memory of the Checks in flight, estimated as BODY_COPIES bytes per body byte
    # plus NODE_BYTES per JSON node. A Check that would pass it is answered at once with 503 overloaded and
    # retry-after (see admission.py). 384 MiB: four 16 MiB bodies at once, or dozens of ordinary ones.
    max_inflight_bytes: int = 384 * 1024 * 1024


# Measured: a 16 MiB body costs ~6x its size while checked (the gRPC message, the body, its decoded text, the
# parsed strings, the scanner's encoded copy and buffer); a parsed JSON node up to ~250 bytes (str or dict,
# list slot, segment, location).
BODY_COPIES = 6
NODE_BYTES = 256


class WorkBudget:
    """One Check's allowance: CPU seconds of its thread, a wall-clock deadline, JSON nodes.

    Mutable and confined to the thread that runs the Check. `on_charge` is told the extra memory each
    node charge implies (the worker's admission budget), and may raise to refuse it.
    """

    __slots__ = ("limits", "deadline", "nodes", "body_bytes", "_cpu_start", "_on_charge")

    def __init__(self, limits: DecodeLimits, deadline: float | None = None,
                 on_charge: Callable[[int], None] | None = None, body_bytes: int = 0) -> None:
        self.limits = limits
        self.deadline = deadline  # time.monotonic() value; None: no deadline known
        self.nodes = 0
        self.body_bytes = body_bytes  # the body size already charged (as received)
        self._cpu_start = time.thread_time()
        self._on_charge = on_charge

    def cpu_seconds(self) -> float:
        return time.thread_time() - self._cpu_start

    def check(self, where: str) -> None:
        """Stop here if the caller has gone (deadline) or this Check has used its CPU time."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded(f"the gateway's time for this check ran out (at {where}); retry later")
        if self.cpu_seconds() > self.limits.max_check_cpu_seconds:
            raise WorkLimitExceeded(
                f"checking this request body needs more than the limit of {self.limits.max_check_cpu_seconds:g} "
                f"CPU seconds (stopped at {where}); send a smaller or simpler body"
            )

    def charge_decoded(self, size: int) -> None:
        """A decompressed body larger than the one received holds more memory: charge the difference."""
        extra = size - self.body_bytes
        if extra > 0:
            self.body_bytes = size
            if self._on_charge is not None:
                self._on_charge(extra * BODY_COPIES)

    def charge_nodes(self, nodes: int, where: str) -> None:
        self.nodes += nodes
        if self.nodes > self.limits.max_json_nodes:
            raise too_many_nodes(self.limits, where)
        if self._on_charge is not None:
            self._on_charge(nodes * NODE_BYTES)
        self.check(where)


def too_many_nodes(limits: DecodeLimits, where: str) -> WorkLimitExceeded:
    return WorkLimitExceeded(
        f"the request's JSON (JSON inside strings included) has more than {limits.max_json_nodes} strings, "
        f"objects and arrays, the filter's work limit (stopped at the {where}); send fewer, larger pieces"
    )


_BUDGET: ContextVar[WorkBudget | None] = ContextVar("llm_filter_work_budget", default=None)


@contextmanager
def work_budget(limits: DecodeLimits, deadline: float | None = None,
                on_charge: Callable[[int], None] | None = None, body_bytes: int = 0) -> Iterator[WorkBudget]:
    """Bound the work of the Check running in this thread (a context variable: the decode path, the pipeline
    and the servicer share it without every signature in between carrying it)."""
    budget = WorkBudget(limits, deadline, on_charge, body_bytes)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def check_work(where: str) -> None:
    """A safe point: raise WorkLimitExceeded / DeadlineExceeded when the open budget is spent; else nothing."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.check(where)


def charge_decoded(size: int) -> None:
    """Tell the open budget the size of the decoded body about to be parsed (no-op without a budget)."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge_decoded(size)


def charge_nodes(nodes: int, limits: DecodeLimits, where: str) -> None:
    """Count parsed JSON nodes against the open budget (all documents of the Check), else against `limits`."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge_nodes(nodes, where)
    elif nodes > limits.max_json_nodes:
        raise too_many_nodes(limits, where)
