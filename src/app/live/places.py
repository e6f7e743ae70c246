"""Live streams shared fairly: how many one client address, and one signed-in user, may hold.

A stream takes a place under each of its owners' names (``address:...``, ``user:...``) and
gives it back when it ends. Without Redis the places are counted in this process. With Redis
they are counted across every worker and instance: each place is a member of a sorted set,
scored by when its lease runs out; the worker renews its leases while its streams stay open,
so the places of a worker that died free themselves within a lease. If Redis fails, streams
are let in (as the rate limits fail open) and the failure is logged now and then.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from typing import TYPE_CHECKING, Protocol

from ..occasionally import Occasionally

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

LEASE_S = 60.0  # a dead worker's places come back within this
RENEW_EVERY_S = LEASE_S / 3

# Every owner must have room, or the stream takes no place at all.
TAKE_PLACES = """
local now, lease_end, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, lease_end, member)
  redis.call('EXPIRE', key, math.ceil(lease_end - now) + 1)
end
return 1
"""


class Places(Protocol):
    """``owners`` maps each owner's name to its cap; ``place`` names one stream."""

    async def take(self, owners: dict[str, int], place: str) -> bool: ...
    def give_back(self, owners: dict[str, int], place: str) -> None: ...
    async def close(self) -> None: ...


class LocalPlaces:
    """Places counted in this process only (no Redis: a single worker)."""

    def __init__(self) -> None:
        self.held: Counter[str] = Counter()

    async def take(self, owners: dict[str, int], place: str) -> bool:
        if any(self.held[owner] >= cap for owner, cap in owners.items()):
            return False
        self.held.update(owners.keys())
        return True

    def give_back(self, owners: dict[str, int], place: str) -> None:
        self.held.subtract(owners.keys())
        self.held = +self.held  # drop owners who hold nothing

    async def close(self) -> None:
        self.held.clear()


class SharedPlaces:
    """Places counted in Redis for every worker and instance, each one on a lease."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        self.worker = secrets.token_hex(6)
        self.mine: dict[str, set[str]] = {}  # key -> the places this worker holds there
        self._take = redis.register_script(TAKE_PLACES)
        self._renewing: asyncio.Task[None] | None = None
        self._removing: set[asyncio.Task[None]] = set()
        self._failure_said = Occasionally(60)

    def _member(self, place: str) -> str:
        return f"{self.worker}:{place}"

    async def take(self, owners: dict[str, int], place: str) -> bool:
        keys = [self.prefix + owner for owner in owners]
        now = time.time()
        try:
            taken = await self._take(
                keys=keys, args=[now, now + LEASE_S, self._member(place), *owners.values()]
            )
        except Exception as exc:
            self._say_failure(exc)
            return True  # fail open: a stream is worth more than a fair share of them
        if taken:
            for key in keys:
                self.mine.setdefault(key, set()).add(place)
            self._keep_renewing()
        return bool(taken)

    def give_back(self, owners: dict[str, int], place: str) -> None:
        """Forget the place now, and remove it from Redis in the background."""
        keys = [self.prefix + owner for owner in owners]
        for key in keys:
            held = self.mine.get(key, set())
            held.discard(place)
            if not held:
                self.mine.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._remove(keys, place))
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)

    async def _remove(self, keys: list[str], place: str) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, self._member(place))
                await pipe.execute()
        except Exception as exc:  # the lease runs out by itself
            self._say_failure(exc)

    def _keep_renewing(self) -> None:
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while self.mine:
            await asyncio.sleep(RENEW_EVERY_S)
            lease_end = time.time() + LEASE_S
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, places in list(self.mine.items()):
                        pipe.zadd(key, {self._member(p): lease_end for p in places}, xx=True)
                        pipe.expire(key, int(LEASE_S) + 1)
                    await pipe.execute()
            except Exception as exc:
                self._say_failure(exc)

    def _say_failure(self, exc: Exception) -> None:
        if self._failure_said():
            log.warning("live stream caps are off, Redis failed: %r", exc)

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        await asyncio.gather(*self._removing, return_exceptions=True)
        await self.redis.aclose()
