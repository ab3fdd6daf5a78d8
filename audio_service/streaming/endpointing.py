"""Endpointing: VAD decisions in, speech segments out (opened, cut, closed, waiting for their final pass).

Pure state, no model and no audio: the session feeds one speech probability per VAD window (or, with
``skip_vad``, the received position), and checkpoints; the :class:`Endpointer` keeps the open segment
and the closed ones waiting for their final pass. A segment closes at an endpoint (silence; short
segments wait longer), at the maximum length (cut at its quietest recent window), or at a checkpoint
(a cut in mid-speech: both sides are decoded across it, see :mod:`audio_service.streaming.cuts`).
"""

from __future__ import annotations

import time
from collections import deque

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.cuts import CUT_CONTEXT, CUT_CONTEXT_WAIT_S
from audio_service.streaming.segment import SessionConfig, StreamSegment
from audio_service.vad.params import VadParams
from audio_service.vad.streaming import WINDOW

SR = SAMPLE_RATE
MIN_FINAL_SAMPLES = SR // 10  # a closed segment shorter than this, never shown, has nothing audible
# An early final pass starts at most this long before the endpoint (a final pass over a few seconds of
# speech takes about 0.5-0.8 s on 2 CPU cores): for the long endpoint of short segments, starting
# sooner would only waste more passes on pauses that speech resumes after.
EARLY_FINAL_LEAD_S = 0.8


def _ms(ms: int) -> int:
    return ms * SR // 1000


