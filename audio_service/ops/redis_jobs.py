"""Jobs in Redis, shared by every replica of a deployment (``jobs.storage`` or ``quotas.storage`` redis://).

Keys, under ``audio_service:jobs:``:

- ``job:<id>``: the record (JSON). An ended record expires ``jobs.retention_s`` after ``finished_at``.
- ``owner:<key name>``: the key's job ids scored by ``created_at`` (its list; ids of expired records are
  dropped when a listing meets them).
- ``active``: the ids of jobs not settled (not ended, or a callback pending): what a replica looks at to
  queue again the jobs of a replica that died.
- ``queue``: the queue (LPUSH, BRPOP). An id may be in it twice (a job queued again while another
  replica was about to take it): whoever pops it takes the lease and checks the status first.
- ``lease:<id>``: the replica holding the job (a random token per process), set NX with a PX expiry.
- ``cancel:<id>``: set by DELETE on any replica; the running replica's heartbeat reads it.
- ``audio:<id>`` (the number of chunks) and ``audio:<id>:<n>``: the upload in chunks of ``CHUNK``
  bytes, so replicas on different machines share no disk, and no single value is large.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from audio_service.errors import ServiceError, StorageUnavailableError
from audio_service.ops.job_store import FINAL, JobPage, JobRecord, job_order

log = logging.getLogger(__name__)

PREFIX = "audio_service:jobs:"
CHUNK = 4 << 20  # bytes per audio key
_MISSING = "The job's audio is missing from the job storage."
# KEYS[1] = the lease; ARGV = token, then lease ms. Extends the lease if this token holds it, takes it back
# if it lapsed and no one took it (a heartbeat late in a busy process); 0 when another holder has it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
# KEYS[1] = the lease; ARGV[1] = token. Deletes it only if this token holds it.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

P = ParamSpec("P")
R = TypeVar("R")


def _answering(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A Redis failure becomes the service's 503 (the routes answer it as every other error)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise StorageUnavailableError(f"Job storage unavailable: {exc}") from exc

    return wrapper


class RedisJobStore:
    """Jobs in Redis; every replica sharing it takes queued jobs, one replica per job at a time."""

    def __init__(self, url: str, lease_s: float, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._lease_ms = int(lease_s * 1000)
        self._retention_s = retention_s
        self._clock = clock
        self._token = uuid.uuid4().hex  # this process, as the holder of its leases
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    async def open(self) -> None:
        """Nothing to load: every replica reads Redis as it goes."""

    async def close(self) -> None:
        await self._redis.aclose()

    @_answering
    async def save(self, record: JobRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            if record.status in FINAL:
                left = self._retention_s - (self._clock() - (record.finished_at or 0))
                pipe.set(_job(record.id), record.to_json(), ex=max(1, int(left)))
                pipe.delete(_cancel(record.id))
            else:
                pipe.set(_job(record.id), record.to_json())
            pipe.zadd(_owner(record.who.name), {record.id: record.created_at})
            if record.settled:
                pipe.srem(PREFIX + "active", record.id)
            else:
                pipe.sadd(PREFIX + "active", record.id)
            await pipe.execute()

    @_answering
    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self._redis.get(_job(job_id))
        return None if raw is None else JobRecord.from_json(raw)

    @_answering
    async def page(self, owner: str, limit: int, after: str | None) -> JobPage | None:
        key, start = _owner(owner), 0
        if after is not None:
            rank = await self._redis.zrevrank(key, after)
            if not isinstance(rank, int):  # None: not one of the owner's jobs
                return None
            start = rank + 1
        found: list[JobRecord] = []
        while len(found) <= limit:  # one more than the page: whether more follow
            ids = [_text(i) for i in await self._redis.zrevrange(key, start, start + limit - len(found))]
            if not ids:
                break
            start += len(ids)
            expired = []
            for job_id, raw in zip(ids, await self._redis.mget([_job(i) for i in ids])):
                if raw is None:
                    expired.append(job_id)
                else:
                    found.append(JobRecord.from_json(raw))
            if expired:
                await self._redis.zrem(key, *expired)
                start -= len(expired)
        return JobPage(found[:limit], has_more=len(found) > limit)

    async def unsettled(self) -> list[JobRecord]:
        ids = [_text(i) for i in await self._redis.smembers(PREFIX + "active")]
        records, gone = [], []
        for job_id, raw in zip(ids, await self._redis.mget([_job(i) for i in ids]) if ids else []):
            if raw is None:
                gone.append(job_id)
            else:
                records.append(JobRecord.from_json(raw))
        if gone:
            await self._redis.srem(PREFIX + "active", *gone)
        return sorted(records, key=job_order)

    async def sweep(self) -> int:
        """Nothing to sweep: ended records expire by themselves."""
        return 0

    @_answering
    async def save_audio(self, job_id: str, source: BinaryIO) -> None:
        # the chunks expire after the retention too, in case the record is never saved (its submitter died)
        ttl = max(1, int(self._retention_s))
        n = 0
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            await self._redis.set(_audio(job_id, n), chunk, ex=ttl)
            n += 1
        await self._redis.set(_audio(job_id), n, ex=ttl)  # last: a count means every chunk is there

    @contextlib.asynccontextmanager
    async def audio_file(self, job_id: str) -> AsyncIterator[Path]:
        with tempfile.TemporaryDirectory(prefix="audio-service-job-") as tmp:
            path = Path(tmp) / f"{job_id}.audio"
            await self._copy_audio(job_id, path)
            yield path

    @_answering
    async def _copy_audio(self, job_id: str, path: Path) -> None:
        """The chunks, one at a time, into ``path`` (a Redis failure is a 503, a missing chunk fails the job)."""
        count = await self._redis.get(_audio(job_id))
        if count is None:
            raise ServiceError(_MISSING)
        with path.open("wb") as out:
            for n in range(int(count)):
                chunk = await self._redis.get(_audio(job_id, n))
                if chunk is None:
                    raise ServiceError(_MISSING)
                await asyncio.to_thread(out.write, chunk if isinstance(chunk, bytes) else chunk.encode())

    async def drop_audio(self, job_id: str) -> None:
        count = await self._redis.get(_audio(job_id))
        chunks = [_audio(job_id, n) for n in range(int(count or 0))]
        await self._redis.delete(_audio(job_id), *chunks)

    @_answering
    async def enqueue(self, job_id: str) -> None:
        await self._redis.lpush(PREFIX + "queue", job_id)

    async def next_queued(self, timeout_s: float) -> str | None:
        popped = await self._redis.brpop([PREFIX + "queue"], timeout=timeout_s)
        return None if popped is None else _text(popped[1])

    async def is_queued(self, job_id: str) -> bool:
        return await self._redis.lpos(PREFIX + "queue", job_id) is not None

    @_answering
    async def lease(self, job_id: str) -> bool:
        return bool(await self._redis.set(_lease(job_id), self._token, nx=True, px=self._lease_ms))

    async def renew(self, job_id: str) -> bool:
        return bool(await self._renew(keys=[_lease(job_id)], args=[self._token, self._lease_ms]))

    @_answering
    async def release(self, job_id: str) -> None:
        await self._release(keys=[_lease(job_id)], args=[self._token])

    @_answering
    async def request_cancel(self, job_id: str) -> None:
        await self._redis.set(_cancel(job_id), 1, ex=max(1, int(self._retention_s)))

    async def cancel_requested(self, job_id: str) -> bool:
        return bool(await self._redis.exists(_cancel(job_id)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def _owner(name: str) -> str:
    return f"{PREFIX}owner:{name}"


def _lease(job_id: str) -> str:
    return f"{PREFIX}lease:{job_id}"


def _cancel(job_id: str) -> str:
    return f"{PREFIX}cancel:{job_id}"


def _audio(job_id: str, n: int | None = None) -> str:
    return f"{PREFIX}audio:{job_id}" if n is None else f"{PREFIX}audio:{job_id}:{n}"
