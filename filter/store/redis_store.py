"""The shared store: Redis, so every replica enforces the same budgets and request rates.

Each operation is one Lua script (atomic on the server: no other client runs between its reads and writes).
Budget keys share one hash tag, so a Redis Cluster keeps them in one slot and the multi-key scripts stay legal.
Every key has a TTL past its window's end (budget windows: RETENTION_SECONDS; rate windows: a few seconds), and
every call has a socket timeout with no client-side retry: Redis down or slow is a StoreError within about
`timeout` seconds (a retried script could count twice).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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

# Shared by the budget scripts: settle one reservation (charge = nil: its reserved amount) and expire overdue ones.
_SETTLE = """
local function settle(rk, charge)
  local amount = redis.call('HGET', rk, 'amount')
  if not amount then return 0 end
  local used = charge or amount
  local n = tonumber(redis.call('HGET', rk, 'n'))
  for i = 1, n do
    local wk = redis.call('HGET', rk, 'k' .. i)
    if redis.call('EXISTS', wk) == 1 then
      redis.call('HINCRBY', wk, 'reserved', 0 - tonumber(amount))  -- 0 - x: never the '-0' HINCRBY refuses
      redis.call('HINCRBY', wk, 'used', used)
    end
  end
  redis.call('DEL', rk)
  return 1
end
local function expire(deadlines, prefix, now, batch)
  local ids = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, batch)
  for _, id in ipairs(ids) do
    settle(prefix .. id, nil)
    redis.call('ZREM', deadlines, id)
  end
  return #ids
end
"""

# KEYS: reservation, deadlines, window 1..n. ARGV: id, amount, now, deadline, reservation ttl ms, reservation key
# prefix, expire batch, then limit and ttl ms per window. -> {0} granted, {1, amount} already open,
# {2, i, used, reserved} window i would go over.
_RESERVE = _SETTLE + """
expire(KEYS[2], ARGV[6], ARGV[3], tonumber(ARGV[7]))
local open = redis.call('HGET', KEYS[1], 'amount')
if open then return {1, tonumber(open)} end
local amount = tonumber(ARGV[2])
local n = #KEYS - 2
for i = 1, n do
  local got = redis.call('HMGET', KEYS[i + 2], 'used', 'reserved')
  local used, reserved = tonumber(got[1] or '0'), tonumber(got[2] or '0')
  if used + reserved + amount > tonumber(ARGV[6 + 2 * i]) then return {2, i, used, reserved} end
end
redis.call('HSET', KEYS[1], 'amount', ARGV[2], 'n', n)
for i = 1, n do
  local wk = KEYS[i + 2]
  redis.call('HINCRBY', wk, 'reserved', ARGV[2])
  redis.call('HSETNX', wk, 'used', 0)
  redis.call('PEXPIRE', wk, ARGV[7 + 2 * i])
  redis.call('HSET', KEYS[1], 'k' .. i, wk)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {0}
"""

# KEYS: reservation, deadlines. ARGV: id, charge ('' = release). -> 1 settled, 0 not open.
_SETTLE_ONE = _SETTLE + """
local done = settle(KEYS[1], ARGV[2] ~= '' and ARGV[2] or '0')
redis.call('ZREM', KEYS[2], ARGV[1])
return done
"""

# KEYS: deadlines. ARGV: now, reservation key prefix, batch. -> how many expired.
_EXPIRE = _SETTLE + """
return expire(KEYS[1], ARGV[2], ARGV[1], tonumber(ARGV[3]))
"""

# KEYS: counter. ARGV: amount, limit, ttl ms. -> the count with this hit (stored only if within the limit).
_HIT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
if count <= tonumber(ARGV[2]) then redis.call('SET', KEYS[1], count, 'PX', ARGV[3]) end
return count
"""


