"""Hypothesis stabilisation: when to re-decode the open segment, and what of a partial to show.

The open segment's audio is re-decoded as it grows (greedy). The words two consecutive hypotheses
agree on (local agreement) are forced as the decoder prefix of the next decode, so the text flickers
little; a partial is shown only when its text changed. Pure logic on a :class:`StreamSegment`, no model.
"""

from __future__ import annotations

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.cuts import clip, norm
from audio_service.streaming.segment import StreamSegment
from audio_service.whisper.types import DecodeResult

MIN_PARTIAL_S = 0.6  # shorter windows make Whisper guess; wait for a little more audio
# The VAD decides in 32 ms windows and its probability trails the speech a little: audio this close
# after the last speech window may still hold the end of a word.
SPEECH_TAIL_S = 0.3


def partial_due(
    seg: StreamSegment | None, received: int, interval_s: float, marker_at: int | None, adaptive: bool = True
) -> bool:
    """Whether the open segment ``seg`` should be decoded again now.

    ``marker_at``: the position of the oldest trace or checkpoint still waiting, if any. ``adaptive``:
    skip re-decodes that could only repeat the last one (otherwise every interval is decoded).
    """
    if seg is None or received - seg.start < MIN_PARTIAL_S * SAMPLE_RATE:
        return False
    # no speech since the last partial was submitted: it already heard every word (the final comes
    # at the endpoint), so re-decoding the same words over silence would only cost compute
    heard_all = adaptive and seg.last_speech + SPEECH_TAIL_S * SAMPLE_RATE <= seg.submitted_at
    if received - seg.submitted_at >= interval_s * SAMPLE_RATE and not heard_all:
        return True
    # a trace or checkpoint waits for this audio: decode it now, whatever the interval
    return marker_at is not None and marker_at > seg.decoded_end and received > seg.submitted_at


def partial_token_budget(seg: StreamSegment, end: int) -> int:
    """Most text tokens a partial of ``seg`` up to sample ``end`` needs: the words the last partial heard,
    plus what the new audio can hold (fast speech is about 5 tokens/s) and a few for re-tokenising.

    Greedy partials conditioned on earlier text often run on past the audio until their budget ends
    (those words are dropped again, see ``decoder._drop_unheard_tail``); on jfk most tiny.en partials
    did, spending most of their time there. Finals keep the generous default budget.
    """
    new_s = (end - max(seg.start, seg.decoded_end)) / SAMPLE_RATE
    return seg.heard_tokens + 3 + int(5 * new_s)


def agreed_prefix(previous: tuple[str, ...], words: list[str]) -> int:
    """How many leading words two consecutive hypotheses share."""
    agreed = 0
    while agreed < min(len(words), len(previous)) and words[agreed] == previous[agreed]:
        agreed += 1
    return agreed


def stabilise(seg: StreamSegment, result: DecodeResult, end: int) -> DecodeResult | None:
    """Take a partial hypothesis of ``seg`` decoded up to sample ``end``.

    Updates the agreed prefix (the decoder is forced to keep it next time) and returns the result
    clipped to the segment when its text changed, or None when there is nothing new to show.
    """
    seg.decoded_end = max(seg.decoded_end, end)
    seg.heard_tokens = sum(len(w.tokens) for w in result.words)
    # compared without case and punctuation: small models flip "And so"/"and so" between hypotheses
    words = [norm(w.word) for w in result.words]
    agreed = agreed_prefix(seg.prev_words, words)
    seg.prev_words = tuple(words)
    if agreed and len(result.words) > agreed:  # lock agreed words, but never the whole hypothesis
        seg.locked = tuple(t for w in result.words[:agreed] for t in w.tokens)
    result, _ = clip(seg, result, None)  # the lock is on the decoded words; the client sees the segment's own
    if not result.text or (seg.view is not None and seg.view.text == result.text):
        return None
    seg.text_changed_at = end
    return result


def text_timed_out(seg: StreamSegment, at: int, timeout_s: float) -> bool:
    """Speech (or what VAD takes for it) with no new text for ``timeout_s``: the segment should be made final."""
    return at - seg.text_changed_at >= timeout_s * SAMPLE_RATE and seg.view is not None
