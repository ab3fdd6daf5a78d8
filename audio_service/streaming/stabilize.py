"""Hypothesis stabilisation: when to re-decode the open segment, and what of a partial to show.

The open segment's audio is re-decoded as it grows (greedy). The words two consecutive hypotheses
agree on (local agreement) are forced as the decoder prefix of the next decode, so the text flickers
little; a partial is shown only when its text changed. Each segment carries a :class:`Hypothesis`,
the state this module owns; pure logic, no model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.cuts import CutEdges, norm
from audio_service.whisper.types import DecodeResult

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.models.registry import LoadedModel

MIN_PARTIAL_S = 0.6  # shorter windows make Whisper guess; wait for a little more audio
# The VAD decides in 32 ms windows and its probability trails the speech a little: audio this close
# after the last speech window may still hold the end of a word.
SPEECH_TAIL_S = 0.3


def agreed_prefix(previous: tuple[str, ...], words: list[str]) -> int:
    """How many leading words two consecutive hypotheses share."""
    agreed = 0
    while agreed < min(len(words), len(previous)) and words[agreed] == previous[agreed]:
        agreed += 1
    return agreed


class Hypothesis:
    """One segment's partial hypotheses so far: how far they decoded, the words they agreed on, and
    when the text shown last changed. ``start`` is the segment's first sample (absolute)."""

    def __init__(self, start: int) -> None:
        self.decoded_end = start  # audio covered by the newest hypothesis
        self.submitted_at = start  # received position when the last partial was submitted
        self.text_changed_at = start
        self.words: tuple[str, ...] = ()  # the newest hypothesis, normalised (see cuts.norm)
        self.locked: tuple[int, ...] = ()  # decoder prefix: tokens of words two hypotheses agreed on
        self.locked_by: LoadedModel | None = None  # the (shared) model whose vocabulary ``locked`` is in
        self.heard_tokens = 0  # text tokens of the newest hypothesis (its budget for the next one)

    def due(self, start: int, last_speech: int, received: int, interval_s: float, marker_at: int | None) -> bool:
        """Whether the open segment (from ``start``, speech heard up to ``last_speech``) should be decoded
        again now. ``marker_at``: the position of the oldest trace or checkpoint still waiting, if any."""
        if received - start < MIN_PARTIAL_S * SAMPLE_RATE:
            return False
        # no speech since the last partial was submitted: it already heard every word (the final comes
        # at the endpoint), so re-decoding the same words over silence would only cost compute
        heard_all = last_speech + SPEECH_TAIL_S * SAMPLE_RATE <= self.submitted_at
        if received - self.submitted_at >= interval_s * SAMPLE_RATE and not heard_all:
            return True
        # a trace or checkpoint waits for this audio: decode it now, whatever the interval
        return marker_at is not None and marker_at > self.decoded_end and received > self.submitted_at

    def submit(self, end: int) -> None:
        """A partial up to ``end`` was handed to the engine."""
        self.submitted_at = end

    def token_budget(self, start: int, end: int) -> int:
        """Most text tokens a partial of the segment from ``start`` up to sample ``end`` needs: the words
        the last partial heard, plus what the new audio can hold (fast speech is about 5 tokens/s) and a
        few for re-tokenising.

        Greedy partials conditioned on earlier text often run on past the audio until their budget ends
        (those words are dropped again, see ``decoder._drop_unheard_tail``); on jfk most tiny.en partials
        did, spending most of their time there. Finals keep the generous default budget.
        """
        new_s = (end - max(start, self.decoded_end)) / SAMPLE_RATE
        return self.heard_tokens + 3 + int(5 * new_s)

    def prefix_for(self, model: LoadedModel) -> tuple[int, ...]:
        """The agreed tokens to force on a partial decoded by ``model``: none on another model, whose
        vocabulary they are not in."""
        return self.locked if self.locked_by is model else ()

    def take(self, result: DecodeResult, end: int, model: LoadedModel, edges: CutEdges, shown: str | None) -> DecodeResult | None:
        """Take a partial hypothesis decoded by ``model`` up to sample ``end``.

        Updates the agreed prefix (the decoder is forced to keep it next time) and returns the result
        clipped to the segment (``edges``) when its text differs from the text ``shown`` last, or None
        when there is nothing new to show.
        """
        self.decoded_end = max(self.decoded_end, end)
        self.heard_tokens = sum(len(w.tokens) for w in result.words)
        # compared without case and punctuation: small models flip "And so"/"and so" between hypotheses
        words = [norm(w.word) for w in result.words]
        agreed = agreed_prefix(self.words, words)
        self.words = tuple(words)
        if agreed and len(result.words) > agreed:  # lock agreed words, but never the whole hypothesis
            self.locked = tuple(t for w in result.words[:agreed] for t in w.tokens)
        self.locked_by = model
        result, _ = edges.clip(result, None)  # the lock is on the decoded words; the client sees the segment's own
        if not result.text or result.text == shown:
            return None
        self.text_changed_at = end
        return result

    def timed_out(self, at: int, timeout_s: float) -> bool:
        """No new text for ``timeout_s`` up to sample ``at`` (speech, or what VAD takes for it, that
        decodes to the same words): the segment should be made final once it has shown text."""
        return at - self.text_changed_at >= timeout_s * SAMPLE_RATE
