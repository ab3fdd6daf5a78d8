"""One stream's state: the parts below, behind one lock, joined to the engine and the client.

A session never touches the model. It offers decode work (:meth:`StreamSession.next_job`) to the
shared engine and takes the results back (:meth:`StreamSession.complete`); everything else happens
when audio or a client message arrives. All methods are thread-safe: audio is fed from the VAD
thread, results arrive on the engine thread, and the messages for the client leave through the
``emit`` callback in the order they were produced.

The parts, each pure logic tested without a model (tests/test_streaming_state.py), each owning its
state and changing it only through its own methods:
- :mod:`~audio_service.streaming.endpointing`: VAD decisions -> segments opened, cut and closed (the
  :class:`~.endpointing.Endpointer`, and each segment's span and early pass);
- :mod:`~audio_service.streaming.cuts`: the words on each side of a mid-speech cut (each segment's edges);
- :mod:`~audio_service.streaming.stabilize`: when to re-decode, local agreement, partial text (each
  segment's hypothesis);
- :mod:`~audio_service.streaming.commits`: the words of the open segment that are final already (each
  segment's commits);
- :mod:`~audio_service.streaming.transcript`: ids, finality, context, the views sent as patches (the
  stream's :class:`~.transcript.StreamTranscript`, and what each segment has shown);
- :mod:`~audio_service.streaming.markers`: checkpoints and traces, answered once their audio is done.

The session itself owns only the audio buffer, the VAD and whether a job is in flight; a
:class:`~.endpointing.StreamSegment` ties the per-segment parts together, and the session passes each part
what it needs to read of the others. Values shared by all are in :mod:`~audio_service.streaming.values`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from audio_service.schema import SAMPLE_RATE, Audio
from audio_service.streaming.endpointing import Endpointer, StreamSegment
from audio_service.streaming.job import DecodeJob
from audio_service.streaming.markers import Markers
from audio_service.streaming.patches import patch_message
from audio_service.streaming.protocol import StreamFinishedError, StreamLagError
from audio_service.streaming.stabilize import SPEECH_TAIL_S
from audio_service.streaming.transcript import SpeakerLabeller, StreamTranscript, speakers_of
from audio_service.streaming.values import Checkpoint, SegmentView, SessionConfig, StreamOptions, Trace
from audio_service.vad.streaming import WINDOW, StreamingVad
from audio_service.whisper.types import DecodeRequest, DecodeResult

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.models.registry import LoadedModel

SR = SAMPLE_RATE
HARD_BACKLOG_MARGIN_S = 10.0


class FrameVad(Protocol):
    """Speech probabilities window by window (:class:`~audio_service.vad.streaming.StreamingVad`)."""

    position: int  # samples scored so far (start of the next window)

    def push(self, samples: np.ndarray) -> np.ndarray: ...


class AudioBuffer:
    """Samples from ``start`` to ``end`` (absolute), kept as a list of chunks to avoid re-copying."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self.start = 0
        self.end = 0

    def append(self, samples: np.ndarray) -> None:
        if samples.size:
            self._chunks.append((self.end, samples))
            self.end += len(samples)

    def slice(self, a: int, b: int) -> np.ndarray:
        """Samples ``a`` to ``b`` (absolute); only what is still held."""
        parts = []
        for s, arr in self._chunks:
            e = s + len(arr)
            if e <= a or s >= b:
                continue
            parts.append(arr[max(0, a - s) : min(len(arr), b - s)])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def drop_before(self, pos: int) -> None:
        """Free whole chunks that end at or before ``pos``."""
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= pos:
            self._chunks.popleft()
        self.start = self._chunks[0][0] if self._chunks else self.end

    def clear(self) -> None:
        self._chunks.clear()
        self.start = self.end


