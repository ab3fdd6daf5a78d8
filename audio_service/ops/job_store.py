"""Where jobs live: their records, their uploaded audio, their queue and who is running which.

:class:`JobStore` is what the runner (``ops/jobs.py``) needs of a storage; two implement it:

- :class:`DiskJobStore`, one process: ``<dir>/<id>.json`` (the record) next to ``<dir>/<id>.audio``
  (the upload, deleted when the job ends). Records are written whole to a temporary file and renamed
  over the old one, so a crash leaves the previous record, never half of one. The process keeps every
  record in memory (it is the directory's only user), and its queue and leases too: after a restart,
  nothing is leased or queued, so every unfinished job is queued again.
- :class:`~audio_service.ops.redis_jobs.RedisJobStore`, every replica sharing one Redis: records,
  audio in chunks, one queue, and leases that expire when their replica stops renewing them.

A lease says "this job is mine": taken (never waited for) before a job's status changes, renewed by
the runner's heartbeat while it runs or its callback is delivered, released when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from audio_service.keys import KeyIdentity
from audio_service.pipeline.batch import BatchJob

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class JobRecord:
    """One job: what to run, for whom, and how far it got."""

    id: str
    created_at: int
    job: BatchJob
    who: KeyIdentity
    response_format: str = "json"
    granularities: tuple[str, ...] = ("segment",)
    callback_url: str | None = None
    status: JobStatus = "queued"
    progress: float = 0.0
    started_at: int | None = None
    finished_at: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    callback_pending: bool = False  # the job ended and its callback is not delivered (or given up) yet
    cancel_requested: bool = field(default=False, compare=False)  # this process's flag, never stored

    @property
    def settled(self) -> bool:
        """Ended and its callback done: nothing is left to do but keep it for ``jobs.retention_s``."""
        return self.status in FINAL and not self.callback_pending

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (and as callbacks carry it)."""
        return {
            "id": self.id,
            "object": "audio.transcription.job",
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": round(self.progress, 4),
            "model": self.job.model,
            "response_format": self.response_format,
            "callback_url": self.callback_url,
            "result": self.result,
            "error": self.error,
        }

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data.pop("cancel_requested")
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobRecord:
        data = json.loads(text)
        job, who = data.pop("job"), data.pop("who")
        job["temperatures"] = tuple(job["temperatures"])
        data["granularities"] = tuple(data["granularities"])
        return cls(**data, job=BatchJob(**job), who=KeyIdentity(**who))


def job_order(record: JobRecord) -> tuple[int, str]:
    """Oldest first (reversed: a key's list, newest first); ties by id, so a list cursor is never ambiguous."""
    return record.created_at, record.id


@dataclass(frozen=True)
class JobPage:
    """One page of a key's jobs, newest first, and whether older ones follow."""

    records: list[JobRecord]
    has_more: bool


