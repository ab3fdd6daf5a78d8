"""The batch transcription service: decode -> preprocess -> VAD -> ASR -> align -> diarize.

The API layer builds a :class:`BatchJob` from a validated request, calls
:meth:`BatchService.validate` (cheap checks that must fail before any audio is read) and then
:meth:`BatchService.run`, which executes the whole pipeline on a worker thread. Given a
:class:`~audio_service.pipeline.fanout.BlockTranscriber` (Ray Serve), a long file's blocks are
transcribed here and through it at the same time instead (:meth:`BatchService.run_fanned_out`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np

from audio_service.audio.decode import MAX_CHANNELS, iter_audio_blocks, probe_audio
from audio_service.audio.preprocess import preprocess
from audio_service.diarization.offline import DiarizerRegistry, SpeakerBounds
from audio_service.diarization.words import assign_speakers
from audio_service.errors import InvalidRequestError
from audio_service.leases import leases
from audio_service.models.registry import ModelRegistry
from audio_service.pipeline import asr
from audio_service.pipeline.align import AlignerRegistry
from audio_service.pipeline.blocks import Block, join, merge_channels, speech_blocks
from audio_service.pipeline.fanout import BlockResult, BlockTask, BlockTranscriber, Lane, transcribe_blocks
from audio_service.pipeline.keyterms import keep_keyterms
from audio_service.pipeline.queue import WorkQueue
from audio_service.schema import Audio, SpeechSpan, Task, Transcript
from audio_service.settings import Settings
from audio_service.vad import VadRegistry
from audio_service.vad.params import BATCH_VAD, ENGINE_VAD
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.types import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchJob:
    """One request's options, already validated for types and ranges."""

    task: Task = "transcribe"
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    hotwords: str | None = None  # the client's keyterms or hotwords, validated (decoding.keyterms_text)
    keyterms: tuple[str, ...] = ()  # the client's keyterms as a list (empty for free-text hotwords)
    temperatures: tuple[float, ...] = (0.0,)
    word_timestamps: bool = False  # the client asked for word timing
    timed_segments: bool = False  # the output shows segment times (srt, vtt, verbose_json)
    vad_model: str = "silero"
    skip_vad: bool = False
    max_clip_len: float = 30.0
    preprocessing: str = "none"
    alignment_model: str | None = None
    diarize: bool = False
    diarization_model: str | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    multichannel: bool = False  # each channel of the file transcribed on its own (segments carry ``channel``)


@dataclass(frozen=True)
class Progress:
    """A progress report of a running job: new text (may be empty) and the audio position reached."""

    text: str
    position_s: float  # seconds of the file transcribed so far, on the file's clock


ProgressCallback = Callable[[Progress], object]  # its return value is ignored