class RedisStore:
    """Budgets and rate counts in Redis, shared by every replica that uses the same server and prefix."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, tz: str | ZoneInfo = "UTC",
                 clock: Callable[[], float] = time.time, reservation_timeout: float = DEFAULT_RESERVATION_TIMEOUT,
                 timeout: float = 0.5, prefix: str = "llmf") -> None:
        self.url = url
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.clock = clock
        self.reservation_timeout = reservation_timeout
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False, decode_responses=True)
        self._tag = f"{{{prefix}}}"  # hash tag: all budget keys in one cluster slot
        self._rate_prefix = f"{prefix}:rate"
        self._deadlines = f"{self._tag}:deadlines"
        self._res_prefix = f"{self._tag}:res:"
        self._reserve = self.client.register_script(_RESERVE)
        self._settle = self.client.register_script(_SETTLE_ONE)
        self._expire = self.client.register_script(_EXPIRE)
        self._hit = self.client.register_script(_HIT)

    def _fail(self, e: Exception) -> NoReturn:
        where = self.client.connection_pool.connection_kwargs  # host or socket path, never the URL's password
        raise StoreError(f"redis store {where.get('host') or where.get('path')}: {type(e).__name__}: {e}") from e

    def _run(self, script: Any, keys: list[str], args: list[str | int | float]) -> Any:
        try:
            return script(keys=keys, args=args)
        except (redis.RedisError, OSError) as e:
            self._fail(e)

    def _window_key(self, budget: Budget, window_id: str) -> str:
        # the key's length first: keys with ':' in them cannot collide
        return f"{self._tag}:w:{len(budget.key)}:{budget.key}:{budget.window.value}:{window_id}"

    def close(self) -> None:
        self.client.close()

    # -- budgets ------------------------------------------------------------------------------------------

    def reserve(self, reservation_id: str, amount: int, budgets: Sequence[Budget]) -> Reservation:
        check_id(reservation_id)
        check_amount("amount", amount)
        now = self.clock()
        chosen = strictest(tuple(budgets))
        spans = [span(b.window, now, self.tz) for b in chosen]
        deadline = now + self.reservation_timeout
        args: list[str | int | float] = [reservation_id, amount, repr(now), repr(deadline),
                                         _ms(self.reservation_timeout + RETENTION_SECONDS), self._res_prefix, EXPIRE_BATCH]
        for b, s in zip(chosen, spans, strict=True):
            args += [b.limit, _ms(s.end - now + RETENTION_SECONDS)]
        keys = [self._res_prefix + reservation_id, self._deadlines]
        keys += [self._window_key(b, s.id) for b, s in zip(chosen, spans, strict=True)]
        answer = self._run(self._reserve, keys, args)
        if answer[0] == 1:
            return Reservation(reservation_id, int(answer[1]))
        if answer[0] == 2:
            b, s = chosen[int(answer[1]) - 1], spans[int(answer[1]) - 1]
            return Reservation(reservation_id, amount,
                               Denial(b, amount, int(answer[2]), int(answer[3]), s.reset_seconds(now), s.resets_at))
        return Reservation(reservation_id, amount)

    def reconcile(self, reservation_id: str, actual: int) -> bool:
        check_amount("actual", actual)
        return bool(self._run(self._settle, [self._res_prefix + reservation_id, self._deadlines], [reservation_id, actual]))

    def release(self, reservation_id: str) -> bool:
        return bool(self._run(self._settle, [self._res_prefix + reservation_id, self._deadlines], [reservation_id, 0]))

    def expire_reservations(self, now: float | None = None) -> int:
        at = self.clock() if now is None else now
        total = 0
        while True:  # in batches, so one script never blocks the server for long
            n = int(self._run(self._expire, [self._deadlines], [repr(at), self._res_prefix, 1000]))
            total += n
            if n < 1000:
                return total

    def usage(self, budgets: Sequence[Budget]) -> list[Usage]:
        now = self.clock()
        spans = [span(b.window, now, self.tz) for b in budgets]
        try:
            pipe = self.client.pipeline(transaction=False)
            for b, s in zip(budgets, spans, strict=True):
                pipe.hmget(self._window_key(b, s.id), ["used", "reserved"])
            rows = pipe.execute()
        except (redis.RedisError, OSError) as e:
            self._fail(e)
        return [Usage(b, s.id, int(row[0] or 0), int(row[1] or 0), s.reset_seconds(now), s.resets_at)
                for b, s, row in zip(budgets, spans, rows, strict=True)]

    # -- request rate -------------------------------------------------------------------------------------

    def hit(self, key: str, value: str, amount: int, limit: int, window_seconds: int = RATE_WINDOW_SECONDS) -> RateHit:
        check_rate(amount, window_seconds)
        now = self.clock()
        start = int(now // window_seconds) * window_seconds
        left = start + window_seconds - now
        counter = f"{self._rate_prefix}:{window_seconds}:{start}:{len(key)}:{key}:{value}"
        count = self._run(self._hit, [counter], [amount, limit, _ms(left + 5)])
        return RateHit(int(count), max(1, math.ceil(left)), limit)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