class StreamSession:
    """All state of one stream. ``emit`` receives each message for the client (dicts, or an exception).

    ``draft``: a cheaper shared model for partial hypotheses (finals always use ``model``); an
    English-only draft is used once the stream's language is known to be English. With word commits
    (``config.commit_words``) partials take turns on ``model`` and ``draft`` (on ``model`` alone without
    a draft for the language): consecutive hypotheses decide the commits, and the committed words'
    tokens (``model``'s) are the forced prefix of the final pass. ``vad``: the
    frame VAD (None: Silero, made on the first feed, on the VAD thread, so ONNX loads there).
    """

    def __init__(
        self,
        options: StreamOptions,
        model: LoadedModel,
        config: SessionConfig,
        emit: Callable[[dict[str, Any] | BaseException], object],  # a message for the client; its return value is ignored
        tracker: SpeakerLabeller | None = None,
        draft: LoadedModel | None = None,
        vad: FrameVad | None = None,
    ) -> None:
        self.options = options
        self.model = model
        self.draft = draft
        self.config = config
        self._emit = emit
        self._tracker = tracker
        self._lock = threading.RLock()
        self._buf = AudioBuffer()
        self._vad = vad
        self._ep = Endpointer(options.vad, config)
        self._transcript = StreamTranscript(options.language, options.word_timestamps, config.context_chars)
        self._markers = Markers()
        self._busy = False
        self._closed = False
        self.finished = False
        self.waiting_since = time.monotonic()  # for fair scheduling between streams
        self._load_scale: Callable[[], float] = lambda: 1.0  # partials get rarer under load (see follow_load)
        # word commits: not with a speaker tracker (it may split a final segment, moving committed words
        # to another id), nor without word timestamps (a client could not tell which words are final)
        self._commit_words = config.commit_words and tracker is None and options.word_timestamps

    def follow_load(self, scale: Callable[[], float]) -> None:
        """Take partial intervals (and whether early final passes are free) from the engine's load:
        ``scale()`` is how much longer than configured intervals are now (1.0: no stream waits)."""
        self._load_scale = scale

    @property
    def has_tracker(self) -> bool:
        return self._tracker is not None

    # --- input ------------------------------------------------------------------------------------

    @property
    def received(self) -> int:
        return self._buf.end

    def feed(self, samples: np.ndarray) -> None:
        """Append audio, run the VAD over it, open/close segments. Raises on protocol or backlog errors."""
        with self._lock:
            if self.finished:
                raise StreamFinishedError("Audio after the 'final' checkpoint: the stream has ended.", param="audio")
            if self._closed:
                return
            before = self._buf.end
            self._buf.append(samples)
            if self.options.skip_vad:
                self._ep.step_without_vad(before, self._buf.end, self._buf.start)
            else:
                self._run_vad(samples)
            self._trim()
            # The API layer stops reading the socket at max_backlog_s (TCP back-pressure); this
            # hard limit only trips if a client gets past that, so memory stays bounded regardless.
            backlog = self._buf.end - self._ep.oldest_needed(self._buf.end)
            if backlog > (self.config.max_backlog_s + HARD_BACKLOG_MARGIN_S) * SR:
                raise StreamLagError(
                    f"Transcription fell {backlog / SR:.0f} s behind this stream (limit {self.config.max_backlog_s:.0f} s).",
                    param="audio",
                )
            self._drain()

    def _run_vad(self, samples: np.ndarray) -> None:
        if self._vad is None:
            self._vad = StreamingVad()
        probs = self._vad.push(samples)
        base = self._vad.position - len(probs) * WINDOW
        for i, p in enumerate(probs):
            self._ep.step(base + i * WINDOW, float(p), self._buf.start)
        self._finish_early()

    def mark(self, message: Checkpoint | Trace) -> None:
        """A checkpoint or trace probe at the current audio position; answered when its audio is done."""
        with self._lock:
            pos = self._buf.end
            if isinstance(message, Checkpoint):
                self._ep.checkpoint(pos, lookahead=not (message.is_final or message.turn_end))
                if message.is_final:
                    self.finished = True
            self._markers.add(pos, message)
            self._drain()

    def _trim(self) -> None:
        # keep the speech pad before the VAD position, so a segment can start a little early
        keep = self._buf.end - (self.options.vad.speech_pad_ms * SR // 1000) - 2 * WINDOW
        self._buf.drop_before(min(self._ep.oldest_needed(self._buf.end), keep))

    # --- decode work --------------------------------------------------------------------------------

    def has_work(self, final: bool) -> bool:
        """Whether :meth:`next_job` would return a job of this kind now."""
        with self._lock:
            if self._busy or self._closed:
                return False
            if final:
                return self._ep.final_ready(self._buf.end, self.finished) or self._early_due() is not None
            seg = self._ep.open
            if self._ep.pending or seg is None:
                return False
            base = self.config.commit_interval_s if self._commits_in(seg) else self.config.partial_interval_s
            interval = base * self._load_scale()
            return seg.hyp.due(seg.start, seg.span.last_speech, self._buf.end, interval, self._markers.first_at)

    def _early_due(self) -> int | None:
        """The end of an early final pass to take now, if any (under the lock).

        Only while the model has time (no streams waiting on each other: a pass that speech resuming
        discards is then free), never with a speaker tracker (its state must only see real finals),
        once per silence, and not in a segment that commits words: most of its words are final before
        its endpoint already, and the final pass after it decodes only the rest, where an early pass is
        a beam search over the whole segment that speech resuming throws away (on jfk x3, 16 early passes
        for 9 segments took 36% of a committing stream's model time).
        """
        if self._ep.pending or self._tracker is not None or self._load_scale() > 1.0:
            return None
        seg = self._ep.open
        if seg is not None and self._commits_in(seg):
            return None
        return self._ep.early_due(self._buf.end)

    def model_for(self, final: bool) -> LoadedModel:
        """The shared model a job of this kind runs on: the stream's for final passes; for partials the
        draft where it reads the stream's language, taking turns with the stream's model while the open
        segment commits words (see :mod:`~audio_service.streaming.commits`)."""
        draft = self.draft
        if final or draft is None or not (draft.multilingual or self._transcript.language == "en"):
            return self.model
        seg = self._ep.open
        # the draft first: a segment's first hypothesis (0.6 s) is a guess either way, and no evidence
        if seg is not None and self._commits_in(seg) and seg.hyp.locked_by is draft:
            return self.model
        return draft

    def next_job(self, final: bool) -> DecodeJob | None:
        """Take one decode job (a final pass first, else a partial); None when there is nothing to do."""
        with self._lock:
            if not self.has_work(final):
                return None
            job = self._final_job() if final else self._partial_job()
            self._busy = True
            return job

    def _final_job(self) -> DecodeJob:
        """The final pass of the oldest closed segment, or early: of the open one, over the audio it
        will close with."""
        if self._ep.pending:
            seg = self._ep.pending[0]
            end, early = min(seg.decode_to, self._buf.end), False
        else:
            early_end = self._early_due()
            assert early_end is not None  # has_work(): it is due
            seg, end, early = self._ep.begin_early(early_end), early_end, True
        prefix = seg.commits.tokens  # none without commits
        request = self._request(seg, end, beam_size=self.config.final_beam_size, max_tokens=0, prefix=prefix)
        return DecodeJob(self, seg, True, request, end, self.model_for(True), early)

    def _committing(self) -> bool:
        """Whether the stream commits words now: ``config.commit_words``, in a language of
        ``config.commit_languages`` (the stream's, once known)."""
        languages, language = self.config.commit_languages, self._transcript.language
        return self._commit_words and language is not None and ("*" in languages or language in languages)

    def _commits_in(self, seg: StreamSegment) -> bool:
        """Whether words of ``seg`` are committed before it is final: not in a segment that continues
        after a cut (its decode starts before the cut, with words of the segment before)."""
        return bool(seg.commits.words) or (self._committing() and seg.edges.cut_start is None)

    def _partial_job(self) -> DecodeJob:
        seg = self._ep.open
        assert seg is not None  # has_work()
        end = self._buf.end
        seg.hyp.submit(end)
        model = self.model_for(False)
        budget = seg.hyp.token_budget(seg.start, end)
        # with commits, only the committed words are forced: each hypothesis decodes the rest afresh, so two
        # that agree on a word are two readings of the audio, not one reading forced twice
        text = ""
        if not self._commits_in(seg):
            prefix = seg.hyp.prefix_for(model)
        elif model is self.model:
            prefix = seg.commits.tokens
        else:  # the draft: the committed words in its own vocabulary
            prefix, text = (), seg.commits.text
        request = self._request(seg, end, beam_size=1, max_tokens=budget, prefix=prefix, prefix_text=text)
        return DecodeJob(self, seg, False, request, end, model)

    def _request(
        self, seg: StreamSegment, end: int, beam_size: int, max_tokens: int, prefix: tuple[int, ...], prefix_text: str = ""
    ) -> DecodeRequest:
        return DecodeRequest(
            samples=self._buf.slice(seg.decode_from, end),
            offset=seg.decode_from / SR,
            language=self._transcript.language,
            language_switch=self.options.language is None,
            prompt_text=self.options.prompt or "",
            hotwords=self.options.hotwords or "",
            context_text=self._transcript.context,
            prefix_tokens=prefix,
            prefix_text=prefix_text,
            beam_size=beam_size,
            temperature=self.options.temperature,
            max_tokens=max_tokens,
        )

    def speaker_for(self, job: DecodeJob, result: DecodeResult) -> list[str] | None:
        """Ask the speaker tracker (if any) who spoke a final segment: one label per word (one label
        when the segment has no words); runs on a worker thread."""
        tracker = self._tracker  # close() may clear it meanwhile
        if tracker is None or not job.final or not result.text:
            return None
        off = job.request.offset
        spans = [(w.start - off, w.end - off) for w in result.words] or [(0.0, job.end / SR - off)]
        return speakers_of(tracker, Audio(job.request.samples), spans)

    def complete(self, job: DecodeJob, result: DecodeResult, speakers: list[str] | None = None) -> None:
        """Take a decode result: send the changed segment and any markers it satisfies."""
        with self._lock:
            self._busy = False
            self.waiting_since = time.monotonic()
            if self._closed:
                return
            if job.early:
                self._ep.early_done(job.segment, result)
            elif job.final:
                self._finalize(job.segment, result, speakers)
            else:
                self._update_partial(job, result)
            self._finish_early()
            self._trim()
            self._drain()

    def _finish_early(self) -> None:
        """Make closed segments final with their early pass, where it decoded exactly their audio."""
        while self._ep.pending and not self._busy:
            result = self._ep.early_final()
            if result is None:
                return  # no early pass, or speech resumed after it: the normal final pass runs
            self._finalize(self._ep.pending[0], result, None)

    def _finalize(self, seg: StreamSegment, result: DecodeResult, speakers: list[str] | None) -> None:
        nxt = self._ep.finalized(seg)
        result, speakers = seg.edges.clip(result, speakers)
        result = seg.commits.settle(result)
        seg.edges.hand_over(result, None if nxt is None else nxt.edges)
        self._send(self._transcript.final(seg.shown, result, speakers, seg.start, seg.shown_end))

    def _update_partial(self, job: DecodeJob, result: DecodeResult) -> None:
        seg = job.segment
        own = job.model is self.model
        pause = seg.span.last_speech + int(SPEECH_TAIL_S * SR) <= job.end
        committed = seg.commits.observe(result, job.end, own, seg.decode_from, pause) if self._commits_in(seg) else 0
        shown = seg.hyp.take(result, job.end, job.model, seg.edges, seg.shown.text)
        if shown is None and committed:  # the same text, with more of it final
            shown, _ = seg.edges.clip(result, None)
        if shown is not None:
            shown = seg.commits.settle(shown)
            self._send([self._transcript.partial(seg.shown, shown, seg.start, seg.shown_end, len(seg.commits.words))])
        elif seg is self._ep.open and seg.shown.view is not None and seg.hyp.timed_out(job.end, self.options.text_timeout_s):
            self._ep.close_open(job.end)  # speech that goes on opens the next segment (VAD, or the next frame without VAD)

    def _send(self, views: list[SegmentView]) -> None:
        msg = patch_message(views)
        if msg is not None:
            self._emit(msg)

    # --- markers ------------------------------------------------------------------------------------

    def decoded_upto(self) -> int:
        """Absolute sample before which every audio is transcribed (or known to be silence)."""
        return self._ep.decoded_upto(self._buf.end)

    def backlog_s(self) -> float:
        """Seconds of audio held that are not final yet (what the memory bound applies to)."""
        with self._lock:
            return (self._buf.end - self._ep.oldest_needed(self._buf.end)) / SR

    def lag_s(self) -> float:
        """Seconds of received audio not transcribed yet."""
        with self._lock:
            return (self._buf.end - self.decoded_upto()) / SR

    def _drain(self) -> None:
        for message in self._markers.answer(self._ep, self._buf.end):
            self._emit(message)

    # --- end ----------------------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """The engine could not decode this stream: tell the client (the API layer closes the socket)."""
        with self._lock:
            self._busy = False
            if not self._closed:
                self._emit(exc)

    def close(self) -> None:
        """Free everything the stream holds."""
        with self._lock:
            self._closed = True
            self._buf.clear()
            self._ep.clear()
            self._markers.clear()
            self._vad = None
            self._tracker = None
