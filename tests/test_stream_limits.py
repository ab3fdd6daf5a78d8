"""Streams per key counted in a real Redis by several limiters (as several replicas would): the limit is
shared, leases of a live process are renewed past ``stream_lease_s``, and a dead process's lapse."""

from __future__ import annotations

import asyncio
import time

import pytest

from audio_service.api.stream_limits import RedisStreamLimiter, StreamLimiter, stream_limiter
from audio_service.settings import Settings
from audio_service.streaming.protocol import TooManyStreamsError
from tests.redis_server import RedisServer

LEASE_S = 1.0


@pytest.fixture(scope="module")
def redis_url():
    with RedisServer() as server:
        yield server.url


def test_limit_is_shared_renewed_and_freed_when_a_holder_dies(redis_url) -> None:
    async def go():
        a, b = RedisStreamLimiter(redis_url, LEASE_S), RedisStreamLimiter(redis_url, LEASE_S)
        try:
            held_a = await a.acquire("alice", 2)
            held_b = await b.acquire("alice", 2)
            with pytest.raises(TooManyStreamsError):
                await a.acquire("alice", 2)  # one on each "replica": the key is full everywhere
            bob = await b.acquire("bob", 2)  # other keys are counted apart
            assert bob.key != held_a.key
            # both leases outlive several lease periods while their holders renew them
            await asyncio.sleep(3 * LEASE_S)
            with pytest.raises(TooManyStreamsError):
                await b.acquire("alice", 2)
            # a clean release frees its slot at once
            await b.release(held_b)
            held_b = await b.acquire("alice", 2)
            # "a" dies: no release, no more renewals; its slot comes back after the lease
            assert a._heartbeat is not None
            a._heartbeat.cancel()
            a._held.clear()
            t0 = time.monotonic()
            while True:
                try:
                    await b.acquire("alice", 2)
                    break
                except TooManyStreamsError:
                    assert time.monotonic() - t0 < 10 * LEASE_S, "a dead holder's lease never lapsed"
                    await asyncio.sleep(0.1)
            return time.monotonic() - t0
        finally:
            await a.close()
            await b.close()

    freed_after = asyncio.run(go())
    assert freed_after <= 10 * LEASE_S


def test_storage_picks_the_limiter() -> None:
    assert type(stream_limiter(Settings())) is StreamLimiter
    assert isinstance(stream_limiter(Settings(rate_limit_storage="redis://127.0.0.1:1/0")), RedisStreamLimiter)
    assert isinstance(stream_limiter(Settings(rate_limit_storage="async+redis://127.0.0.1:1/0")), RedisStreamLimiter)


def test_redis_outage_falls_back_to_counting_in_process() -> None:
    """Like the quotas: a store outage must not stop streaming; the process's own count still applies."""

    async def go():
        limiter = RedisStreamLimiter("redis://127.0.0.1:1/0", LEASE_S)  # nothing listens on port 1
        first = await limiter.acquire("alice", 1)
        with pytest.raises(TooManyStreamsError):
            await limiter.acquire("alice", 1)
        await limiter.release(first)
        await limiter.acquire("alice", 1)
        await limiter.close()

    asyncio.run(go())
