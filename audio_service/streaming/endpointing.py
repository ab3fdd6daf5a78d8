"""Endpointing: VAD decisions in, speech segments out (opened, cut, closed, waiting for their final pass).

Pure state, no model and no audio: the session feeds one speech probability per VAD window (or, with
``skip_vad``, the received position), and checkpoints; the :class:`Endpointer` keeps the open segment
and the closed ones waiting for their final pass. A segment closes at an endpoint (silence; short
segments wait longer), at the maximum length (cut at its quietest recent window), or at a checkpoint
(a cut in mid-speech: both sides are decoded across it, see :mod:`audio_service.streaming.cuts`).

A :class:`StreamSegment` is composed of one state object per part, each changed only by the module that
owns it: its :class:`Span` and :class:`EarlyPass` (this module), its
:class:`~audio_service.streaming.cuts.CutEdges`, its
:class:`~audio_service.streaming.stabilize.Hypothesis`, its
:class:`~audio_service.streaming.commits.Commits` and its
:class:`~audio_service.streaming.transcript.Shown`. The :class:`Endpointer` makes segments, so the
composition is defined here; other parts get the piece they own (and read-only facts) as arguments.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.commits import Commits
from audio_service.streaming.cuts import CUT_CONTEXT, CUT_CONTEXT_WAIT_S, CutEdges
from audio_service.streaming.stabilize import Hypothesis
from audio_service.streaming.transcript import Shown
from audio_service.streaming.values import SessionConfig
from audio_service.vad.params import VadParams
from audio_service.vad.streaming import WINDOW
from audio_service.whisper.types import DecodeResult

SR = SAMPLE_RATE
MIN_FINAL_SAMPLES = SR // 10  # a closed segment shorter than this, never shown, has nothing audible
# An early final pass starts at most this long before the endpoint (a final pass over a few seconds of
# speech takes about 0.5-0.8 s on 2 CPU cores): for the long endpoint of short segments, starting
# sooner would only waste more passes on pauses that speech resumes after.
EARLY_FINAL_LEAD_S = 0.8


def _ms(ms: int) -> int:
    return ms * SR // 1000


class Span:
    """Where one segment's speech is (absolute samples): changed only by the :class:`Endpointer`."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.end: int | None = None  # None while open
        self.closed_at = 0.0  # monotonic time the segment was closed
        self.first_speech = start
        self.last_speech = start
        self.probs: list[tuple[int, float]] = []  # (window position, speech probability) while open


class EarlyPass:
    """A final pass of the open segment taken before its endpoint (see :meth:`Endpointer.early_end`):
    the end it decodes to, and its result once done. Changed only by the :class:`Endpointer`."""

    def __init__(self) -> None:
        self.end: int | None = None
        self.result: DecodeResult | None = None


@dataclass(frozen=True, eq=False)
class StreamSegment:
    """One speech segment from open to final: the state each part keeps of it (see the module doc)."""

    span: Span
    edges: CutEdges
    hyp: Hypothesis
    shown: Shown
    early: EarlyPass
    commits: Commits

    @classmethod
    def open_at(cls, start: int, edges: CutEdges | None = None) -> StreamSegment:
        return cls(Span(start), edges or CutEdges(), Hypothesis(start), Shown(), EarlyPass(), Commits())

    @property
    def start(self) -> int:
        return self.span.start

    @property
    def decode_from(self) -> int:
        """First sample the decoder is given (before ``start`` when the segment continues across a cut)."""
        return self.span.start if self.edges.audio_start is None else self.edges.audio_start

    @property
    def decode_to(self) -> int:
        """The sample just past the audio the final pass decodes (after the end when cut, see cuts)."""
        return self.edges.audio_end or self.span.end or self.span.start

    @property
    def shown_end(self) -> int:
        """Where a view with no words ends: the segment's end, or while open, what was decoded."""
        return self.span.end or self.hyp.decoded_end


