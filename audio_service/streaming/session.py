"""One stream's state: the parts below, behind one lock, joined to the engine and the client.

A session never touches the model. It offers decode work (:meth:`StreamSession.next_job`) to the
shared engine and takes the results back (:meth:`StreamSession.complete`); everything else happens
when audio or a client message arrives. All methods are thread-safe: audio is fed from the VAD
thread, results arrive on the engine thread, and the messages for the client leave through the
``emit`` callback in the order they were produced.

The parts, each pure logic tested without a model (tests/test_streaming_state.py):
- :mod:`~audio_service.streaming.endpointing`: VAD decisions -> segments opened, cut and closed;
- :mod:`~audio_service.streaming.cuts`: the words on each side of a mid-speech cut;
- :mod:`~audio_service.streaming.stabilize`: when to re-decode, local agreement, partial text;
- :mod:`~audio_service.streaming.transcript`: ids, finality, context, the views sent as patches;
- :mod:`~audio_service.streaming.markers`: checkpoints and traces, answered once their audio is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from audio_service.schema import SAMPLE_RATE, Audio
from audio_service.streaming.cuts import clip, hand_over
from audio_service.streaming.endpointing import Endpointer
from audio_service.streaming.job import DecodeJob
from audio_service.streaming.markers import Markers
from audio_service.streaming.patches import SegmentView, patch_message
from audio_service.streaming.protocol import Checkpoint, StreamFinishedError, StreamLagError, StreamOptions, Trace
from audio_service.streaming.segment import AudioBuffer, SessionConfig, StreamSegment
from audio_service.streaming.stabilize import partial_due, partial_token_budget, stabilise, text_timed_out
from audio_service.streaming.transcript import SpeakerLabeller, StreamTranscript, speakers_of
from audio_service.vad.streaming import WINDOW, StreamingVad
from audio_service.whisper.types import DecodeRequest, DecodeResult

SR = SAMPLE_RATE
HARD_BACKLOG_MARGIN_S = 10.0

__all__ = ["DecodeJob", "SessionConfig", "SpeakerLabeller", "StreamSession"]


class StreamSession:
    """All state of one stream. ``emit`` receives each message for the client (dicts, or an exception).

    ``draft``: a cheaper shared model for partial hypotheses (finals always use ``model``); an
    English-only draft is used once the stream's language is known to be English.
    """

    def __init__(
        self,
        options: StreamOptions,
        model: Any,
        config: SessionConfig,
        emit: Callable[[Any], object],  # its return value is ignored
        tracker: SpeakerLabeller | None = None,
        draft: Any = None,
    ) -> None:
        self.options = options
        self.model = model
        self.draft = draft
        self.config = config
        self._emit = emit
        self._tracker = tracker
        self._lock = threading.RLock()
        self._buf = AudioBuffer()
        self._vad: StreamingVad | None = None  # made on the first feed, on the VAD thread (loads ONNX once)
        self._ep = Endpointer(options.vad, config)
        self._transcript = StreamTranscript(options.language, options.word_timestamps, config.context_chars)
        self._markers = Markers()
        self._busy = False
        self._closed = False
        self.finished = False
        self.waiting_since = time.monotonic()  # for fair scheduling between streams
        self.notify: Callable[[], None] = lambda: None  # set by the engine
        self.interval_scale: Callable[[], float] = lambda: 1.0  # set by the engine: partials get rarer under load

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
                if self._vad is None:
                    self._vad = StreamingVad()
                probs = self._vad.push(samples)
                base = self._vad.position - len(probs) * WINDOW
                for i, p in enumerate(probs):
                    self._ep.step(base + i * WINDOW, float(p), self._buf.start)
                self._finish_early()
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

    def mark(self, message: Checkpoint | Trace) -> None:
        """A checkpoint or trace probe at the current audio position; answered when its audio is done."""
        with self._lock:
            pos = self._buf.end
            if isinstance(message, Checkpoint):
                self._ep.checkpoint(pos, lookahead=not message.is_final)
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
            marker_at = self._markers.first_at
            adaptive = self.config.adaptive_partials
            interval = self.config.partial_interval_s * (self.interval_scale() if adaptive else 1.0)
            return not self._ep.pending and partial_due(self._ep.open, self._buf.end, interval, marker_at, adaptive)

    def _early_due(self) -> int | None:
        """The end of an early final pass to take now, if any (under the lock).

        Only while the model has time (no streams waiting on each other: a pass that speech resuming
        discards is then free), never with a speaker tracker (its state must only see real finals),
        and once per silence.
        """
        if not self.config.early_final or self._ep.pending or self._tracker is not None or self.interval_scale() > 1.0:
            return None
        end, seg = self._ep.early_end(self._buf.end), self._ep.open  # end is None without an open segment
        return end if end is not None and seg is not None and end != seg.early_end else None

    def model_for(self, final: bool) -> Any:
        """The shared model a job of this kind runs on."""
        draft = self.draft
        if final or draft is None or not (draft.multilingual or self._transcript.language == "en"):
            return self.model
        return draft

    def next_job(self, final: bool) -> DecodeJob | None:
        """Take one decode job (a final pass first, else a partial); None when there is nothing to do."""
        with self._lock:
            if not self.has_work(final):
                return None
            early = final and not self._ep.pending
            if final:  # the oldest closed segment, or early: the open one, over the audio it will close with
                seg = self._ep.open if early else self._ep.pending[0]
                assert seg is not None  # has_work(): an early pass has an open segment
                if early:
                    early_end = self._early_due()
                    assert early_end is not None  # has_work(): it is due
                    seg.early_end, seg.early_result = early_end, None
                    end = early_end
                else:
                    end = min(seg.audio_end or seg.end or seg.start, self._buf.end)
                beam, max_tokens = self.config.final_beam_size, 0
                prefix: tuple[int, ...] = ()
            else:
                seg = self._ep.open
                assert seg is not None
                end = self._buf.end
                seg.submitted_at = end
                beam, max_tokens = 1, partial_token_budget(seg, end)
                # locked tokens are the vocabulary of the model that decoded them
                prefix = seg.locked if seg.locked_by is self.model_for(False) else ()
            request = DecodeRequest(
                samples=self._buf.slice(seg.decode_from, end),
                offset=seg.decode_from / SR,
                language=self._transcript.language,
                language_switch=self.options.language is None,
                prompt_text=self.options.prompt or "",
                context_text=self._transcript.context,
                prefix_tokens=prefix,
                beam_size=beam,
                temperature=self.options.temperature,
                max_tokens=max_tokens,
            )
            self._busy = True
            return DecodeJob(self, seg, final, request, end, self.model_for(final), early)

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
                job.segment.early_result = result
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
            seg = self._ep.pending[0]
            if seg.early_result is None or seg.early_end != seg.end or seg.audio_end is not None:
                return  # no early pass, or speech resumed after it: the normal final pass runs
            self._finalize(seg, seg.early_result, None)

    def _finalize(self, seg: StreamSegment, result: DecodeResult, speakers: list[str] | None) -> None:
        assert self._ep.pending[0] is seg
        self._ep.pending.popleft()
        result, speakers = clip(seg, result, speakers)
        hand_over(seg, result, self._ep.pending[0] if self._ep.pending else self._ep.open)
        self._send(self._transcript.final(seg, result, speakers))

    def _update_partial(self, job: DecodeJob, result: DecodeResult) -> None:
        seg = job.segment
        shown = stabilise(seg, result, job.end)
        seg.locked_by = job.model
        if shown is not None:
            self._send([self._transcript.partial(seg, shown)])
        elif seg is self._ep.open and text_timed_out(seg, job.end, self.options.text_timeout_s):
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
