"""Whisper's decoding options and quality rules, in one place for the batch and the streaming path.

:class:`DecodeOptions` holds what every decode of the service uses: beam size, the fallback temperatures,
the no-speech / log-probability / compression-ratio thresholds, the suppressed tokens, conditioning on
previous text, the penalties and the punctuation merged into word timings. The batch path hands them to
faster-whisper's ``transcribe`` (:mod:`audio_service.whisper.batch`), the streaming path to CTranslate2's
``generate`` (:mod:`audio_service.whisper.stream`); both judge a decoded window with the functions here,
which compute what faster-whisper computes (its ``generate_with_fallback`` and ``generate_segments``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.settings import Settings

# Whisper's own fallback temperatures. The reference API's temperature 0 means "raise the temperature
# until the thresholds pass", so a request for 0 (the default) decodes with this list, as faster-whisper does.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MIN_REPETITION_CHARS = 60  # shorter text compresses badly whatever it says: the ratio means nothing


@dataclass(frozen=True)
class DecodeOptions:
    """The decoding options of both paths; the defaults are faster-whisper's ``transcribe`` defaults.

    Per-request choices (task, language, prompt, the client's temperature, a stream pass's beam) travel
    with the request; these are the rules every request is decoded under.
    """

    beam_size: int = 5
    temperatures: tuple[float, ...] = FALLBACK_TEMPERATURES
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4  # a hypothesis that compresses better than this is looping
    suppress_tokens: tuple[int, ...] = (-1,)  # -1: the tokenizer's non-speech tokens (whisper.decoding.suppressed_tokens)
    suppress_blank: bool = True
    condition_on_previous_text: bool = True
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    patience: float = 1.0
    # punctuation glued to the word before or after it in word timings (openai-whisper's defaults)
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"

    @classmethod
    def from_settings(cls, s: Settings) -> DecodeOptions:
        """The service's options: built once per app (``create_app``) for the batch service and the stream engine."""
        return cls(beam_size=s.batch.beam_size)

    def fallback(self, requested: tuple[float, ...]) -> tuple[float, ...]:
        """The temperatures to try for a client's ``requested`` ones: 0 alone means Whisper's fallback list."""
        return self.temperatures if requested == (0.0,) else requested


DEFAULT_OPTIONS = DecodeOptions()


def avg_logprob(score: float, seq_len: int, options: DecodeOptions = DEFAULT_OPTIONS) -> float:
    """The average log-probability of a hypothesis from CTranslate2's length-normalised ``score`` of its
    ``seq_len`` tokens, as faster-whisper recovers it (the end-of-text token counts in the average)."""
    return score * seq_len**options.length_penalty / (seq_len + 1)


def compression_ratio(text: str) -> float:
    """gzip compression ratio of ``text`` (faster-whisper's measure of repetition)."""
    from faster_whisper.transcribe import get_compression_ratio

    return get_compression_ratio(text)


def is_silence(no_speech_prob: float, avg_logprob: float, options: DecodeOptions = DEFAULT_OPTIONS) -> bool:
    """Whisper's "this window is silence": a likely no-speech token *and* an unsure decode (at or below the
    log-probability threshold, as faster-whisper skips a window)."""
    return no_speech_prob > options.no_speech_threshold and not avg_logprob > options.log_prob_threshold


def is_looping(text: str, options: DecodeOptions = DEFAULT_OPTIONS) -> bool:
    """Whisper's repetition-loop sign on a decoded text."""
    return len(text) > MIN_REPETITION_CHARS and compression_ratio(text) > options.compression_ratio_threshold


TAIL_PHRASE_WORDS = 4  # a phrase this long said again up to the very end is Whisper filling padding
# Whisper's loops repeat a short phrase until the window is full. A long sentence said again (a
# speaker re-reading it, a recording played twice) is speech: it takes its own time in the audio,
# and the batch decoder already re-decoded the window with temperature fallback before we get here.
LOOP_PHRASE_MAX_WORDS = 12


def repetition_start(words: Sequence[str], tail_phrases: bool = False, options: DecodeOptions = DEFAULT_OPTIONS) -> int:
    """How many leading ``words`` (each with its leading space, as Whisper spells them) to keep so a
    looping text stops before it repeats itself; ``len(words)`` when it does not loop.

    The text loops when it compresses like a loop and a phrase of 3 to LOOP_PHRASE_MAX_WORDS words
    is said again right away (or a 1-2 word phrase 3+ times running); the cut is after that
    phrase's first copy. With ``tail_phrases`` (one utterance per hypothesis, as in streaming) a
    phrase of TAIL_PHRASE_WORDS or more repeated up to the end is cut even when the text is too
    short to compress like a loop: Whisper repeats a sentence into the silence after it ("Like your
    country can do for you. Like your country can do for you.", whisper-tiny.en on jfk).
    """
    norm = ["".join(c for c in w.lower() if c.isalnum()) for w in words]
    if tail_phrases:
        cut = _repeated_tail(norm)
        if cut is not None:
            return cut
    if not is_looping("".join(words), options):
        return len(words)
    cut = _first_repeat(norm)
    return len(words) if cut is None else cut


def text_words(text: str) -> list[str]:
    """``text`` as Whisper spells its words: each with the space before it."""
    return re.findall(r"\s*\S+", text)


def _first_repeat(norm: list[str]) -> int | None:
    """The end of the first phrase said again right away: 3+ words twice, or 1-2 words 3+ times.

    A phrase of p words repeats from i when norm[j] == norm[j + p] for j in i .. i + p*(runs-1) - 1,
    so a run of that many matches is searched for each p (O(n) per p).
    """
    n, best = len(norm), None
    for p in range(1, min(n // 2, LOOP_PHRASE_MAX_WORDS) + 1):
        need = p if p >= 3 else 2 * p
        run = 0
        for j in range(n - p):
            run = run + 1 if norm[j] == norm[j + p] else 0
            if run >= need:
                start = j - need + 1
                if best is None or start + p < best:
                    best = start + p
                break
    return best


def _repeated_tail(norm: list[str]) -> int | None:
    """Where the words end if their tail only repeats the phrase just before it (last copy may be cut short).

    For each phrase length p, the longest p-periodic suffix is found walking back from the end
    (O(n) per length); it counts when at least TAIL_PHRASE_WORDS words follow its first copy.
    """
    n, best = len(norm), None
    for p in range(TAIL_PHRASE_WORDS, n - TAIL_PHRASE_WORDS + 1):
        i = n - p
        while i > 0 and norm[i - 1] == norm[i - 1 + p]:
            i -= 1
        if n - i - p >= TAIL_PHRASE_WORDS and (best is None or i + p < best):
            best = i + p
    return best


def without_loop(s, encode: Callable[[str], list[int]], options: DecodeOptions = DEFAULT_OPTIONS):
    """Decoded segment ``s`` cut where it starts repeating itself (``None`` if nothing is left).

    Without word timings (the client asked for none) the text's own words are cut and the end
    time is estimated from the share of the text kept: a looping segment must not vanish whole.
    """
    if not is_looping(s.text, options):
        return s
    pieces = [w.word for w in s.words] if s.words else text_words(s.text)
    keep = repetition_start(pieces, options=options)
    if keep == len(pieces):
        return s
    if keep == 0:
        return None
    text = "".join(pieces[:keep])
    if s.words:
        words, end = s.words[:keep], s.words[keep - 1].end
    else:
        words, end = s.words, s.start + (s.end - s.start) * len(text) / len(s.text)
    n_tokens = len(encode(text))
    return replace(s, text=text, words=words, end=end, tokens=s.tokens[:n_tokens], compression_ratio=compression_ratio(text))