class Endpointer:
    """One stream's segmentation state. ``held_from`` arguments are the first sample still buffered."""

    def __init__(self, vad: VadParams, config: SessionConfig) -> None:
        self.vad = vad
        self.config = config
        self.open: StreamSegment | None = None
        self.pending: deque[StreamSegment] = deque()  # closed, waiting for their final pass
        self.floor = 0  # end of the last closed segment: a new one never overlaps it
        self.cut: int | None = None  # a checkpoint cut speech here: the segment that goes on decodes across it
        self.silence_start: int | None = None

    # --- input ------------------------------------------------------------------------------------

    def step(self, pos: int, prob: float, held_from: int) -> None:
        """One VAD window starting at sample ``pos`` with speech probability ``prob``."""
        vad = self.vad
        end = pos + WINDOW
        seg = self.open
        if seg is None:
            if prob >= vad.threshold:
                self.open = self._new_segment(max(pos - _ms(vad.speech_pad_ms), self.floor, held_from), held_from)
                self.open.first_speech = pos
                self.open.last_speech = end
                self.silence_start = None
            return
        seg.probs.append((pos, prob))
        if prob >= vad.threshold:
            self.silence_start = None
            seg.last_speech = end
        elif prob < vad.off_threshold and self.silence_start is None:
            self.silence_start = pos
        if self.silence_start is not None and end - self.silence_start >= self._endpoint(seg):
            if self._too_short(seg):
                self.open = None  # a click or a breath: nothing to transcribe
            else:
                self.close_open(min(self.silence_start + _ms(vad.speech_pad_ms), end))
            self.silence_start = None
        elif end - seg.start >= self.config.max_segment_s * SR:
            self._cut_long(seg, end, held_from)

    def step_without_vad(self, before: int, received: int, held_from: int) -> None:
        """``skip_vad``: everything is speech; segments end at the maximum length, the text timeout or a checkpoint."""
        if self.open is None:
            self.open = self._new_segment(before, held_from)
        seg = self.open
        seg.last_speech = received
        if received - seg.start >= self.config.max_segment_s * SR:
            self.close_open(received)

    def checkpoint(self, pos: int, lookahead: bool) -> None:
        """Every segment before a checkpoint must be final: cut the open one at ``pos``.

        ``lookahead``: the stream goes on, so the cut segment's final pass may wait for the audio after it.
        """
        if self.open is not None:
            seg = self.open
            self.close_open(pos)
            seg.clip_end = True
            if lookahead:
                seg.audio_end = pos + CUT_CONTEXT
            self.cut = pos
            self.silence_start = None
        self.floor = max(self.floor, pos)

    def close_open(self, end: int) -> None:
        """Close the open segment at ``end``; it waits for its final pass unless nothing audible was in it."""
        seg = self.open
        if seg is None:
            return
        self.open = None
        seg.end = max(end, seg.start)
        seg.closed_at = time.monotonic()
        self.floor = max(self.floor, seg.end)
        if seg.end - seg.start < MIN_FINAL_SAMPLES and seg.id is None:
            return  # nothing audible to finalize
        seg.probs = []
        self.pending.append(seg)

    def _cut_long(self, seg: StreamSegment, end: int, held_from: int) -> None:
        """Close an over-long segment at its quietest recent window and go on in a new one."""
        lo, hi = end - 3 * SR, end - SR // 4
        candidates = [(p, pos) for pos, p in seg.probs if lo <= pos <= hi]
        cut = min(candidates)[1] + WINDOW // 2 if candidates else end
        self.close_open(cut)
        self.open = self._new_segment(cut, held_from)
        self.open.first_speech = cut
        self.open.last_speech = end
        self.open.probs = [(pos, p) for pos, p in seg.probs if pos >= cut]

    def _endpoint(self, seg: StreamSegment) -> int:
        """The silence (samples) that closes ``seg``."""
        endpoint = _ms(self.vad.min_silence_duration_ms)
        if seg.last_speech - seg.first_speech < self.config.short_segment_s * SR:
            # Whisper mis-hears a lone short phrase ("ask not" -> "is not"): give short segments a
            # longer endpoint so that a phrase followed soon by more speech is decoded with it.
            endpoint = max(endpoint, int(self.config.short_endpoint_s * SR))
        return endpoint

    def _too_short(self, seg: StreamSegment) -> bool:
        """A click or a breath (too little speech, never shown): dropped at its endpoint, never final."""
        return seg.id is None and seg.last_speech - seg.first_speech < _ms(self.vad.min_speech_duration_ms)

    def _new_segment(self, start: int, held_from: int) -> StreamSegment:
        seg = StreamSegment(start=start, decoded_end=start, submitted_at=start, text_changed_at=start)
        if self.cut is not None and start <= self.cut:  # speech goes on right after a cut
            seg.audio_start = max(held_from, self.cut - CUT_CONTEXT)
            seg.clip_start = True
        self.cut = None
        return seg

    # --- queries ----------------------------------------------------------------------------------

    def oldest_needed(self, received: int) -> int:
        """The first sample any segment (or a segment continuing after a cut) may still decode."""
        if self.pending:
            return self.pending[0].decode_from
        if self.open is not None:
            return self.open.decode_from
        if self.cut is not None:
            return self.cut - CUT_CONTEXT
        return received

    def early_end(self, received: int) -> int | None:
        """Where the open segment ends if the silence going on now reaches its endpoint, once that much
        audio is received and the endpoint is at most EARLY_FINAL_LEAD_S away; else None.

        The final pass over ``[decode_from, early_end)`` can then run while the endpoint silence
        passes: at the endpoint the segment closes at exactly that end, and its final is ready.
        """
        seg, silence = self.open, self.silence_start
        if seg is None or silence is None or self._too_short(seg):
            return None
        end = silence + _ms(self.vad.speech_pad_ms)
        start_at = max(end, silence + self._endpoint(seg) - int(EARLY_FINAL_LEAD_S * SR))
        return end if received >= start_at and end - seg.start >= MIN_FINAL_SAMPLES else None

    def final_ready(self, received: int, finished: bool, now: float | None = None) -> bool:
        """Whether the oldest closed segment can have its final pass: a cut segment waits for the audio
        after its cut (up to CUT_CONTEXT_WAIT_S, or the stream's end)."""
        if not self.pending:
            return False
        seg = self.pending[0]
        if seg.audio_end is None or received >= seg.audio_end or finished:
            return True
        return (time.monotonic() if now is None else now) - seg.closed_at >= CUT_CONTEXT_WAIT_S

    def decoded_upto(self, received: int) -> int:
        """Absolute sample before which all audio is transcribed (or known to be silence)."""
        if self.pending:
            return self.pending[0].decoded_end
        if self.open is not None:
            return self.open.decoded_end
        return received

    def before(self, pos: int) -> bool:
        """Whether a segment that starts before ``pos`` is not final yet."""
        return (bool(self.pending) and self.pending[0].start < pos) or (self.open is not None and self.open.start < pos)

    def clear(self) -> None:
        self.pending.clear()
        self.open = None
