"""Whisper's own quality rules, in one place for the batch pipeline and the streaming decoder.

These are the thresholds and checks openai-whisper and faster-whisper apply to a decoded window;
both of our decoding paths call them here, so a change to a rule reaches both.
"""

from __future__ import annotations

from collections.abc import Sequence

NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
COMPRESSION_RATIO_LIMIT = 2.4  # a hypothesis that compresses better than this is looping
MIN_REPETITION_CHARS = 60  # shorter text compresses badly whatever it says: the ratio means nothing


def compression_ratio(text: str) -> float:
    """gzip compression ratio of ``text`` (faster-whisper's measure of repetition)."""
    from faster_whisper.transcribe import get_compression_ratio

    return get_compression_ratio(text)


def is_silence(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's "this window is silence": a likely no-speech token *and* an unsure decode."""
    return no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOW_LOGPROB


def is_looping(text: str) -> bool:
    """Whisper's repetition-loop sign on a decoded text."""
    return len(text) > MIN_REPETITION_CHARS and compression_ratio(text) > COMPRESSION_RATIO_LIMIT


def repetition_start(words: Sequence[str]) -> int:
    """How many leading ``words`` (each with its leading space, as Whisper spells them) to keep so a
    looping text stops before it repeats itself; ``len(words)`` when it does not loop.

    The cut is after the first phrase that is said again right away (of 3+ words, or a shorter one
    said 3+ times running); failing that, where the text starts to compress like a loop.
    """
    text = "".join(words)
    if not is_looping(text):
        return len(words)
    norm = ["".join(c for c in w.lower() if c.isalnum()) for w in words]
    best = None
    for period in range(1, len(norm) // 2 + 1):
        runs = 2 if period >= 3 else 3
        for i in range(len(norm) - runs * period + 1):
            if all(norm[i : i + period] == norm[i + r * period : i + (r + 1) * period] for r in range(1, runs)):
                if best is None or i + period < best:
                    best = i + period
                break
    if best is not None:
        return best
    text = ""
    for i, word in enumerate(words):
        text += word
        if is_looping(text):
            return i
    return len(words)
