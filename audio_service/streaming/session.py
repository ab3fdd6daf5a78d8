"""One stream's state: audio buffer, streaming VAD, open and final segments, markers.

A session never touches the model. It offers decode work (:meth:`StreamSession.next_job`) to the
shared engine and takes the results back (:meth:`StreamSession.complete`); everything else happens
when audio or a client message arrives. All methods are thread-safe: audio is fed from the VAD
thread, results arrive on the engine thread, and the messages for the client leave through the
``emit`` callback in the order they were produced.

Segment life: VAD speech opens a segment; its audio is re-decoded as it grows (partials, greedy,
with the words two consecutive hypotheses agree on forced as the decoder prefix so the text
flickers little); an endpoint (silence), the maximum length, the text timeout or a checkpoint closes
it; a closed segment gets a final beam-search pass and is sent once with ``is_final: true``. Ids are
given when a segment first shows text, so they increase in time order without gaps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from audio_service.schema import SAMPLE_RATE, Audio
from audio_service.streaming.decoder import DecodeRequest, DecodeResult
from audio_service.streaming.patches import SegmentView, WordView, patch_message
from audio_service.streaming.protocol import (
    Checkpoint,
    StreamFinishedError,
    StreamLagError,
    StreamOptions,
    Trace,
    checkpoint_message,
    trace_message,
)
from audio_service.streaming.vad import WINDOW, StreamingVad

SR = SAMPLE_RATE
HARD_BACKLOG_MARGIN_S = 10.0
MIN_PARTIAL_S = 0.6  # shorter windows make Whisper guess; wait for a little more audio
# A checkpoint cuts speech wherever it arrives, often inside a word. Whisper mis-hears the last words
# before an abrupt end ("what your coun|" -> "why you are") and the first words after an abrupt start,
# so both sides of a cut are decoded with this much audio from across it, and each word is given to
# the side its midpoint falls on: a cut costs at most the word it splits.
CUT_CONTEXT_S = 1.0
CUT_CONTEXT_WAIT_S = 2.0  # a cut segment's final pass waits this long at most for the audio after the cut
# Cross-attention word times are off by up to a few tenths of a second, so each side also keeps the
# words this close past the cut; the side after the cut then drops the words the side before it has.
CUT_TOLERANCE_S = 0.3


class SpeakerTracker(Protocol):
    """Labels each final segment with a speaker, consistently within one stream.

    Called on a worker thread (not the decode thread), once per final segment with text, in time
    order. ``audio`` is the segment's audio (with its VAD padding); ``start``/``end`` locate the
    segment's words inside it, in seconds from the start of ``audio``. A tracker that also has
    ``assign_words(audio, [(start, end), ...]) -> [label, ...]`` labels each word instead, and the
    session splits the final segment where the label changes (see ``_split_final``).
    """

    def assign(self, audio: Audio, start: float, end: float) -> str: ...


def _speakers_of(tracker: SpeakerTracker, audio: Audio, words: list[tuple[float, float]]) -> list[str]:
    """One label per word: a tracker that can label words (``assign_words``) does; else the whole span gets one."""
    assign_words = getattr(tracker, "assign_words", None)
    if assign_words is not None:
        return list(assign_words(audio, words))
    return [tracker.assign(audio, words[0][0], words[-1][1])] * len(words)


@dataclass(frozen=True)
class SessionConfig:
    """Engine-wide knobs, taken from :class:`Settings`."""

    partial_interval_s: float = 0.5
    max_segment_s: float = 15.0
    max_backlog_s: float = 60.0
    final_beam_size: int = 5
    context_chars: int = 200
    short_segment_s: float = 2.0
    short_endpoint_s: float = 1.5


@dataclass
class _Segment:
    """Session-internal, mutable: one speech segment from open to final."""

    start: int  # absolute sample
    end: int | None = None  # None while open
    # decoded audio may reach across a cut (see CUT_CONTEXT_S); words outside [start, end) are dropped
    audio_start: int | None = None  # None: from ``start``
    audio_end: int | None = None  # None: to ``end``
    clip_start: bool = False  # drop words whose midpoint is before ``start``
    clip_end: bool = False  # drop words whose midpoint is at or after ``end``
    closed_at: float = 0.0  # monotonic time the segment was closed
    lead_words: tuple[str, ...] = ()  # the final words before the cut this segment continues from
    id: int | None = None
    decoded_end: int = 0  # audio covered by the newest hypothesis
    submitted_at: int = 0  # received position when the last partial was submitted
    text_changed_at: int = 0
    first_speech: int = 0
    last_speech: int = 0
    view: SegmentView | None = None
    prev_words: tuple[str, ...] = ()
    locked: tuple[int, ...] = ()  # decoder prefix: tokens of words two hypotheses agreed on
    probs: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class DecodeJob:
    session: StreamSession
    segment: _Segment
    final: bool
    request: DecodeRequest
    end: int  # absolute sample just past the decoded audio


def _audio_start(seg: _Segment) -> int:
    return seg.start if seg.audio_start is None else seg.audio_start


def _norm(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


def _clip(seg: _Segment, result: DecodeResult, speakers: list[str] | None) -> tuple[DecodeResult, list[str] | None]:
    """Keep the words of ``result`` that belong to the segment (its audio may reach across a cut).

    A word belongs to the side of a cut its midpoint falls on, give or take CUT_TOLERANCE_S; words
    at the start that repeat the end of the segment before the cut (``lead_words``) are dropped.
    """
    if not (seg.clip_start or seg.clip_end) or not result.words:
        return result, speakers
    lo = seg.start / SR - CUT_TOLERANCE_S if seg.clip_start else float("-inf")
    hi = (seg.end / SR + CUT_TOLERANCE_S) if seg.clip_end and seg.end is not None else float("inf")
    keep = [i for i, w in enumerate(result.words) if lo <= (w.start + w.end) / 2 < hi]
    keep = keep[_repeated_lead(seg.lead_words, [_norm(result.words[i].word) for i in keep]) :]
    words = [result.words[i] for i in keep]
    if words and seg.clip_start:  # the alignment stretches edge words across the cut: clamp them
        words[0] = replace(words[0], start=max(words[0].start, min(seg.start / SR, words[0].end)))
    words = tuple(words)
    text = "".join(w.word for w in words).strip()
    kept_speakers = [speakers[i] for i in keep] if speakers is not None and len(speakers) == len(result.words) else speakers
    return replace(result, text=text, words=words), kept_speakers


def _repeated_lead(before: tuple[str, ...], words: list[str]) -> int:
    """How many of ``words`` repeat the last words of ``before`` (the longest such overlap)."""
    for k in range(min(len(before), len(words)), 0, -1):
        if tuple(words[:k]) == before[-k:]:
            return k
    return 0


class _AudioBuffer:
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
        parts = []
        for s, arr in self._chunks:
            e = s + len(arr)
            if e <= a or s >= b:
                continue
            parts.append(arr[max(0, a - s) : min(len(arr), b - s)])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def drop_before(self, pos: int) -> None:
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= pos:
            self._chunks.popleft()
        self.start = self._chunks[0][0] if self._chunks else self.end

    def clear(self) -> None:
        self._chunks.clear()
        self.start = self.end


class StreamSession:
    """All state of one stream. ``emit`` receives each message for the client (dicts, or an exception)."""

    def __init__(
        self,
        options: StreamOptions,
        model: Any,
        config: SessionConfig,
        emit: Callable[[Any], None],
        tracker: SpeakerTracker | None = None,
    ) -> None:
        self.options = options
        self.model = model
        self.config = config
        self._emit = emit
        self._tracker = tracker
        self._lock = threading.RLock()
        self._buf = _AudioBuffer()
        self._vad: StreamingVad | None = None  # made on the first feed, on the VAD thread (loads ONNX once)
        self._open: _Segment | None = None
        self._pending: deque[_Segment] = deque()  # closed, waiting for their final pass
        self._floor = 0  # end of the last closed segment: a new one never overlaps it
        self._cut: int | None = None  # a checkpoint cut speech here: the segment that goes on decodes across it
        self._silence_start: int | None = None
        self._markers: deque[tuple[int, Checkpoint | Trace]] = deque()
        self._next_id = 0
        self._busy = False
        self._closed = False
        self.finished = False
        self._language = options.language
        self._context = ""  # recent final text, the decoder's prompt for the next segment
        self.waiting_since = time.monotonic()  # for fair scheduling between streams
        self.notify: Callable[[], None] = lambda: None  # set by the engine

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
                self._feed_without_vad(before)
            else:
                if self._vad is None:
                    self._vad = StreamingVad()
                probs = self._vad.push(samples)
                base = self._vad.position - len(probs) * WINDOW
                for i, p in enumerate(probs):
                    self._vad_step(base + i * WINDOW, float(p))
            self._trim()
            # The API layer stops reading the socket at max_backlog_s (TCP back-pressure); this
            # hard limit only trips if a client gets past that, so memory stays bounded regardless.
            backlog = self._buf.end - self._oldest_needed()
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
                # every segment before a checkpoint must be final: close the open one here
                if self._open is not None:
                    self._cut_open(pos, lookahead=not message.is_final)
                    self._silence_start = None
                self._floor = max(self._floor, pos)
                if message.is_final:
                    self.finished = True
            self._markers.append((pos, message))
            self._drain()

    def _feed_without_vad(self, before: int) -> None:
        # skip_vad: everything is speech; segments end at the maximum length, the text timeout or a checkpoint
        if self._open is None:
            self._open = self._new_segment(before)
        seg = self._open
        seg.last_speech = self._buf.end
        if self._buf.end - seg.start >= self.config.max_segment_s * SR:
            self._close_open(self._buf.end)

    def _vad_step(self, pos: int, prob: float) -> None:
        vad = self.options.vad
        end = pos + WINDOW
        seg = self._open
        if seg is None:
            if prob >= vad.threshold:
                pad = vad.speech_pad_ms * SR // 1000
                self._open = self._new_segment(max(pos - pad, self._floor, self._buf.start))
                self._open.first_speech = pos
                self._open.last_speech = end
                self._silence_start = None
            return
        seg.probs.append((pos, prob))
        if prob >= vad.threshold:
            self._silence_start = None
            seg.last_speech = end
        elif prob < vad.off_threshold and self._silence_start is None:
            self._silence_start = pos
        speech = seg.last_speech - seg.first_speech
        endpoint = vad.min_silence_duration_ms * SR // 1000
        if speech < self.config.short_segment_s * SR:
            # Whisper mis-hears a lone short phrase ("ask not" -> "is not"): give short segments a
            # longer endpoint so that a phrase followed soon by more speech is decoded with it.
            endpoint = max(endpoint, int(self.config.short_endpoint_s * SR))
        if self._silence_start is not None and end - self._silence_start >= endpoint:
            pad = vad.speech_pad_ms * SR // 1000
            too_short = speech < vad.min_speech_duration_ms * SR // 1000
            if too_short and seg.id is None:
                self._open = None  # a click or a breath: nothing to transcribe
            else:
                self._close_open(min(self._silence_start + pad, end))
            self._silence_start = None
        elif end - seg.start >= self.config.max_segment_s * SR:
            self._cut_long(seg, end)

    def _cut_long(self, seg: _Segment, end: int) -> None:
        """Close an over-long segment at its quietest recent window and go on in a new one."""
        lo, hi = end - 3 * SR, end - SR // 4
        candidates = [(p, pos) for pos, p in seg.probs if lo <= pos <= hi]
        cut = min(candidates)[1] + WINDOW // 2 if candidates else end
        self._close_open(cut)
        self._open = self._new_segment(cut)
        self._open.first_speech = cut
        self._open.last_speech = end
        self._open.probs = [(pos, p) for pos, p in seg.probs if pos >= cut]

    def _new_segment(self, start: int) -> _Segment:
        seg = _Segment(start=start, decoded_end=start, submitted_at=start, text_changed_at=start)
        if self._cut is not None and start <= self._cut:  # speech goes on right after a cut
            seg.audio_start = max(self._buf.start, self._cut - int(CUT_CONTEXT_S * SR))
            seg.clip_start = True
        self._cut = None
        return seg

    def _cut_open(self, pos: int, lookahead: bool) -> None:
        """Close the open segment at ``pos`` in mid-speech; the next segment decodes across the cut."""
        seg = self._open
        self._close_open(pos)
        if seg is not None:
            seg.clip_end = True
            if lookahead:
                seg.audio_end = pos + int(CUT_CONTEXT_S * SR)
        self._cut = pos

    def _close_open(self, end: int) -> None:
        seg = self._open
        if seg is None:
            return
        self._open = None
        seg.end = max(end, seg.start)
        seg.closed_at = time.monotonic()
        self._floor = max(self._floor, seg.end)
        if seg.end - seg.start < SR // 10 and seg.id is None:
            return  # nothing audible to finalize
        seg.probs = []
        self._pending.append(seg)

    def _oldest_needed(self) -> int:
        if self._pending:
            return _audio_start(self._pending[0])
        if self._open is not None:
            return _audio_start(self._open)
        if self._cut is not None:
            return self._cut - int(CUT_CONTEXT_S * SR)
        return self._buf.end

    def _trim(self) -> None:
        # keep the speech pad before the VAD position, so a segment can start a little early
        keep = self._buf.end - (self.options.vad.speech_pad_ms * SR // 1000) - 2 * WINDOW
        self._buf.drop_before(min(self._oldest_needed(), keep))

    # --- decode work --------------------------------------------------------------------------------

    def has_work(self, final: bool) -> bool:
        """Whether :meth:`next_job` would return a job of this kind now."""
        with self._lock:
            if self._busy or self._closed:
                return False
            if final:
                return bool(self._pending) and self._final_ready(self._pending[0])
            return not self._pending and self._partial_due()

    def _final_ready(self, seg: _Segment) -> bool:
        """A cut segment waits for the audio after its cut (up to CUT_CONTEXT_WAIT_S, or the stream's end)."""
        if seg.audio_end is None or self._buf.end >= seg.audio_end or self.finished:
            return True
        return time.monotonic() - seg.closed_at >= CUT_CONTEXT_WAIT_S

    def _partial_due(self) -> bool:
        seg = self._open
        if seg is None or self._buf.end - seg.start < MIN_PARTIAL_S * SR:
            return False
        if self._buf.end - seg.submitted_at >= self.config.partial_interval_s * SR:
            return True
        # a trace or checkpoint waits for this audio: decode it now, whatever the interval
        return bool(self._markers) and self._markers[0][0] > seg.decoded_end and self._buf.end > seg.submitted_at

    def next_job(self, final: bool) -> DecodeJob | None:
        """Take one decode job (a final pass first, else a partial); None when there is nothing to do."""
        with self._lock:
            if not self.has_work(final):
                return None
            if final:
                seg = self._pending[0]
                end = min(seg.audio_end or seg.end or seg.start, self._buf.end)
                beam = self.config.final_beam_size
                prefix: tuple[int, ...] = ()
            else:
                seg = self._open
                assert seg is not None
                end = self._buf.end
                seg.submitted_at = end
                beam = 1
                prefix = seg.locked
            request = DecodeRequest(
                samples=self._buf.slice(_audio_start(seg), end),
                offset=_audio_start(seg) / SR,
                language=self._language,
                prompt_text=self.options.prompt or "",
                context_text=self._context,
                prefix_tokens=prefix,
                beam_size=beam,
                temperature=self.options.temperature,
            )
            self._busy = True
            return DecodeJob(self, seg, final, request, end)

    def speaker_for(self, job: DecodeJob, result: DecodeResult) -> list[str] | None:
        """Ask the speaker tracker (if any) who spoke a final segment: one label per word (one label
        when the segment has no words); runs on a worker thread."""
        tracker = self._tracker  # close() may clear it meanwhile
        if tracker is None or not job.final or not result.text:
            return None
        off = job.request.offset
        spans = [(w.start - off, w.end - off) for w in result.words] or [(0.0, job.end / SR - off)]
        return _speakers_of(tracker, Audio(job.request.samples), spans)

    def complete(self, job: DecodeJob, result: DecodeResult, speakers: list[str] | None = None) -> None:
        """Take a decode result: send the changed segment and any markers it satisfies."""
        with self._lock:
            self._busy = False
            self.waiting_since = time.monotonic()
            if self._closed:
                return
            if job.final:
                self._finalize(job, result, speakers)
            else:
                self._update_partial(job, result)
            self._trim()
            self._drain()

    def _finalize(self, job: DecodeJob, result: DecodeResult, speakers: list[str] | None) -> None:
        seg = self._pending.popleft()
        assert seg is job.segment
        result, speakers = _clip(seg, result, speakers)
        nxt = self._pending[0] if self._pending else self._open
        if seg.clip_end and nxt is not None and nxt.clip_start:
            nxt.lead_words = tuple(_norm(w.word) for w in result.words)
        text = result.text
        if not text and seg.id is None:
            return  # never shown, nothing said: no segment at all
        if seg.id is None:
            seg.id = self._take_id()
        if self._language is None and text:
            self._language = result.language  # keep the first detected language for the whole stream
        context = (self._context + " " + text).strip()
        if len(context) > self.config.context_chars:  # keep whole words
            context = context[-self.config.context_chars :].split(" ", 1)[-1]
        self._context = context
        if speakers is None or not result.words or len(set(speakers)) == 1:
            seg.view = self._view(seg, result, final=True, speaker=speakers[0] if speakers else None)
            self._send([seg.view])
            return
        self._send(self._split_final(seg, result, speakers))

    def _split_final(self, seg: _Segment, result: DecodeResult, speakers: list[str]) -> list[SegmentView]:
        """Final segments, one per run of words of one speaker: the first keeps ``seg``'s id, the rest
        take new ids. Ids stay in time order because no later segment has one yet: partials of the
        next segment wait until every closed segment is final."""
        runs: list[list] = []
        for w, speaker in zip(result.words, speakers, strict=True):
            if runs and runs[-1][0] == speaker:
                runs[-1][1].append(w)
            else:
                runs.append([speaker, [w]])
        views = []
        for i, (speaker, words) in enumerate(runs):
            sid = seg.id if i == 0 else self._take_id()
            assert sid is not None
            text = "".join(w.word for w in words)
            shown = tuple(WordView(w.word.strip(), w.start, w.end, w.probability) for w in words)
            views.append(
                SegmentView(
                    sid, text, words[0].start, words[-1].end, True, shown if self.options.word_timestamps else (), speaker
                )
            )
        seg.view = views[0]
        return views

    def _update_partial(self, job: DecodeJob, result: DecodeResult) -> None:
        seg = job.segment
        seg.decoded_end = max(seg.decoded_end, job.end)
        words = [w.word.strip() for w in result.words]
        agreed = 0
        while agreed < min(len(words), len(seg.prev_words)) and words[agreed] == seg.prev_words[agreed]:
            agreed += 1
        seg.prev_words = tuple(words)
        if agreed and len(result.words) > agreed:  # lock agreed words, but never the whole hypothesis
            seg.locked = tuple(t for w in result.words[:agreed] for t in w.tokens)
        result, _ = _clip(seg, result, None)  # the lock is on the decoded words; the client sees the segment's own
        if not result.text or (seg.view is not None and seg.view.text == result.text):
            self._check_text_timeout(seg, job.end)
            return
        seg.text_changed_at = job.end
        if seg.id is None:
            seg.id = self._take_id()
        seg.view = self._view(seg, result, final=False)
        self._send([seg.view])

    def _check_text_timeout(self, seg: _Segment, at: int) -> None:
        # speech (or what VAD takes for it) with no new text for text_timeout_seconds: make it final
        if seg is self._open and at - seg.text_changed_at >= self.options.text_timeout_s * SR and seg.view is not None:
            self._close_open(at)  # speech that goes on opens the next segment (VAD, or the next frame without VAD)

    def _view(self, seg: _Segment, result: DecodeResult, final: bool, speaker: str | None = None) -> SegmentView:
        words = tuple(WordView(w.word.strip(), w.start, w.end, w.probability) for w in result.words)
        start = words[0].start if words else seg.start / SR
        end = words[-1].end if words else (seg.end or seg.decoded_end) / SR
        assert seg.id is not None
        return SegmentView(seg.id, result.text, start, end, final, words if self.options.word_timestamps else (), speaker)

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _send(self, views: list[SegmentView]) -> None:
        msg = patch_message(views)
        if msg is not None:
            self._emit(msg)

    # --- markers ------------------------------------------------------------------------------------

    def decoded_upto(self) -> int:
        """Absolute sample before which every audio is transcribed (or known to be silence)."""
        if self._pending:
            return self._pending[0].decoded_end
        if self._open is not None:
            return self._open.decoded_end
        return self._buf.end

    def backlog_s(self) -> float:
        """Seconds of audio held that are not final yet (what the memory bound applies to)."""
        with self._lock:
            return (self._buf.end - self._oldest_needed()) / SR

    def lag_s(self) -> float:
        with self._lock:
            return (self._buf.end - self.decoded_upto()) / SR

    def _drain(self) -> None:
        while self._markers:
            pos, marker = self._markers[0]
            if isinstance(marker, Trace):
                if self.decoded_upto() < pos:
                    return
                self._emit(trace_message(marker, (self._buf.end - self.decoded_upto()) / SR))
            else:
                if (self._pending and self._pending[0].start < pos) or (self._open is not None and self._open.start < pos):
                    return
                self._emit(checkpoint_message(marker.checkpoint_id))
            self._markers.popleft()

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
            self._pending.clear()
            self._markers.clear()
            self._open = None
            self._vad = None
            self._tracker = None
