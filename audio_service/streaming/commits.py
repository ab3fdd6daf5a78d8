"""Word-level commits: the words of the open segment that are final before the segment ends.

The open segment is re-decoded on the stream's own model as it grows. A word is committed when two
consecutive hypotheses agree on it exactly (same text, punctuation included, at the same position
after the words committed before it; the older hypothesis' last word may differ in case and
punctuation), the newer hypothesis heard a word after it, and it ends at least :data:`COMMIT_MARGIN_S`
before the audio the newer hypothesis heard.
Committed words never change: every later hypothesis and the segment's final pass are decoded with
their tokens forced as the decoder prefix, and whatever those decodes make of that prefix, the
segment keeps the committed words (text and times) and takes only the rest from them
(:meth:`Commits.settle`).

Each segment carries a :class:`Commits`, the state this module owns. Pure logic, no model.
"""

from __future__ import annotations

from dataclasses import replace

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.cuts import norm
from audio_service.whisper.types import DecodedWord, DecodeResult

# Whisper's last word or two before the end of its audio are the least sure (a word cut off mid-way
# is guessed); a word ending this close to it waits for more audio even when two hypotheses agree.
COMMIT_MARGIN_S = 0.2


def _agree(said: tuple[str, ...], previous: tuple[str, ...], n: int) -> bool:
    """Whether the newer hypothesis' word ``n`` agrees with the older one's: the same text, punctuation
    included; the older one's last word may differ in case and punctuation only (Whisper ends a
    hypothesis with a full stop where the audio ends), when the newer one goes on after it."""
    if not said[n]:
        return False
    if said[n] == previous[n]:
        return True
    return n == len(previous) - 1 and n + 1 < len(said) and norm(said[n]) == norm(previous[n])


class Commits:
    """One segment's committed words (absolute times, the stream model's tokens) and the newest
    hypothesis they were checked against."""

    def __init__(self) -> None:
        self.words: tuple[DecodedWord, ...] = ()
        self._previous: tuple[str, ...] = ()  # the newest hypothesis' words (text as decoded, stripped)

    @property
    def tokens(self) -> tuple[int, ...]:
        """The committed words' tokens: the forced decoder prefix of every later decode of the segment."""
        return tuple(t for w in self.words for t in w.tokens)

    @property
    def until(self) -> int | None:
        """The sample where the last committed word ends (None: nothing committed)."""
        return int(round(self.words[-1].end * SAMPLE_RATE)) if self.words else None

    def observe(self, result: DecodeResult, end: int) -> int:
        """Take a hypothesis of the stream's model decoded up to sample ``end`` with the committed tokens
        forced; commit the words it agrees on with the hypothesis before it. Returns how many it committed."""
        tokens = self.tokens
        if tuple(t for w in result.words for t in w.tokens)[: len(tokens)] != tokens:
            self._previous = ()
            return 0  # the decode dropped the committed prefix (silence, a loop cut): no evidence
        words = self.settle(result).words
        said = tuple(w.word.strip() for w in words)
        previous, self._previous = self._previous, said
        k = len(self.words)
        limit = end / SAMPLE_RATE - COMMIT_MARGIN_S
        n = k
        # never the newest hypothesis' last word: forced to the end of what it heard, Whisper ends the next
        # decode right there (as the agreed prefix, see stabilize, never holds a whole hypothesis)
        while n < min(len(words) - 1, len(previous)) and _agree(said, previous, n) and words[n].end <= limit:
            n += 1
        self.words += words[k:n]
        return n - k

    def settle(self, result: DecodeResult) -> DecodeResult:
        """``result`` (decoded with the committed tokens forced) with the committed words in place of what
        it made of them: the committed words unchanged, then its own words after them.

        Where the decode does not start with the committed words (it dropped them, or a decode with a
        shorter prefix), its words that end after the last committed one follow them.
        """
        if not self.words:
            return result
        words, tokens = result.words, self.tokens
        flat = tuple(t for w in words for t in w.tokens)
        rest: list[DecodedWord]
        if flat[: len(tokens)] != tokens:
            rest = [w for w in words if (w.start + w.end) / 2 > self.words[-1].end]
        else:
            n, seen = 0, 0  # words[:n] hold the first ``seen`` tokens of the prefix
            while seen + len(words[n].tokens) <= len(tokens):
                seen += len(words[n].tokens)
                n += 1
                if n == len(words):
                    break
            rest = list(words[n:])
            if seen < len(tokens):  # words[n] holds the prefix's last tokens and more (punctuation after it)
                word, last = words[n], self.words[-1].word
                extra = word.word[len(last) :] if word.word.startswith(last) else ""
                tail = word.tokens[len(tokens) - seen :]
                rest = ([replace(word, word=extra, start=word.end, tokens=tail)] if extra.strip() else []) + rest[1:]
        kept = (*self.words, *rest)
        return replace(result, text="".join(w.word for w in kept).strip(), words=kept)
