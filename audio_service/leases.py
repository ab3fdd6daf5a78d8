"""Counted slots ("leases") under a limit: in this process, or in Redis for a whole deployment.

Used for the concurrent streams per API key (``ops/stream_limits.py``) and for the batch waiting room
(``pipeline/queue.py``). One process (the default, ``quotas.storage=memory://``) counts in a dict on
the event loop. Several processes or Ray Serve replicas that share ``quotas.storage=redis://...``
count in Redis: each name has a sorted set of leases scored by their expiry. Admission is one Lua
script (drop expired leases, compare the count with the limit, add), so two replicas cannot both take
the last slot. Each process renews its open leases every third of ``lease_s``; a replica that dies stops
renewing and its leases stop counting after at most ``lease_s``, so a crash never leaks slots for good.
Redis' own clock (``TIME``) scores the leases: the replicas' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

import redis.asyncio as aioredis

from audio_service.settings import REDIS_SCHEMES, Settings

log = logging.getLogger(__name__)
# KEYS[1] = the name's lease set; ARGV = limit, lease id, lease ms. Returns 1 when admitted.
_ACQUIRE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
# KEYS[1] = the name's lease set; ARGV = lease ms, then the lease ids this process still holds.
_RENEW = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


@dataclass(frozen=True)
class Lease:
    """One taken slot: give it back with ``release``. ``lease_id`` is empty for a slot counted in memory."""

    key: str
    lease_id: str


class Leases:
    """Slots per name in this process. Used on the event loop only."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._counts: Counter[str] = Counter()

    async def acquire(self, name: str, limit: int) -> Lease | None:
        """Take a slot of ``name``; None when ``limit`` slots are taken."""
        key = self._prefix + name
        if self._counts[key] >= limit:
            return None
        self._counts[key] += 1
        return Lease(key, "")

    async def release(self, lease: Lease) -> None:
        """Give the slot back."""
        self._counts[lease.key] -= 1
        if self._counts[lease.key] <= 0:
            del self._counts[lease.key]

    async def close(self) -> None:
        """Nothing to stop in memory."""


class RedisLeases(Leases):
    """Slots per name across every process sharing one Redis (leases renewed by a heartbeat task)."""

    def __init__(self, url: str, lease_s: float, prefix: str) -> None:
        super().__init__(prefix)
        self._redis = aioredis.Redis.from_url(url)
        self._lease_ms = max(1000, int(lease_s * 1000))
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._held: defaultdict[str, set[str]] = defaultdict(set)  # redis key -> lease ids open here
        self._heartbeat: asyncio.Task | None = None

    async def acquire(self, name: str, limit: int) -> Lease | None:
        lease = Lease(self._prefix + name, uuid.uuid4().hex)
        try:
            admitted = await self._acquire(keys=[lease.key], args=[limit, lease.lease_id, self._lease_ms])
        except Exception as exc:  # noqa: BLE001 - like the quotas: a store outage must not take the service down
            log.warning("lease storage unavailable (%s): counting %s in this process only", exc, lease.key)
            return await super().acquire(name, limit)
        if not admitted:
            return None
        self._held[lease.key].add(lease.lease_id)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_forever())
        return lease

    async def release(self, lease: Lease) -> None:
        if not lease.lease_id:  # taken in memory during an outage
            await super().release(lease)
            return
        self._held[lease.key].discard(lease.lease_id)
        if not self._held[lease.key]:
            del self._held[lease.key]
        try:
            await self._redis.zrem(lease.key, lease.lease_id)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            log.warning("could not release a lease (%s); it expires in %d ms", exc, self._lease_ms)

    async def _renew_forever(self) -> None:
        """Renew this process's leases until it holds none (the next acquire starts a new task)."""
        while self._held:
            await asyncio.sleep(self._lease_ms / 3000)
            for key, ids in list(self._held.items()):
                try:
                    await self._renew(keys=[key], args=[self._lease_ms, *ids])
                except Exception as exc:  # noqa: BLE001 - retried at the next beat
                    log.warning("could not renew leases (%s)", exc)

    async def close(self) -> None:
        """Stop the heartbeat and give back every lease still held (a clean shutdown frees its slots)."""
        # Emptied first: the heartbeat's loop ends on its own at its next beat. A cancel alone is not
        # enough: one that lands while redis-py reads a reply can be swallowed, and waiting for the task
        # would then never end.
        held, self._held = self._held, defaultdict(set)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait({self._heartbeat}, timeout=self._lease_ms / 1000)
        with contextlib.suppress(Exception):
            for key, ids in held.items():
                await self._redis.zrem(key, *ids)
            await self._redis.aclose()


def shared_storage(settings: Settings) -> str | None:
    """The Redis URI the deployment shares (``quotas.storage``), or None when counting in memory."""
    uri = settings.quotas.storage.removeprefix("async+")
    return uri if uri.split("://", 1)[0] in REDIS_SCHEMES else None


def leases(settings: Settings, prefix: str) -> Leases:
    """In Redis when the quota storage is Redis (shared by the deployment), else in this process."""
    uri = shared_storage(settings)
    return Leases(prefix) if uri is None else RedisLeases(uri, settings.quotas.lease_s, prefix)
