"""Leases in a real Redis shared by several processes' limiters (as several replicas would): the stream
limit is shared, leases of a live process are renewed past ``quotas.lease_s``, a dead process's lapse;
and two work queues share one batch waiting room."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audio_service.leases import Leases, RedisLeases
from audio_service.ops.stream_limits import KEY_PREFIX, StreamLimiter, stream_limiter
from audio_service.settings import Settings
from audio_service.streaming.protocol import TooManyStreamsError
from tests.redis_server import RedisServer

LEASE_S = 1.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def redis_url():
    with RedisServer() as server:
        yield server.url


def redis_limiter(url: str) -> StreamLimiter:
    return StreamLimiter(RedisLeases(url, LEASE_S, KEY_PREFIX))


# A holder in another process ("replica A"): takes one "alice" slot, says so, then renews it until killed.
HOLDER = """
import asyncio, sys
from audio_service.ops.stream_limits import KEY_PREFIX, StreamLimiter
from audio_service.leases import RedisLeases

async def main():
    limiter = StreamLimiter(RedisLeases(sys.argv[1], float(sys.argv[2]), KEY_PREFIX))
    await limiter.acquire("alice", 2)
    print("held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_limit_is_shared_renewed_and_freed_when_a_holder_dies(redis_url) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_url, str(LEASE_S)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        async def go():
            b = redis_limiter(redis_url)
            try:
                held_b = await b.acquire("alice", 2)
                with pytest.raises(TooManyStreamsError):
                    await b.acquire("alice", 2)  # one in each process: the key is full everywhere
                await b.acquire("bob", 2)  # other keys are counted apart
                # the other process's lease outlives several lease periods while it renews it
                await asyncio.sleep(3 * LEASE_S)
                with pytest.raises(TooManyStreamsError):
                    await b.acquire("alice", 2)
                # a clean release frees its slot at once
                await b.release(held_b)
                await b.acquire("alice", 2)
                # the other process dies: no release, no more renewals; its slot comes back after the lease
                holder.kill()
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
                await b.close()

        freed_after = asyncio.run(go())
    finally:
        holder.kill()
        holder.wait()
    assert freed_after <= 10 * LEASE_S


def test_storage_picks_the_limiter() -> None:
    assert type(stream_limiter(Settings()).counter) is Leases
    assert isinstance(stream_limiter(Settings(quotas={"storage": "redis://127.0.0.1:1/0"})).counter, RedisLeases)
    assert isinstance(stream_limiter(Settings(quotas={"storage": "async+redis://127.0.0.1:1/0"})).counter, RedisLeases)


def test_redis_outage_falls_back_to_counting_in_process() -> None:
    """Like the quotas: a store outage must not stop streaming; the process's own count still applies."""

    async def go():
        limiter = redis_limiter("redis://127.0.0.1:1/0")  # nothing listens on port 1
        first = await limiter.acquire("alice", 1)
        with pytest.raises(TooManyStreamsError):
            await limiter.acquire("alice", 1)
        await limiter.release(first)
        await limiter.acquire("alice", 1)
        await limiter.close()

    asyncio.run(go())


def test_batch_waiting_room_is_shared_by_two_queues(redis_url) -> None:
    """Two replicas' work queues (1 worker each) with one shared waiting seat: the deployment admits
    3 requests in all (2 running, 1 waiting), in memory each process would have admitted 2."""
    from audio_service.errors import OverloadedError
    from audio_service.pipeline.queue import WorkQueue

    release = threading.Event()

    async def until(condition, what: str) -> None:
        """Wait for the queues' state (admitted work), not for a fixed time."""
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    async def go():
        a, b = (WorkQueue(1, 1, seats=RedisLeases(redis_url, LEASE_S, "test:queue:")) for _ in range(2))
        running = [asyncio.create_task(q.run(release.wait)) for q in (a, b)]
        await until(lambda: a.admitted == b.admitted == 1, "one running request on each queue")
        waiting = asyncio.create_task(a.run(release.wait))  # the deployment's one waiting seat
        await until(lambda: a.admitted == 2, "the request in the shared waiting seat")
        with pytest.raises(OverloadedError):
            await b.run(release.wait)  # b's own room is empty, but the shared one is full
        release.set()
        done = await asyncio.gather(*running, waiting)
        # the seat was given back when the waiting request started: b may seat one now
        again = threading.Event()
        busy = asyncio.create_task(b.run(again.wait))
        await until(lambda: b.admitted == 1, "b's running request")
        seated = asyncio.create_task(b.run(again.wait))
        await until(lambda: b.admitted == 2, "b's seated request")
        again.set()
        done += await asyncio.gather(busy, seated)
        for q in (a, b):
            await q.close()
            q.shutdown()
        return done

    assert asyncio.run(go()) == [True] * 5
