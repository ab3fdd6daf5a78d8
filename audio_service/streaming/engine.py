"""The one scheduler that runs every stream's decode work on the shared models.

Each worker thread loops: pick the most urgent kind of work (final passes before partials),
take one job from each stream that has such work (oldest-served first), and run them as one
batched model call when ``batching`` is on (one job per call otherwise). Because a stream's next
partial is only taken once its previous job is done, partial updates of every stream simply
become coarser when the model is busy: no audio is dropped, and each session bounds its own
backlog. VAD runs on a second thread, so endpoints are found while the model is busy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from audio_service.models.priority import lower_thread_priority
from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.job import DecodeJob, JobOwner
from audio_service.streaming.session import StreamSession
from audio_service.streaming.values import Checkpoint, Trace
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.stream import decode_batch
from audio_service.whisper.types import DecodeBatch, DecodeResult, WindowPolicy

log = logging.getLogger(__name__)
STATS_LOG_INTERVAL_S = 60.0
# Load-adaptive partials: the load is how many streams have decode work ready when the scheduler
# picks a job (smoothed). Beyond one per worker, every stream's partial interval grows smoothly, by
# half of it per extra waiting stream up to MAX_PARTIAL_SCALE times, so partials leave the model to the final
# passes instead of all streams re-decoding as fast as it allows. Streams waiting for each other is
# the signal, not the model's wall time: on a CPU shared with other work one stream alone is slow
# without being helped by coarser updates. Finals are always taken first.
LOAD_SMOOTHING = 0.2
MAX_PARTIAL_SCALE = 3.0


class LoadMeter:
    """How much longer than configured partial intervals are now: from the number of streams with
    work ready each time the scheduler looks (see LOAD_SMOOTHING)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._ready = 0.0  # smoothed number of streams with work ready
        self.scale = 1.0

    def update(self, ready: int) -> None:
        """Count ``ready`` streams now; updates :attr:`scale`."""
        self._ready += LOAD_SMOOTHING * (ready - self._ready)
        self.scale = min(MAX_PARTIAL_SCALE, 1.0 + max(0.0, self._ready - self.workers) / 2)


@dataclass
class EngineStats:
    """Counters for logs and benchmarks."""

    calls: int = 0
    jobs: int = 0
    busy_s: float = 0.0
    busy_by_kind: dict[str, float] = field(default_factory=dict)  # "final"/"partial" -> model time (s)
    # process CPU seconds during the calls (all threads: mostly the model's), and calls, per kind
    cpu_by_kind: dict[str, float] = field(default_factory=dict)
    calls_by_kind: dict[str, int] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)

    def summary(self, sessions: int) -> str:
        """One log line."""
        kinds = ", ".join(
            f"{k}: {self.calls_by_kind[k]} calls, {v:.1f} s, {self.cpu_by_kind[k]:.1f} CPU-s"
            for k, v in sorted(self.busy_by_kind.items())
        )
        return (
            f"streaming engine: {sessions} sessions, {self.calls} model calls, {self.jobs} jobs "
            f"(batch sizes {dict(sorted(self.batch_sizes.items()))}), {self.busy_s:.1f} s busy ({kinds})"
        )


