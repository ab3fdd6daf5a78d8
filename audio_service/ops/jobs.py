"""Long transcription jobs: a store on disk, a runner on the batch service, and signed callbacks.

Each job is ``<dir>/<id>.json`` (its record) next to ``<dir>/<id>.audio`` (the uploaded file, deleted
when the job ends). Records are written whole to a temporary file and renamed over the old one, so a
crash leaves the previous record, never half of one. On start, jobs found queued or running are queued
again (a running job restarts from the beginning: the batch pipeline keeps no partial state).

One runner task takes queued jobs in order and runs each on the batch service (its worker queue and
model, like a synchronous request); when the waiting room is full it waits and tries again instead of
failing the job. A running job is cancelled through the pipeline's progress callback, which raises
once the job is marked cancelled, so the worker stops at its next segment.

When a job ends, its JSON is POSTed to its ``callback_url`` through the same SSRF guard as audio URLs,
signed with ``jobs.callback_secret``: ``X-Audio-Service-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>." + body>`` with the timestamp in ``X-Audio-Service-Timestamp``, so a receiver can refuse
old (replayed) deliveries. Connection errors and 5xx answers are retried with exponential backoff.
A callback not yet delivered (or given up) when the server stops is delivered by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpcore
import httpx

from audio_service.audio.decode import audio_duration
from audio_service.audio.fetch import GuardedBackend
from audio_service.errors import InvalidRequestError, NotFoundError, OverloadedError, ServiceError
from audio_service.formatting import render
from audio_service.keys import KeyIdentity
from audio_service.pipeline.batch import BatchJob, BatchService, Progress
from audio_service.schema import Transcript
from audio_service.settings import Settings

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
SIGNATURE_HEADER = "X-Audio-Service-Signature"
TIMESTAMP_HEADER = "X-Audio-Service-Timestamp"

# called when a job's transcript is done: (who, model, audio seconds, processing seconds) -> charge and count
DoneHook = Callable[[KeyIdentity, str, float, float], Awaitable[None]]


class JobCancelled(Exception):
    """Raised by a cancelled job's progress callback, on the worker thread, to stop the pipeline."""


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
    cancel_requested: bool = field(default=False, compare=False)

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

    def to_disk(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("cancel_requested")
        return data

    @classmethod
    def from_disk(cls, data: dict[str, Any]) -> JobRecord:
        job, who = data.pop("job"), data.pop("who")
        job["temperatures"] = tuple(job["temperatures"])
        data["granularities"] = tuple(data["granularities"])
        return cls(**data, job=BatchJob(**job), who=KeyIdentity(**who))


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


class JobStore:
    """Job records and their audio in one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def audio_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.audio"

    def save(self, record: JobRecord) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{record.id}.json.tmp"
        tmp.write_text(json.dumps(record.to_disk()))
        os.replace(tmp, self.dir / f"{record.id}.json")

    def save_audio(self, job_id: str, source: BinaryIO) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{job_id}.audio.tmp"
        with tmp.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(tmp, self.audio_path(job_id))

    def drop_audio(self, job_id: str) -> None:
        self.audio_path(job_id).unlink(missing_ok=True)

    def load_all(self) -> list[JobRecord]:
        records = []
        for path in sorted(self.dir.glob("job_*.json")) if self.dir.is_dir() else []:
            try:
                records.append(JobRecord.from_disk(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("skipping unreadable job record %s", path)
        return sorted(records, key=lambda r: r.created_at)


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


class JobRunner:
    """Holds every job in memory (mirrored on disk) and runs the queued ones, one at a time."""

    def __init__(self, settings: Settings, batch: BatchService, on_done: DoneHook) -> None:
        self._settings = settings
        self._batch = batch
        self._on_done = on_done
        self.store = JobStore(jobs_dir(settings))
        self._jobs: dict[str, JobRecord] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None

    async def start(self) -> None:
        """Load the stored jobs and queue again those that had not ended."""
        for record in await asyncio.to_thread(self.store.load_all):
            self._jobs[record.id] = record
            if record.status not in FINAL:
                record.status, record.progress, record.started_at = "queued", 0.0, None
                self._queue.put_nowait(record.id)
            elif record.callback_pending:  # the last process stopped before delivering it
                self._call_back(record)
        requeued = self._queue.qsize()
        if requeued:
            log.info("jobs: %d unfinished job(s) queued again", requeued)
        self._runner = asyncio.create_task(self._run_queue())

    async def stop(self) -> None:
        """Stop taking jobs; a running job stays "running" on disk and is queued again on the next start."""
        for task in [self._runner, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._runner, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def submit(self, record: JobRecord, audio: BinaryIO) -> JobRecord:
        await asyncio.to_thread(self.store.save_audio, record.id, audio)
        await asyncio.to_thread(self.store.save, record)
        self._jobs[record.id] = record
        self._queue.put_nowait(record.id)
        return record

    def get(self, job_id: str, who: KeyIdentity) -> JobRecord:
        """The caller's job (another key's job is not found, as an unknown id)."""
        record = self._jobs.get(job_id)
        if record is None or record.who.name != who.name:
            raise NotFoundError(f"No job {job_id!r}.", param="id", code="job_not_found")
        return record

    async def cancel(self, job_id: str, who: KeyIdentity) -> JobRecord:
        """Cancel a queued job at once, a running one at its next segment; an ended job is left as it is."""
        record = self.get(job_id, who)
        if record.status == "queued":
            await self._finish(record, "cancelled")
        elif record.status == "running":
            record.cancel_requested = True
        return record

    async def _run_queue(self) -> None:
        while True:
            job_id = await self._queue.get()
            record = self._jobs.get(job_id)
            if record is not None and record.status == "queued":
                await self._run(record)

    async def _run(self, record: JobRecord) -> None:
        record.status, record.started_at = "running", int(time.time())
        await asyncio.to_thread(self.store.save, record)
        path = self.store.audio_path(record.id)
        duration = await asyncio.to_thread(audio_duration, path)

        def progress(p: Progress) -> None:  # on the worker thread
            if record.cancel_requested:
                raise JobCancelled
            if duration:
                record.progress = min(1.0, max(record.progress, p.position_s / duration))

        t0 = time.perf_counter()
        try:
            transcript = await self._transcribe(str(path), record, progress)
        except JobCancelled:
            await self._finish(record, "cancelled")
        except ServiceError as exc:
            await self._finish(record, "failed", error=exc)
        except Exception:
            log.exception("job %s failed", record.id)
            await self._finish(record, "failed", error=ServiceError("Internal server error: transcription failed."))
        else:
            if record.cancel_requested:  # a path without progress reports (multichannel) ran to its end
                await self._finish(record, "cancelled")
                return
            await self._on_done(record.who, record.job.model or "", transcript.duration, time.perf_counter() - t0)
            await self._finish(record, "succeeded", result=self._result(transcript, record))

    async def _transcribe(self, path: str, record: JobRecord, progress: Callable[[Progress], None]) -> Transcript:
        while True:
            try:
                return await self._batch.run(path, record.job, progress)
            except OverloadedError:  # the waiting room is full of synchronous requests: a job can wait
                await asyncio.sleep(self._settings.batch.retry_after_s)
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
        await asyncio.to_thread(self.store.save, record)
        await asyncio.to_thread(self.store.drop_audio, record.id)
        if record.callback_pending:
            self._call_back(record)

    def _call_back(self, record: JobRecord) -> None:
        task = asyncio.create_task(self._deliver(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, record: JobRecord) -> None:
        """Deliver the callback (or give up), then mark it done on disk: a stop before that delivers it again."""
        await self._attempts(record)
        record.callback_pending = False
        await asyncio.to_thread(self.store.save, record)

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