class JobStore(Protocol):
    """What the runner needs of a storage. Every method is a coroutine; none blocks the event loop."""

    async def open(self) -> None:
        """Before first use (load what is stored)."""

    async def close(self) -> None:
        """After last use."""

    async def save(self, record: JobRecord) -> None:
        """Store the record (an ended one is deleted ``jobs.retention_s`` after ``finished_at``)."""

    async def get(self, job_id: str) -> JobRecord | None:
        """The stored record, or None."""

    async def page(self, owner: str, limit: int, after: str | None) -> JobPage | None:
        """Up to ``limit`` of ``owner``'s jobs, newest first, from the one after ``after``; None when ``after``
        is not one of ``owner``'s jobs."""

    async def unsettled(self) -> list[JobRecord]:
        """Every job not ended, or ended with its callback pending, oldest first."""

    async def sweep(self) -> int:
        """Delete the ended records older than the retention that nothing else deletes; how many."""

    async def save_audio(self, job_id: str, source: BinaryIO) -> None:
        """Store the job's upload (read to its end)."""

    def audio_file(self, job_id: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """The upload as a local file while the context lasts."""

    async def drop_audio(self, job_id: str) -> None:
        """Delete the upload (the job ended)."""

    async def enqueue(self, job_id: str) -> None:
        """Put the job at the end of the queue."""

    async def next_queued(self, timeout_s: float) -> str | None:
        """Take the first queued job id, waiting up to ``timeout_s``; None if none came."""

    async def is_queued(self, job_id: str) -> bool:
        """The job is in the queue."""

    async def lease(self, job_id: str) -> bool:
        """Take the job's lease; False when someone (this process included) holds it."""

    async def renew(self, job_id: str) -> bool:
        """Extend this process's lease (or take it back if it lapsed and is free); False when another holds it."""

    async def release(self, job_id: str) -> None:
        """Give the lease back (no-op if this process does not hold it)."""

    async def request_cancel(self, job_id: str) -> None:
        """Mark the job to be cancelled by whoever runs it."""

    async def cancel_requested(self, job_id: str) -> bool:
        """The job was marked to be cancelled."""


class DiskJobStore:
    """Jobs in one directory, owned by one process (its queue and leases are in memory)."""

    def __init__(self, directory: Path, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self.dir = directory
        self._retention_s = retention_s
        self._clock = clock
        self._records: dict[str, JobRecord] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._leased: set[str] = set()
        self._cancel: set[str] = set()

    def audio_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.audio"

    async def open(self) -> None:
        for record in await asyncio.to_thread(self._load_all):
            self._records.setdefault(record.id, record)

    async def close(self) -> None:
        """Nothing to close: every record is on disk already."""

    def _load_all(self) -> list[JobRecord]:
        records = []
        for path in sorted(self.dir.glob("job_*.json")) if self.dir.is_dir() else []:
            try:
                records.append(JobRecord.from_json(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("skipping unreadable job record %s", path)
        return records

    async def save(self, record: JobRecord) -> None:
        self._records[record.id] = record
        if record.status in FINAL:
            self._cancel.discard(record.id)
        await asyncio.to_thread(self._write, record.id, record.to_json())

    def _write(self, job_id: str, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{job_id}.json.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.dir / f"{job_id}.json")

    async def get(self, job_id: str) -> JobRecord | None:
        return self._records.get(job_id)

    async def page(self, owner: str, limit: int, after: str | None) -> JobPage | None:
        mine = sorted((r for r in self._records.values() if r.who.name == owner), key=job_order, reverse=True)
        start = 0
        if after is not None:
            ids = [r.id for r in mine]
            if after not in ids:
                return None
            start = ids.index(after) + 1
        return JobPage(mine[start : start + limit], has_more=len(mine) > start + limit)

    async def unsettled(self) -> list[JobRecord]:
        return sorted((r for r in self._records.values() if not r.settled), key=job_order)

    async def sweep(self) -> int:
        oldest = self._clock() - self._retention_s
        old = [r.id for r in self._records.values() if r.settled and (r.finished_at or 0) < oldest]
        for job_id in old:
            del self._records[job_id]
            await asyncio.to_thread((self.dir / f"{job_id}.json").unlink, missing_ok=True)
            await self.drop_audio(job_id)
        return len(old)

    async def save_audio(self, job_id: str, source: BinaryIO) -> None:
        await asyncio.to_thread(self._write_audio, job_id, source)

    def _write_audio(self, job_id: str, source: BinaryIO) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{job_id}.audio.tmp"
        with tmp.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(tmp, self.audio_path(job_id))

    @contextlib.asynccontextmanager
    async def audio_file(self, job_id: str) -> AsyncIterator[Path]:
        yield self.audio_path(job_id)

    async def drop_audio(self, job_id: str) -> None:
        await asyncio.to_thread(self.audio_path(job_id).unlink, missing_ok=True)

    async def enqueue(self, job_id: str) -> None:
        if job_id not in self._queued:
            self._queued.add(job_id)
            self._queue.put_nowait(job_id)

    async def next_queued(self, timeout_s: float) -> str | None:
        try:
            job_id = await asyncio.wait_for(self._queue.get(), timeout_s)
        except asyncio.TimeoutError:
            return None
        self._queued.discard(job_id)
        return job_id

    async def is_queued(self, job_id: str) -> bool:
        return job_id in self._queued

    async def lease(self, job_id: str) -> bool:
        if job_id in self._leased:
            return False
        self._leased.add(job_id)
        return True

    async def renew(self, job_id: str) -> bool:
        return job_id in self._leased

    async def release(self, job_id: str) -> None:
        self._leased.discard(job_id)

    async def request_cancel(self, job_id: str) -> None:
        self._cancel.add(job_id)

    async def cancel_requested(self, job_id: str) -> bool:
        return job_id in self._cancel