class StreamingEngine:
    """Schedules decode work of all sessions onto the shared models."""

    def __init__(
        self,
        batching: bool = True,
        max_batch: int = 8,
        window: WindowPolicy | None = None,
        partial_batch_audio_s: float = 40.0,
        workers: int = 1,
        decode: DecodeBatch = decode_batch,
        options: DecodeOptions | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.max_batch = max(1, max_batch) if batching else 1
        # A partial batch stops growing at this much audio, so a final pass that becomes due
        # while it runs waits at most one short model call (final latency matters most).
        self.partial_batch_audio_s = partial_batch_audio_s
        self.window = window or WindowPolicy()
        self._decode_batch = decode
        self.options = options or DecodeOptions()  # the decoding options of every window (the batch path's too)
        self.stats = EngineStats()
        self._decode_s: weakref.WeakKeyDictionary[JobOwner, float] = weakref.WeakKeyDictionary()
        self._sessions: list[StreamSession] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._logged_at = time.monotonic()
        self._load = LoadMeter(self.workers)  # how much longer than configured partial intervals are now
        # One VAD thread: Silero is tiny, and one thread keeps every stream's frames in order.
        self._vad_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-vad")
        # Speaker tracking shares the decode thread's tier: below the event loop and VAD, above batch work.
        self._tracker_pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="stream-speakers", initializer=lower_thread_priority
        )

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler threads. Several (``workers``) run model calls at once, each taking other
        sessions' work (a session has one job at a time), so single-threaded calls can use every core."""
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._run, name=f"stream-engine-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 30)
        log.info(self.stats.summary(len(self._sessions)))
        self._vad_pool.shutdown(wait=False, cancel_futures=True)
        self._tracker_pool.shutdown(wait=False, cancel_futures=True)

    def add(self, session: StreamSession) -> None:
        with self._cond:
            self._sessions.append(session)
        session.follow_load(lambda: self._load.scale)

    def remove(self, session: StreamSession) -> None:
        """Forget a session and free its state (a job in flight finishes and is ignored)."""
        with self._cond:
            if session in self._sessions:
                self._sessions.remove(session)
        session.close()

    def decode_seconds(self, session: StreamSession) -> float:
        """Model time spent on ``session`` so far (its share of batched calls)."""
        return self._decode_s.get(session, 0.0)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()  # every idle worker looks: there may be work for more than one

    async def feed(self, session: StreamSession, samples: np.ndarray) -> None:
        """Run the session's VAD over new audio off the event loop, then let the scheduler look."""
        await asyncio.get_running_loop().run_in_executor(self._vad_pool, session.feed, samples)
        self.wake()

    async def mark(self, session: StreamSession, message: Checkpoint | Trace) -> None:
        """Queue a checkpoint/trace behind the audio already fed (same thread as the VAD: keeps order)."""
        await asyncio.get_running_loop().run_in_executor(self._vad_pool, session.mark, message)
        self.wake()

    # --- scheduling -------------------------------------------------------------------------------

    def _run(self) -> None:
        lower_thread_priority()  # decode work yields the CPU to the event loop and the VAD thread
        while True:
            with self._cond:
                jobs = self._collect()
                while not jobs and not self._stopping:
                    self._cond.wait(timeout=0.25)
                    jobs = self._collect()
                if self._stopping:
                    return
            results, elapsed, cpu_s = self._decode(jobs)
            if results is not None:
                with self._cond:
                    self._account(jobs, elapsed, cpu_s)
                self._deliver(jobs, results)

    def _collect(self) -> list[DecodeJob]:
        """The next batch: final passes first, then partials; oldest-served sessions first."""
        self._update_load()
        for final in (True, False):
            ready = sorted((s for s in self._sessions if s.has_work(final)), key=lambda s: s.waiting_since)
            if not ready:
                continue
            model_id = ready[0].model_for(final).spec.id
            jobs: list[DecodeJob] = []
            audio_s = 0.0
            for s in ready:
                if s.model_for(final).spec.id != model_id:
                    continue
                job = s.next_job(final)
                if job is not None:
                    jobs.append(job)
                    audio_s += len(job.request.samples) / SAMPLE_RATE
                if len(jobs) >= self.max_batch or (not final and audio_s >= self.partial_batch_audio_s):
                    break
            if jobs:
                return jobs
        return []

    def _decode(self, jobs: list[DecodeJob]) -> tuple[list[DecodeResult] | None, float, float]:
        """One model call; its results (None when it failed: the sessions are told), wall and CPU time."""
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            results = self._decode_batch(jobs[0].model, [j.request for j in jobs], self.window, self.options)
        except Exception as exc:  # a model failure must not kill the scheduler or other streams
            log.exception("streaming decode failed for %d stream(s)", len(jobs))
            for j in jobs:
                j.session.fail(exc)
            return None, 0.0, 0.0
        # process CPU during the call: CTranslate2 computes on its own threads (overlapping calls count twice)
        return results, time.perf_counter() - t0, time.process_time() - cpu0

    def _account(self, jobs: list[DecodeJob], elapsed: float, cpu_s: float) -> None:
        """Count one model call in the stats (under ``_cond``: several workers)."""
        self.stats.calls += 1
        self.stats.jobs += len(jobs)
        self.stats.busy_s += elapsed
        kind = jobs[0].kind
        self.stats.busy_by_kind[kind] = self.stats.busy_by_kind.get(kind, 0.0) + elapsed
        self.stats.cpu_by_kind[kind] = self.stats.cpu_by_kind.get(kind, 0.0) + cpu_s
        self.stats.calls_by_kind[kind] = self.stats.calls_by_kind.get(kind, 0) + 1
        self.stats.batch_sizes[len(jobs)] = self.stats.batch_sizes.get(len(jobs), 0) + 1
        for j in jobs:  # a batched call's time, shared equally (for the per-stream real-time factor)
            self._decode_s[j.session] = self._decode_s.get(j.session, 0.0) + elapsed / len(jobs)
        if time.monotonic() - self._logged_at >= STATS_LOG_INTERVAL_S:
            self._logged_at = time.monotonic()
            log.info(self.stats.summary(len(self._sessions)))

    def _deliver(self, jobs: list[DecodeJob], results: list[DecodeResult]) -> None:
        for job, result in zip(jobs, results):
            if job.final and job.session.has_tracker:
                # speaker embedding can take a while: keep it off the decode thread (the session
                # stays busy until it is done, so its segments still go out in order)
                self._tracker_pool.submit(self._complete, job, result)
            else:
                self._complete(job, result)

    def _update_load(self) -> None:
        """Recompute the partial interval scale from how many streams have work ready now (under ``_cond``)."""
        self._load.update(sum(1 for s in self._sessions if s.has_work(True) or s.has_work(False)))

    def _complete(self, job: DecodeJob, result: DecodeResult) -> None:
        try:
            job.session.complete(job, result, job.session.speaker_for(job, result))
        except Exception as exc:
            log.exception("streaming session failed")
            job.session.fail(exc)
        self.wake()  # a session done off the decode thread (speaker tracking) may have work again
