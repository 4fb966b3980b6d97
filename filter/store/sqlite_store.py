"""The embedded store: one SQLite file shared by every worker process of a host; survives restarts.

WAL journal (readers never wait for the writer), every change in a `BEGIN IMMEDIATE` transaction (takes the
write lock up front, so two workers cannot both read "room left" and both reserve it), and a busy timeout: a
lock held longer than that is a StoreError, not a hang.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from zoneinfo import ZoneInfo

from filter.store.base import DEFAULT_RESERVATION_TIMEOUT, EXPIRE_BATCH, RATE_WINDOW_SECONDS, RETENTION_SECONDS
from filter.store.model import (
    Budget,
    Denial,
    RateHit,
    Reservation,
    StoreError,
    Usage,
    check_amount,
    check_id,
    check_rate,
    span,
    strictest,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_window (
  budget TEXT NOT NULL, kind TEXT NOT NULL, wid TEXT NOT NULL,
  used INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0, ends_at REAL NOT NULL,
  PRIMARY KEY (budget, kind, wid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservation (
  id TEXT PRIMARY KEY, amount INTEGER NOT NULL, deadline REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservation_deadline ON reservation (deadline);
CREATE TABLE IF NOT EXISTS reservation_window (
  reservation TEXT NOT NULL, budget TEXT NOT NULL, kind TEXT NOT NULL, wid TEXT NOT NULL,
  PRIMARY KEY (reservation, budget, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_window (
  key TEXT NOT NULL, value TEXT NOT NULL, seconds INTEGER NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (key, value, seconds, start)) WITHOUT ROWID;
"""


