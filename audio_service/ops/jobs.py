"""Long transcription jobs: a runner on the batch service, its storage, and signed callbacks.

Jobs live in a :class:`~audio_service.ops.job_store.JobStore`: on disk for one process, or in Redis for
every replica of a deployment (``jobs.storage``). The runner does not care which: it takes queued jobs
one at a time, each under a lease that says which process runs it, renewed by a heartbeat. A process
that dies stops renewing; once its leases expire, any process (at its start, then every ``jobs.lease_s``)
queues its unfinished jobs again, and a job that was running starts over (the batch pipeline keeps no
partial state). A clean stop gives its leases back at once. A process whose heartbeat finds its lease
taken by another (it was too late to renew it) stops the job and stores nothing: the other one runs it.

Each job runs on the batch service (its worker queue and model, like a synchronous request); when the
waiting room is full it waits and tries again instead of failing the job. A running job is cancelled
through the pipeline's progress callback, which raises once the job is marked cancelled, so the worker
stops at its next segment; a cancel made on another replica reaches it with the next heartbeat.

When a job ends, its JSON is POSTed to its ``callback_url`` through the same SSRF guard as audio URLs,
signed with ``jobs.callback_secret``: ``X-Audio-Service-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>." + body>`` with the timestamp in ``X-Audio-Service-Timestamp``, so a receiver can refuse
old (replayed) deliveries. Connection errors and 5xx answers are retried with exponential backoff.
The job's lease is held until the delivery is done (or given up), so a callback whose process stopped
first is delivered by the next one to look.

Ended records are kept ``jobs.retention_s``: Redis expires them, the disk store is swept at start and
hourly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import httpcore
import httpx

from audio_service.audio.decode import audio_duration
from audio_service.audio.fetch import GuardedBackend
from audio_service.errors import InvalidRequestError, NotFoundError, OverloadedError, ServiceError, StorageUnavailableError
from audio_service.formatting import render
from audio_service.keys import KeyIdentity
from audio_service.leases import shared_storage
from audio_service.ops.job_store import FINAL, DiskJobStore, JobPage, JobRecord, JobStatus, JobStore
from audio_service.ops.redis_jobs import RedisJobStore
from audio_service.pipeline.batch import BatchService, Progress
from audio_service.schema import Transcript
from audio_service.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Audio-Service-Signature"
TIMESTAMP_HEADER = "X-Audio-Service-Timestamp"

# called when a job's transcript is done: (who, model, audio seconds, processing seconds) -> charge and count
DoneHook = Callable[[KeyIdentity, str, float, float], Awaitable[None]]


class JobCancelled(Exception):
    """Raised by a cancelled job's progress callback, on the worker thread, to stop the pipeline."""


class JobLost(Exception):
    """Raised by the progress callback of a job whose lease another process took: it runs the job now."""


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def jobs_dir(settings: Settings) -> Path:
    return settings.jobs.dir or settings.models.cache_dir / "jobs"


