"""Concurrent WebSocket streams per API key: counted in this process, or in Redis for a whole deployment.

One process (the default, ``rate_limit_storage=memory://``) counts in a dict on the event loop. Several
processes or Ray Serve replicas that share ``rate_limit_storage=redis://...`` count in Redis: each key
has a sorted set of stream leases scored by their expiry. Admission is one Lua script (drop expired
leases, compare the count with the limit, add), so two replicas cannot both take the last slot. Each
process renews its open leases every third of ``stream_lease_s``; a replica that dies stops renewing
and its streams stop counting after at most ``stream_lease_s``, so a crash never leaks slots for good.
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

from audio_service.settings import Settings
from audio_service.streaming.protocol import TooManyStreamsError

log = logging.getLogger(__name__)
KEY_PREFIX = "audio_service:streams:"
# KEYS[1] = the key's lease set; ARGV = limit, lease id, lease ms. Returns 1 when admitted.
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
# KEYS[1] = the key's lease set; ARGV = lease ms, then the lease ids this process still holds.
_RENEW = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


@dataclass(frozen=True)
class StreamLease:
    """One admitted stream: give it back with ``release``."""

    key: str
    lease_id: str


def _too_many(limit: int) -> TooManyStreamsError:
    return TooManyStreamsError(f"Too many concurrent streams for this API key (limit {limit}).", param="Authorization")


class StreamLimiter:
    """Streams per key in this process. Used on the event loop only."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    async def acquire(self, key: str | None, limit: int) -> StreamLease:
        """Count a stream of ``key``; :class:`TooManyStreamsError` when ``limit`` streams are open."""
        name = str(key)
        if self._counts[name] >= limit:
            raise _too_many(limit)
        self._counts[name] += 1
        return StreamLease(name, "")

    async def release(self, lease: StreamLease) -> None:
        self._counts[lease.key] -= 1
        if self._counts[lease.key] <= 0:
            del self._counts[lease.key]

    async def close(self) -> None:
        """Nothing to stop in memory."""


class RedisStreamLimiter(StreamLimiter):
    """Streams per key across every process sharing one Redis (leases renewed by a heartbeat task)."""

    def __init__(self, url: str, lease_s: float) -> None:
        super().__init__()
        self._redis = aioredis.Redis.from_url(url)
        self._lease_ms = max(1000, int(lease_s * 1000))
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._held: defaultdict[str, set[str]] = defaultdict(set)  # redis key -> lease ids open here
        self._heartbeat: asyncio.Task | None = None

    async def acquire(self, key: str | None, limit: int) -> StreamLease:
        lease = StreamLease(KEY_PREFIX + str(key), uuid.uuid4().hex)
        try:
            admitted = await self._acquire(keys=[lease.key], args=[limit, lease.lease_id, self._lease_ms])
        except Exception as exc:  # noqa: BLE001 - like the quotas: a store outage must not take streaming down
            log.warning("stream limit storage unavailable (%s): counting this stream in this process only", exc)
            return await super().acquire(key, limit)
        if not admitted:
            raise _too_many(limit)
        self._held[lease.key].add(lease.lease_id)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_forever())
        return lease

    async def release(self, lease: StreamLease) -> None:
        if not lease.lease_id:  # admitted in memory during an outage
            await super().release(lease)
            return
        self._held[lease.key].discard(lease.lease_id)
        if not self._held[lease.key]:
            del self._held[lease.key]
        try:
            await self._redis.zrem(lease.key, lease.lease_id)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            log.warning("could not release a stream lease (%s); it expires in %d ms", exc, self._lease_ms)

    async def _renew_forever(self) -> None:
        """Renew this process's leases until it holds none (the next acquire starts a new task)."""
        while self._held:
            await asyncio.sleep(self._lease_ms / 3000)
            for key, ids in list(self._held.items()):
                try:
                    await self._renew(keys=[key], args=[self._lease_ms, *ids])
                except Exception as exc:  # noqa: BLE001 - retried at the next beat
                    log.warning("could not renew stream leases (%s)", exc)

    async def close(self) -> None:
        """Stop the heartbeat and give back every lease still held (a clean shutdown frees its slots)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await self._heartbeat
        with contextlib.suppress(Exception):
            for key, ids in self._held.items():
                await self._redis.zrem(key, *ids)
            await self._redis.aclose()


def stream_limiter(settings: Settings) -> StreamLimiter:
    """In Redis when the quota storage is Redis (shared by the deployment), else in this process."""
    uri = settings.rate_limit_storage.removeprefix("async+")
    if uri.split("://", 1)[0] in ("redis", "rediss", "unix"):
        return RedisStreamLimiter(uri, settings.stream_lease_s)
    return StreamLimiter()