class SqliteStore:
    """Budgets and rate counts in one SQLite file; open one per process (it reopens itself after a fork)."""

    def __init__(self, path: str | Path, *, tz: str | ZoneInfo = "UTC", clock: Callable[[], float] = time.time,
                 reservation_timeout: float = DEFAULT_RESERVATION_TIMEOUT, busy_timeout: float = 2.0) -> None:
        self.path = str(path)
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.clock = clock
        self.reservation_timeout = reservation_timeout
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()  # one connection per store object, used by one thread at a time
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        with self._tx() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    # -- connection and transactions ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child must not share its parent's handle
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a process crash loses nothing committed
            except sqlite3.Error as e:
                raise StoreError(f"sqlite store {self.path}: {e}") from e
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"sqlite store {self.path}: {e}") from e
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"sqlite store {self.path}: {e}") from e
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- budgets ------------------------------------------------------------------------------------------

    def reserve(self, reservation_id: str, amount: int, budgets: Sequence[Budget]) -> Reservation:
        check_id(reservation_id)
        check_amount("amount", amount)
        now = self.clock()
        chosen = strictest(tuple(budgets))
        spans = [span(b.window, now, self.tz) for b in chosen]
        with self._tx() as conn:
            self._expire(conn, now, EXPIRE_BATCH)
            row = conn.execute("SELECT amount FROM reservation WHERE id = ?", (reservation_id,)).fetchone()
            if row is not None:
                return Reservation(reservation_id, int(row[0]))
            for b, s in zip(chosen, spans, strict=True):
                got = conn.execute("SELECT used, reserved FROM budget_window WHERE budget = ? AND kind = ? AND wid = ?",
                                   (b.key, b.window.value, s.id)).fetchone()
                used, reserved = (int(got[0]), int(got[1])) if got else (0, 0)
                if used + reserved + amount > b.limit:
                    return Reservation(reservation_id, amount,
                                       Denial(b, amount, used, reserved, s.reset_seconds(now), s.resets_at))
            for b, s in zip(chosen, spans, strict=True):
                conn.execute("INSERT INTO budget_window (budget, kind, wid, reserved, ends_at) VALUES (?, ?, ?, ?, ?) "
                             "ON CONFLICT (budget, kind, wid) DO UPDATE SET reserved = reserved + excluded.reserved",
                             (b.key, b.window.value, s.id, amount, s.end))
                conn.execute("INSERT INTO reservation_window VALUES (?, ?, ?, ?)", (reservation_id, b.key, b.window.value, s.id))
            conn.execute("INSERT INTO reservation VALUES (?, ?, ?)", (reservation_id, amount, now + self.reservation_timeout))
        return Reservation(reservation_id, amount)

    def reconcile(self, reservation_id: str, actual: int) -> bool:
        check_amount("actual", actual)
        with self._tx() as conn:
            return self._settle(conn, reservation_id, actual)

    def release(self, reservation_id: str) -> bool:
        with self._tx() as conn:
            return self._settle(conn, reservation_id, 0)

    def expire_reservations(self, now: float | None = None) -> int:
        at = self.clock() if now is None else now
        with self._tx() as conn:
            n = self._expire(conn, at, None)
            conn.execute("DELETE FROM budget_window WHERE ends_at < ? AND reserved = 0", (at - RETENTION_SECONDS,))
            conn.execute("DELETE FROM rate_window WHERE start + seconds < ?", (at - 60,))  # descriptors gone quiet
            return n

    def usage(self, budgets: Sequence[Budget]) -> list[Usage]:
        now = self.clock()
        out = []
        with self._lock:
            conn = self._connection()
            try:
                for b in budgets:
                    s = span(b.window, now, self.tz)
                    got = conn.execute("SELECT used, reserved FROM budget_window WHERE budget = ? AND kind = ? AND wid = ?",
                                       (b.key, b.window.value, s.id)).fetchone()
                    used, reserved = (int(got[0]), int(got[1])) if got else (0, 0)
                    out.append(Usage(b, s.id, used, reserved, s.reset_seconds(now), s.resets_at))
            except sqlite3.Error as e:
                raise StoreError(f"sqlite store {self.path}: {e}") from e
        return out

    def _settle(self, conn: sqlite3.Connection, reservation_id: str, charge: int | None) -> bool:
        """Close one open reservation: charge `charge` tokens (None: the reserved amount) and free the reservation."""
        row = conn.execute("SELECT amount FROM reservation WHERE id = ?", (reservation_id,)).fetchone()
        if row is None:
            return False
        amount = int(row[0])
        used = amount if charge is None else charge
        conn.execute("UPDATE budget_window SET reserved = reserved - ?, used = used + ? WHERE (budget, kind, wid) IN "
                     "(SELECT budget, kind, wid FROM reservation_window WHERE reservation = ?)",
                     (amount, used, reservation_id))
        conn.execute("DELETE FROM reservation_window WHERE reservation = ?", (reservation_id,))
        conn.execute("DELETE FROM reservation WHERE id = ?", (reservation_id,))
        return True

    def _expire(self, conn: sqlite3.Connection, now: float, batch: int | None) -> int:
        ids = [r[0] for r in conn.execute("SELECT id FROM reservation WHERE deadline <= ? ORDER BY deadline LIMIT ?",
                                          (now, -1 if batch is None else batch))]
        for rid in ids:
            self._settle(conn, rid, None)
        return len(ids)

    # -- request rate -------------------------------------------------------------------------------------

    def hit(self, key: str, value: str, amount: int, limit: int, window_seconds: int = RATE_WINDOW_SECONDS) -> RateHit:
        check_rate(amount, window_seconds)
        now = self.clock()
        start = int(now // window_seconds) * window_seconds
        reset = max(1, math.ceil(start + window_seconds - now))
        with self._tx() as conn:
            got = conn.execute("SELECT count FROM rate_window WHERE key = ? AND value = ? AND seconds = ? AND start = ?",
                               (key, value, window_seconds, start)).fetchone()
            count = (int(got[0]) if got else 0) + amount
            if count <= limit:
                conn.execute("INSERT INTO rate_window VALUES (?, ?, ?, ?, ?) ON CONFLICT (key, value, seconds, start) "
                             "DO UPDATE SET count = excluded.count", (key, value, window_seconds, start, count))
                if got is None:  # first hit of a new window: drop this descriptor's finished windows
                    conn.execute("DELETE FROM rate_window WHERE key = ? AND value = ? AND seconds = ? AND start < ?",
                                 (key, value, window_seconds, start))
        return RateHit(count, reset, limit)