class BatchService:
    """Runs batch jobs on the shared models through a bounded worker queue."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        fanout: BlockTranscriber | None = None,
        transcribe: asr.Transcribe = asr.transcribe,
        decode: DecodeOptions | None = None,
    ) -> None:
        self._settings = settings
        self._decode = decode or DecodeOptions.from_settings(settings)  # the decoding options of every file
        self._transcribe = transcribe
        self._registry = registry
        self._fanout = fanout
        # the waiting room is shared by the deployment when the quotas are in Redis
        seats = leases(settings, "audio_service:queue:")
        self._queue = WorkQueue(
            settings.batch.workers, settings.batch.max_queued_requests, settings.batch.retry_after_s, "batch", seats
        )
        self.aligners = AlignerRegistry(settings)
        self.diarizers = DiarizerRegistry(settings)
        self.vads = VadRegistry()

    @property
    def queue(self) -> WorkQueue:
        return self._queue

    def validate(self, job: BatchJob) -> BatchJob:
        """Raise for names that do not resolve; return the job with the model id resolved."""
        spec = self._registry.resolve(job.model)
        if job.vad_model not in self.vads.names:
            raise InvalidRequestError(
                f"Unknown vad_model {job.vad_model!r}. Available: {', '.join(self.vads.names)}.", param="vad_model"
            )
        if not job.skip_vad:
            self.vads.get(job.vad_model)  # a VAD whose extra is not installed is refused here, before any audio is read
        if job.alignment_model is not None:
            self.aligners.resolve(job.alignment_model)
        if job.diarize:
            self.diarizers.resolve(job.diarization_model)
        if self._registry.is_loaded(spec.id):  # else checked on the worker, after loading off the event loop
            self._check_task(job, self._registry.get(spec.id))
        return replace(job, model=spec.id)

    @staticmethod
    def _check_task(job: BatchJob, model: LoadedModel) -> None:
        if job.task == "translate" and not model.multilingual:
            raise InvalidRequestError(f"Model {model.spec.id!r} is English-only and cannot translate.", param="model")

    async def run(self, source: str | BinaryIO, job: BatchJob, progress: ProgressCallback | None = None) -> Transcript:
        """Transcribe or translate ``source`` (a path or a binary file object) on a worker thread.

        ``progress`` (called on the worker thread) gets the audio position as each decoded segment
        comes out of the decoder, then each block's final segments with their text, then the block's
        end; it does not change the result.
        """
        # a bad file is refused at once, not after waiting behind long jobs for a worker
        channels = await asyncio.to_thread(probe_audio, source)
        if job.multichannel:
            if channels > MAX_CHANNELS:
                raise InvalidRequestError(
                    f"multichannel=true takes files of up to {MAX_CHANNELS} channels; this one has {channels}.",
                    param="multichannel",
                )
            return await self._queue.run(self.run_channels, source, job, channels)
        if self._fanout is not None and self._settings.ray.fanout_block_s > 0 and progress is None:
            return await self.run_fanned_out(source, job, self._fanout)
        return await self._queue.run(self.run_sync, source, job, progress)

    async def run_fanned_out(self, source: str | BinaryIO, job: BatchJob, transcriber: BlockTranscriber) -> Transcript:
        """Cut the file into ``ray.fanout_block_s`` blocks here, transcribe them on this process's workers
        and through ``transcriber`` at once, join them and diarize the whole file here. No worker is held
        while the blocks run (remote ones may come back to this process's workers)."""
        t0 = time.perf_counter()
        async with self._queue.admission() as ticket:
            blocks = await self._queue.work(self._split, source, job, ticket=ticket)
            opts, aligner = self._asr_options(job), self._aligner(job)
            detect = opts.language is None and job.task == "transcribe"
            lanes: list[Lane] = [self.transcribe_here, *[transcriber] * (transcriber.lanes if len(blocks) > 1 else 0)]
            results = await transcribe_blocks(blocks, lanes, job.model or "", opts, aligner, detect)
            parts = [(b.offset, r.transcript) for b, r in zip(blocks, results, strict=True)]
            audio = Audio(np.concatenate([b.audio.samples for b in blocks])) if job.diarize else None
            duration = blocks[-1].offset + blocks[-1].audio.duration
            transcript = await self._queue.work(self._finish, parts, duration, job, aligner, audio)
        workers = sorted({r.worker for r in results})
        log.info("%s %.1fs in %d blocks on %s in %.2fs", job.task, duration, len(blocks), workers, time.perf_counter() - t0)
        return transcript.with_provenance(**{"block-workers": ",".join(workers)})

    def _split(self, source: str | BinaryIO, job: BatchJob) -> list[Block]:
        """The file's blocks with their speech (on a worker: decoding and VAD)."""
        self._check_task(job, self._registry.get(job.model))
        raw = (preprocess(b, job.preprocessing) for b in iter_audio_blocks(source, self._settings.ray.fanout_block_s))
        return list(speech_blocks(raw, lambda audio: self._speech(audio, job)))

    async def transcribe_block(self, task: BlockTask) -> Transcript:
        """One block of a fanned-out file, on a worker (admitted with its file, so never refused)."""
        return await self._queue.work(self._block_sync, task)

    async def transcribe_here(self, task: BlockTask) -> BlockResult:
        """The in-process lane of a fanned-out file: the block on this service's workers."""
        return BlockResult(await self.transcribe_block(task), self._settings.server.replica_name or "local")

    def _block_sync(self, task: BlockTask) -> Transcript:
        audio = task.audio()
        return self._transcribe_block(self._registry.get(task.model), audio, task.spans, task.opts, task.aligner)

    def _transcribe_block(
        self, model: LoadedModel, audio: Audio, spans, opts: asr.AsrOptions, aligner: str | None, on_segment=None
    ) -> Transcript:
        if opts.keyterms and opts.hotwords:
            # the hotwords' decode gives the keyterms, the plain one every other word (pipeline.keyterms);
            # the positions reported are the second decode's, the one the client waits for last
            plain = self._transcribe(model, audio, list(spans), replace(opts, hotwords=None))
            biased = self._transcribe(model, audio, list(spans), opts, on_segment)
            part = keep_keyterms(plain, biased, opts.keyterms)
        else:
            part = self._transcribe(model, audio, list(spans), opts, on_segment)
        return part if aligner is None else self.aligners.realign(aligner, audio, part)

    def _aligner(self, job: BatchJob) -> str | None:
        return self.aligners.resolve(job.alignment_model) if job.word_timestamps or job.diarize else None

    def run_channels(self, source: str | BinaryIO, job: BatchJob, channels: int) -> Transcript:
        """Each of the file's ``channels`` through the whole pipeline on its own (its own VAD, decoding
        and alignment: nothing of the other channels mixed in), one after the other on this worker; the
        segments merged in time order, each with its channel. Blocking; also used by benchmarks."""
        parts = []
        for channel in range(channels):
            if hasattr(source, "seek"):
                source.seek(0)
            parts.append(self.run_sync(source, job, channel=channel))
        return merge_channels(parts)

    def run_sync(
        self, source: str | BinaryIO, job: BatchJob, progress: ProgressCallback | None = None, channel: int | None = None
    ) -> Transcript:
        """The whole pipeline, blocking, on the file's channels mixed down (or on ``channel`` alone).
        Also used directly by benchmarks.

        The file is decoded block by block (``Settings.batch.block_s``), so memory does not grow
        with its duration; only diarization, which clusters speakers over the whole file, decodes
        it as one block.
        """
        t0 = time.perf_counter()
        model = self._registry.get(job.model)
        self._check_task(job, model)
        opts = self._asr_options(job)
        blocks = iter_audio_blocks(source, self._settings.batch.block_s, channel=channel)
        raw = (preprocess(b, job.preprocessing) for b in blocks)
        aligner = self._aligner(job)
        parts: list[tuple[float, Transcript]] = []
        kept: list[Audio] = []  # the whole file, only when diarization needs it at once
        duration = 0.0
        for block in speech_blocks(raw, lambda audio: self._speech(audio, job)):
            # while a block decodes: positions only (its text may still be re-decoded or re-segmented)
            on_segment = None if progress is None else (lambda end, _text, at=block.offset: progress(Progress("", at + end)))
            part = self._transcribe_block(model, block.audio, block.spans, opts, aligner, on_segment)
            if opts.language is None and job.task == "transcribe":
                opts = replace(opts, file_language=part.language)  # later blocks start in the file's language
            parts.append((block.offset, part))
            if job.diarize:
                kept.append(block.audio)
            duration = block.offset + block.audio.duration
            if progress is not None:  # the block's final segments: their texts join into the transcript's text
                for seg in part.segments:
                    progress(Progress(seg.text, block.offset + seg.end))
                progress(Progress("", duration))
        whole = Audio(np.concatenate([a.samples for a in kept])) if job.diarize and kept else None
        transcript = self._finish(parts, duration, job, aligner, whole)
        log.info("%s %.1fs of audio with %s in %.2fs", job.task, duration, model.spec.id, time.perf_counter() - t0)
        return transcript

    def _finish(self, parts, duration: float, job: BatchJob, aligner: str | None, audio: Audio | None) -> Transcript:
        """The joined transcript with its provenance, diarized over the whole file's ``audio`` if given."""
        transcript = join(parts, duration)
        # the detected language reaches clients of every response format (x-audio-service-language)
        transcript = transcript.with_provenance(vad="none" if job.skip_vad else job.vad_model, language=transcript.language)
        if aligner is not None:
            transcript = transcript.with_provenance(aligner=aligner)
        return transcript if audio is None else self._diarize(transcript, audio, job)

    def _asr_options(self, job: BatchJob) -> asr.AsrOptions:
        return asr.AsrOptions(
            task=job.task,
            language=job.language,
            prompt=job.prompt,
            hotwords=job.hotwords,
            keyterms=job.keyterms,
            temperatures=job.temperatures,
            decode=self._decode,
            word_timestamps=job.word_timestamps or job.timed_segments or job.diarize,
            batch_size=self._settings.batch.size,
            max_window_s=job.max_clip_len,
            decoder=self._settings.batch.decoder,
        )

    def _diarize(self, transcript: Transcript, audio: Audio, job: BatchJob) -> Transcript:
        diarizer = self.diarizers.get(job.diarization_model)
        t0 = time.perf_counter()
        turns = diarizer(audio, SpeakerBounds(job.min_speakers, job.max_speakers))
        log.info("diarized %.1fs of audio with %s in %.2fs", audio.duration, diarizer.name, time.perf_counter() - t0)
        return assign_speakers(transcript, turns).with_provenance(diarizer=diarizer.name)

    def _speech(self, audio: Audio, job: BatchJob) -> list[SpeechSpan]:
        if job.skip_vad:
            return [SpeechSpan(0.0, audio.duration)]
        vad = self.vads.get(job.vad_model)
        if job.vad_model == "silero":  # the engine's own VAD settings for the decoder that runs
            return vad(audio, ENGINE_VAD if self._settings.batch.decoder == "sequential" else BATCH_VAD)
        return vad(audio)

    async def close(self) -> None:
        """Give back shared waiting-room seats (before :meth:`shutdown`)."""
        await self._queue.close()

    def shutdown(self) -> None:
        self._queue.shutdown()