async def check_callback_url(url: str, allowlist: list[str]) -> str:
    """The URL, if it is http(s) and its host passes the SSRF guard now (it is checked again on delivery)."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidRequestError(f"Invalid callback_url: {exc}", param="callback_url") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequestError("callback_url must be an http(s)://host/... URL.", param="callback_url")
    guard = GuardedBackend(allowlist, param="callback_url", what="callback URL")
    await guard.checked_addresses(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    return str(parsed)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of ``"<timestamp>." + body``."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def job_store(settings: Settings) -> JobStore:
    """Redis when ``jobs.storage`` names it (or, left empty, when ``quotas.storage`` does), else disk."""
    jobs = settings.jobs
    uri = None if jobs.storage == "disk" else jobs.storage or shared_storage(settings)
    if uri is None:
        return DiskJobStore(jobs_dir(settings), jobs.retention_s)
    return RedisJobStore(uri, jobs.lease_s, jobs.retention_s)


SWEEP_EVERY_S = 3600.0


class JobRunner:
    """Runs the store's queued jobs, one at a time, under leases its heartbeat renews."""

    def __init__(self, settings: Settings, batch: BatchService, on_done: DoneHook) -> None:
        self._settings = settings
        self._batch = batch
        self._on_done = on_done
        self.store = job_store(settings)
        self._beat_s = settings.jobs.lease_s / 3
        self._held: set[str] = set()  # ids of the jobs whose lease this runner holds
        self._running: dict[str, JobRecord] = {}  # the job running here (by id), as its worker sees it
        self._lost: set[str] = set()  # running here, but another process took the lease: stop, store nothing
        self._saving = asyncio.Lock()  # a heartbeat's progress save never lands after the job's final save
        self._tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []

    async def start(self) -> None:
        """Open the store, queue again what no one runs, and start taking jobs."""
        await self.store.open()
        try:
            await self._recover()
        except Exception as exc:  # noqa: BLE001 - Redis down at start: serve anyway, the maintenance loop retries
            log.warning("jobs: could not look for unfinished jobs (%s)", exc)
        self._loops = [asyncio.create_task(c) for c in (self._run_queue(), self._heartbeat(), self._maintain())]

    async def stop(self) -> None:
        """Stop taking jobs and give the leases back: a running job stays "running" in the store and is
        queued again by the next process to look (this one's next start, or another replica)."""
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for job_id in list(self._held):
            with contextlib.suppress(Exception):
                await self._give(job_id)
        await self.store.close()

    async def submit(self, record: JobRecord, audio: BinaryIO) -> JobRecord:
        await self.store.save_audio(record.id, audio)
        await self.store.save(record)
        await self.store.enqueue(record.id)
        return record

    async def get(self, job_id: str, who: KeyIdentity) -> JobRecord:
        """The caller's job (another key's job is not found, as an unknown id)."""
        record = self._running.get(job_id) or await self.store.get(job_id)
        if record is None or record.who.name != who.name:
            raise NotFoundError(f"No job {job_id!r}.", param="id", code="job_not_found")
        return record

    async def page(self, who: KeyIdentity, limit: int, after: str | None) -> JobPage:
        """The caller's jobs, newest first, from the one after ``after``."""
        page = await self.store.page(who.name, limit, after)
        if page is None:
            raise NotFoundError(f"No job {after!r} to list after.", param="after", code="job_not_found")
        return page

    async def cancel(self, job_id: str, who: KeyIdentity) -> JobRecord:
        """Cancel a queued job at once, a running one at its next segment; an ended job is left as it is."""
        record = await self.get(job_id, who)
        if record.status in FINAL:
            return record
        await self.store.request_cancel(job_id)  # whoever runs it (or is about to) stops at its next check
        if job_id in self._running:
            self._running[job_id].cancel_requested = True
        elif record.status == "queued" and await self._take(job_id):
            try:
                current = await self.store.get(job_id)  # under the lease: no replica starts it meanwhile
                if current is not None and current.status == "queued":
                    await self._finish(current, "cancelled")  # gives the lease back, or its callback's delivery will
                    return current
            except BaseException:
                await self._give(job_id)  # _finish failed before handing the lease on
                raise
            await self._give(job_id)
        return await self.get(job_id, who)

    async def _take(self, job_id: str) -> bool:
        if job_id in self._held or not await self.store.lease(job_id):
            return False
        self._held.add(job_id)
        return True

    async def _give(self, job_id: str) -> None:
        if job_id in self._held:
            self._held.discard(job_id)
            await self.store.release(job_id)

    async def _recover(self) -> None:
        """Queue again the jobs no process holds (their process died or stopped) and deliver their callbacks."""
        requeued = 0
        for record in await self.store.unsettled():
            if not await self._take(record.id):  # running (or delivered) by a live process
                continue
            if record.status in FINAL:  # ended, and the process delivering its callback stopped
                self._call_back(record)  # the delivery gives the lease back
                continue
            queue = False
            try:
                if not (record.status == "queued" and await self.store.is_queued(record.id)):
                    record.status, record.progress, record.started_at = "queued", 0.0, None
                    await self.store.save(record)
                    queue = True
            finally:
                await self._give(record.id)
            # queued once the lease is given back: a worker that pops the id at once must be able to take it
            # (queued under the lease, it was popped, found taken and dropped, every recovery pass again)
            if queue:
                await self.store.enqueue(record.id)
                requeued += 1
        if requeued:
            log.info("jobs: %d unfinished job(s) queued again", requeued)

    async def _maintain(self) -> None:
        """Every lease period, queue again the jobs of processes that died; hourly, delete old records."""
        swept_at = float("-inf")
        while True:
            try:
                if time.monotonic() - swept_at >= SWEEP_EVERY_S:
                    swept_at = time.monotonic()
                    if deleted := await self.store.sweep():
                        log.info("jobs: %d ended job record(s) past jobs.retention_s deleted", deleted)
                await asyncio.sleep(self._settings.jobs.lease_s)
                await self._recover()
            except Exception as exc:  # noqa: BLE001 - a storage outage: try again at the next period
                log.warning("jobs: recovery failed (%s)", exc)

    async def _heartbeat(self) -> None:
        """Renew the leases held here; for a running job, store its progress and notice a cancel made elsewhere."""
        saved: dict[str, float] = {}
        while True:
            await asyncio.sleep(self._beat_s)
            try:
                for job_id in list(self._held):
                    if not await self.store.renew(job_id):
                        log.warning("jobs: another process took the lease of %s; leaving the job to it", job_id)
                        self._held.discard(job_id)
                        if job_id in self._running:
                            self._lost.add(job_id)
                for job_id, record in list(self._running.items()):
                    if job_id in self._lost:
                        continue
                    if await self.store.cancel_requested(job_id):
                        record.cancel_requested = True
                    if saved.get(job_id) != record.progress:
                        saved[job_id] = record.progress
                        async with self._saving:
                            if job_id in self._running:
                                await self.store.save(record)
                saved = {k: v for k, v in saved.items() if k in self._running}
            except Exception as exc:  # noqa: BLE001 - retried at the next beat (a lease outlives two misses)
                log.warning("jobs: heartbeat failed (%s)", exc)

    async def _run_queue(self) -> None:
        while True:
            job_id = None
            try:
                job_id = await self.store.next_queued(self._beat_s)
                if job_id is None or not await self._take(job_id):
                    # nothing came, or another process holds it: it runs it, or requeues it, or (a recovery
                    # pass that found it still in the queue) leaves it to the next recovery pass
                    continue
                record = await self.store.get(job_id)
                if record is None or record.status != "queued":  # ended (cancelled), or queued twice
                    await self._give(job_id)
                elif await self.store.cancel_requested(job_id):
                    await self._finish(record, "cancelled")
                else:
                    await self._run(record)
            except Exception as exc:  # noqa: BLE001 - a storage outage: the job stays unsettled, requeued later
                log.warning("jobs: could not take or end a job (%s)", exc)
                if job_id is not None:  # no delivery holds its lease: it starts only after the final save
                    with contextlib.suppress(Exception):
                        await self._give(job_id)
                await asyncio.sleep(self._beat_s)

    async def _run(self, record: JobRecord) -> None:
        """Run a job whose lease is held here; :meth:`_finish` gives it back."""
        record.status, record.started_at = "running", int(time.time())
        await self.store.save(record)
        self._running[record.id] = record
        t0 = time.perf_counter()
        try:
            async with self.store.audio_file(record.id) as path:
                duration = await asyncio.to_thread(audio_duration, path)

                def progress(p: Progress) -> None:  # on the worker thread
                    if record.id in self._lost:
                        raise JobLost
                    if record.cancel_requested:
                        raise JobCancelled
                    if duration:
                        record.progress = min(1.0, max(record.progress, p.position_s / duration))

                transcript = await self._transcribe(str(path), record, progress)
        except JobLost:
            self._drop_lost(record.id)
        except JobCancelled:
            await self._finish(record, "cancelled")
        except StorageUnavailableError:
            # not the job's fault: it stays "running" in the store and is queued again once Redis answers
            self._running.pop(record.id, None)
            raise
        except ServiceError as exc:
            await self._finish(record, "failed", error=exc)
        except Exception:
            log.exception("job %s failed", record.id)
            await self._finish(record, "failed", error=ServiceError("Internal server error: transcription failed."))
        else:
            if record.id in self._lost:
                self._drop_lost(record.id)
                return
            if record.cancel_requested or await self.store.cancel_requested(record.id):
                # a path without progress reports (multichannel) ran to its end
                await self._finish(record, "cancelled")
                return
            await self._on_done(record.who, record.job.model or "", transcript.duration, time.perf_counter() - t0)
            await self._finish(record, "succeeded", result=self._result(transcript, record))

    def _drop_lost(self, job_id: str) -> None:
        """Forget a job whose lease another process took (it runs the job from the start): no record is
        saved and no callback sent from here."""
        self._lost.discard(job_id)
        self._running.pop(job_id, None)
        log.warning("job %s: stopped here, another process runs it", job_id)

    async def _transcribe(self, path: str, record: JobRecord, progress: Callable[[Progress], None]) -> Transcript:
        while True:
            try:
                return await self._batch.run(path, record.job, progress)
            except OverloadedError:  # the waiting room is full of synchronous requests: a job can wait
                await asyncio.sleep(self._settings.batch.retry_after_s)
                if record.id in self._lost:
                    raise JobLost from None
                if record.cancel_requested:
                    raise JobCancelled from None

    @staticmethod
    def _result(transcript: Transcript, record: JobRecord) -> dict[str, Any]:
        rendered = render(transcript, record.response_format, record.granularities)
        if isinstance(rendered.body, dict):
            return rendered.body
        return {"text": rendered.body}  # text, srt and vtt: the body the synchronous endpoint sends

    async def _finish(
        self, record: JobRecord, status: JobStatus, *, result: dict[str, Any] | None = None, error: ServiceError | None = None
    ) -> None:
        record.status, record.finished_at, record.result = status, int(time.time()), result
        if status == "succeeded":
            record.progress = 1.0
        if error is not None:
            record.error = {"message": error.message, "type": error.error_type, "param": error.param, "code": error.code}
        record.callback_pending = bool(record.callback_url)
        async with self._saving:
            self._running.pop(record.id, None)
            await self.store.save(record)
        await self.store.drop_audio(record.id)
        if record.callback_pending:
            self._call_back(record)  # the delivery gives the lease back
        else:
            await self._give(record.id)

    def _call_back(self, record: JobRecord) -> None:
        task = asyncio.create_task(self._deliver(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, record: JobRecord) -> None:
        """Deliver the callback (or give up), then mark it done in the store, all under the job's lease: a
        process that stops before that leaves it to the next one to look."""
        await self._attempts(record)
        record.callback_pending = False
        try:
            await self.store.save(record)
        finally:
            await self._give(record.id)

    async def _attempts(self, record: JobRecord) -> None:
        settings = self._settings.jobs
        body = json.dumps(record.public()).encode()
        timestamp = str(int(time.time()))
        headers = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", b"audio-service"),
            (TIMESTAMP_HEADER.encode(), timestamp.encode()),
        ]
        if settings.callback_secret is None:
            log.warning("job %s: callback sent unsigned (set jobs.callback_secret to sign callbacks)", record.id)
        else:
            headers.append(
                (SIGNATURE_HEADER.encode(), sign(settings.callback_secret.get_secret_value(), timestamp, body).encode())
            )
        url = httpx.URL(record.callback_url or "")
        for attempt in range(settings.callback_attempts):
            if attempt:
                await asyncio.sleep(settings.callback_backoff_s * 2 ** (attempt - 1))
            try:
                status = await asyncio.wait_for(
                    _post(url, headers, body, self._settings.server.url_fetch_allowlist), settings.callback_timeout_s
                )
            except InvalidRequestError as exc:  # the host resolves to a forbidden address now: never retried
                log.warning("job %s: callback not sent: %s", record.id, exc.message)
                return
            except (asyncio.TimeoutError, httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
                log.warning("job %s: callback attempt %d failed: %s", record.id, attempt + 1, exc or type(exc).__name__)
                continue
            if status < 500:
                log.info("job %s: callback answered %d", record.id, status)
                return
            log.warning("job %s: callback attempt %d answered %d", record.id, attempt + 1, status)
        log.error("job %s: callback to %s gave up after %d attempts", record.id, url.host, settings.callback_attempts)


async def _post(url: httpx.URL, headers: list[tuple[bytes, bytes]], body: bytes, allowlist: list[str]) -> int:
    """POST ``body`` through the SSRF guard (no redirects followed); the answer's status."""
    guard = GuardedBackend(allowlist, param="callback_url", what="callback URL")
    target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
    async with httpcore.AsyncConnectionPool(network_backend=guard, max_connections=1, retries=0) as pool:
        response = await pool.request("POST", target, headers=[(b"Host", url.netloc), *headers], content=body)
        return response.status