class Endpointer:
    """One stream's segmentation state. ``held_from`` arguments are the first sample still buffered."""

    def __init__(self, vad: VadParams, config: SessionConfig) -> None:
        self.vad = vad
        self.config = config
        self._open: StreamSegment | None = None
        self._pending: deque[StreamSegment] = deque()  # closed, waiting for their final pass
        self.floor = 0  # end of the last closed segment: a new one never overlaps it
        self.cut: int | None = None  # a checkpoint cut speech here: the segment that goes on decodes across it
        self.silence_start: int | None = None

    @property
    def open(self) -> StreamSegment | None:
        """The segment speech is going on in, if any."""
        return self._open

    @property
    def pending(self) -> Sequence[StreamSegment]:
        """The closed segments waiting for their final pass, oldest first."""
        return self._pending

    # --- input ------------------------------------------------------------------------------------

    def step(self, pos: int, prob: float, held_from: int) -> None:
        """One VAD window starting at sample ``pos`` with speech probability ``prob``."""
        vad = self.vad
        end = pos + WINDOW
        seg = self._open
        if seg is None:
            if prob >= vad.threshold:
                start = max(pos - _ms(vad.speech_pad_ms), self.floor, held_from)
                self._open = self._new_segment(start, held_from, first_speech=pos, last_speech=end)
                self.silence_start = None
            return
        span = seg.span
        span.probs.append((pos, prob))
        if prob >= vad.threshold:
            self.silence_start = None
            span.last_speech = end
        elif prob < vad.off_threshold and self.silence_start is None:
            self.silence_start = pos
        if self.silence_start is not None and end - self.silence_start >= self._endpoint(seg):
            if self._too_short(seg):
                self._open = None  # a click or a breath: nothing to transcribe
            else:
                self.close_open(min(self.silence_start + _ms(vad.speech_pad_ms), end))
            self.silence_start = None
        elif end - span.start >= self.config.max_segment_s * SR:
            self._cut_long(seg, end, held_from)

    def step_without_vad(self, before: int, received: int, held_from: int) -> None:
        """``skip_vad``: everything is speech; segments end at the maximum length, the text timeout or a checkpoint."""
        if self._open is None:
            self._open = self._new_segment(before, held_from)
        span = self._open.span
        span.last_speech = received
        if received - span.start >= self.config.max_segment_s * SR:
            self.close_open(received)

    def checkpoint(self, pos: int, lookahead: bool) -> None:
        """Every segment before a checkpoint must be final: cut the open one at ``pos``.

        ``lookahead``: the stream goes on, so the cut segment's final pass may wait for the audio after it.
        """
        if self._open is not None:
            seg = self._open
            self.close_open(pos)
            seg.edges.end_at_cut(pos, lookahead)  # pos >= its start: a segment never starts after the audio received
            self.cut = pos
            self.silence_start = None
        self.floor = max(self.floor, pos)

    def close_open(self, end: int) -> None:
        """Close the open segment at ``end``; it waits for its final pass unless nothing audible was in it."""
        seg = self._open
        if seg is None:
            return
        self._open = None
        span = seg.span
        span.end = max(end, span.start)
        span.closed_at = time.monotonic()
        self.floor = max(self.floor, span.end)
        if span.end - span.start < MIN_FINAL_SAMPLES and seg.shown.id is None:
            return  # nothing audible to finalize
        span.probs = []
        self._pending.append(seg)

    def _cut_long(self, seg: StreamSegment, end: int, held_from: int) -> None:
        """Close an over-long segment at its quietest recent window and go on in a new one; never before
        the end of its last committed word (the segment keeps that word)."""
        lo, hi = max(end - 3 * SR, seg.commits.until or 0), end - SR // 4
        candidates = [(p, pos) for pos, p in seg.span.probs if lo <= pos <= hi]
        cut = min(candidates)[1] + WINDOW // 2 if candidates else end
        self.close_open(cut)
        self._open = self._new_segment(cut, held_from, first_speech=cut, last_speech=end)
        self._open.span.probs = [(pos, p) for pos, p in seg.span.probs if pos >= cut]

    def _endpoint(self, seg: StreamSegment) -> int:
        """The silence (samples) that closes ``seg``."""
        endpoint = _ms(self.vad.min_silence_duration_ms)
        if seg.span.last_speech - seg.span.first_speech < self.config.short_segment_s * SR:
            # Whisper mis-hears a lone short phrase ("ask not" -> "is not"): give short segments a
            # longer endpoint so that a phrase followed soon by more speech is decoded with it.
            endpoint = max(endpoint, int(self.config.short_endpoint_s * SR))
        return endpoint

    def _too_short(self, seg: StreamSegment) -> bool:
        """A click or a breath (too little speech, never shown): dropped at its endpoint, never final."""
        speech = seg.span.last_speech - seg.span.first_speech
        return seg.shown.id is None and speech < _ms(self.vad.min_speech_duration_ms)

    def _new_segment(
        self, start: int, held_from: int, first_speech: int | None = None, last_speech: int | None = None
    ) -> StreamSegment:
        edges = None
        if self.cut is not None and start <= self.cut:  # speech goes on right after a cut
            edges = CutEdges.after_cut(start, self.cut, held_from)
        self.cut = None
        seg = StreamSegment.open_at(start, edges)
        seg.span.first_speech = start if first_speech is None else first_speech
        seg.span.last_speech = start if last_speech is None else last_speech
        return seg

    # --- final passes -----------------------------------------------------------------------------

    def final_ready(self, received: int, finished: bool, now: float | None = None) -> bool:
        """Whether the oldest closed segment can have its final pass: a cut segment waits for the audio
        after its cut (up to CUT_CONTEXT_WAIT_S, or the stream's end)."""
        if not self._pending:
            return False
        seg = self._pending[0]
        audio_end = seg.edges.audio_end
        if audio_end is None or received >= audio_end or finished:
            return True
        return (time.monotonic() if now is None else now) - seg.span.closed_at >= CUT_CONTEXT_WAIT_S

    def finalized(self, seg: StreamSegment) -> StreamSegment | None:
        """``seg``, the oldest closed segment, is final: forget it. Returns the segment after it, if any."""
        assert self._pending[0] is seg
        self._pending.popleft()
        return self._pending[0] if self._pending else self._open

    def early_end(self, received: int) -> int | None:
        """Where the open segment ends if the silence going on now reaches its endpoint, once that much
        audio is received and the endpoint is at most EARLY_FINAL_LEAD_S away; else None.

        The final pass over ``[decode_from, early_end)`` can then run while the endpoint silence
        passes: at the endpoint the segment closes at exactly that end, and its final is ready.
        """
        seg, silence = self._open, self.silence_start
        if seg is None or silence is None or self._too_short(seg):
            return None
        end = silence + _ms(self.vad.speech_pad_ms)
        start_at = max(end, silence + self._endpoint(seg) - int(EARLY_FINAL_LEAD_S * SR))
        return end if received >= start_at and end - seg.start >= MIN_FINAL_SAMPLES else None

    def early_due(self, received: int) -> int | None:
        """The end of an early final pass of the open segment to take now: once per silence."""
        end, seg = self.early_end(received), self._open  # end is None without an open segment
        return end if end is not None and seg is not None and end != seg.early.end else None

    def begin_early(self, end: int) -> StreamSegment:
        """An early final pass of the open segment up to ``end`` is taken now."""
        seg = self._open
        assert seg is not None
        seg.early.end, seg.early.result = end, None
        return seg

    @staticmethod
    def early_done(seg: StreamSegment, result: DecodeResult) -> None:
        """The early pass of ``seg`` is decoded (the segment may have closed meanwhile, or not)."""
        seg.early.result = result

    def early_final(self) -> DecodeResult | None:
        """The final result of the oldest closed segment from its early pass, where that pass decoded
        exactly its audio; None when there is none or speech resumed after it (a normal pass runs)."""
        if not self._pending:
            return None
        seg = self._pending[0]
        if seg.early.result is None or seg.early.end != seg.span.end or seg.edges.audio_end is not None:
            return None
        return seg.early.result

    # --- queries ----------------------------------------------------------------------------------

    def oldest_needed(self, received: int) -> int:
        """The first sample any segment (or a segment continuing after a cut) may still decode."""
        if self._pending:
            return self._pending[0].decode_from
        if self._open is not None:
            return self._open.decode_from
        if self.cut is not None:
            return self.cut - CUT_CONTEXT
        return received

    def decoded_upto(self, received: int) -> int:
        """Absolute sample before which all audio is transcribed (or known to be silence)."""
        if self._pending:
            return self._pending[0].hyp.decoded_end
        if self._open is not None:
            return self._open.hyp.decoded_end
        return received

    def before(self, pos: int) -> bool:
        """Whether a segment that starts before ``pos`` is not final yet."""
        return (bool(self._pending) and self._pending[0].start < pos) or (self._open is not None and self._open.start < pos)

    def clear(self) -> None:
        self._pending.clear()
        self._open = None
