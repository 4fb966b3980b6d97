"""The store contract: token budgets (reserve, reconcile or release, expiry) and fixed-window request counts.

Every implementation is shared by all worker processes that open the same place (a SQLite file on one host, a
Redis server for all replicas), so N workers enforce ONE limit.

Rules every implementation keeps:
- reserve() is all or nothing over the budgets it is given: either every budget gets the amount added to its
  `reserved`, or none does and the answer names the first budget that would go over (used + reserved + amount
  > limit), with its remaining tokens and the seconds until its window resets.
- A reservation counts in the windows that were current when it was made; reconcile() moves it from `reserved`
  to `used` at the real amount (smaller or larger than reserved; `used` may then pass the limit, and the next
  reserve is refused); release() drops it.
- Expiry rule: a reservation neither reconciled nor released by its deadline (reserve time + the store's
  `reservation_timeout`) is charged in full: its reserved amount becomes used. expire_reservations() does this;
  reserve() also does it for a bounded batch of overdue reservations first, so a crashed caller cannot hold a
  budget forever. A later reconcile()/release() of an expired id changes nothing and returns False.
- Reserving an id that is still open returns the open reservation and reserves nothing more (a retry after a
  timeout is safe).
- Any failure to reach or use the store raises StoreError, within the store's bounded timeouts. A timed-out
  call may still have been applied (Redis may run it once it catches up): after a StoreError from reserve(),
  call release(id) once the store answers again, so a reservation nobody uses is not charged at expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from filter.store.model import Budget, RateHit, Reservation, Usage

DEFAULT_RESERVATION_TIMEOUT = 900.0  # seconds; longer than a long streamed completion
RATE_WINDOW_SECONDS = 60
EXPIRE_BATCH = 100  # overdue reservations reserve() settles before its own
RETENTION_SECONDS = 40 * 86400  # finished budget windows are kept this long (last month's usage stays queryable)


class Store(Protocol):
    def reserve(self, reservation_id: str, amount: int, budgets: Sequence[Budget]) -> Reservation:
        """Reserve `amount` tokens against every budget, atomically; see the module docstring."""
        ...

    def reconcile(self, reservation_id: str, actual: int) -> bool:
        """Charge the real amount instead of the reserved one; False if the id is not open (unknown, done, expired)."""
        ...

    def release(self, reservation_id: str) -> bool:
        """Drop the reservation without charging (the provider failed); False if the id is not open."""
        ...

    def expire_reservations(self, now: float | None = None) -> int:
        """Charge in full every reservation whose deadline is <= now (default: the store's clock); how many."""
        ...

    def usage(self, budgets: Sequence[Budget]) -> list[Usage]:
        """Used and reserved tokens of each budget's current window (for gauges and answers)."""
        ...

    def hit(self, key: str, value: str, amount: int, limit: int, window_seconds: int = RATE_WINDOW_SECONDS) -> RateHit:
        """Count `amount` requests for descriptor key/value in the current fixed window unless that passes `limit`."""
        ...

    def close(self) -> None: ...
