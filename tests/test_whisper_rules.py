"""Whisper's quality rules (whisper/rules.py): pure logic, no model."""

from __future__ import annotations

import pytest

from audio_service.whisper.rules import is_looping, is_silence, repetition_start


def words(text: str) -> list[str]:
    return [" " + w for w in text.split()]


def kept(text: str, tail_phrases: bool = False) -> str:
    w = words(text)
    return "".join(w[: repetition_start(w, tail_phrases=tail_phrases)]).strip()


def test_silence_needs_both_signs():
    assert is_silence(0.9, -1.5)
    assert not is_silence(0.9, -0.2)  # sure of its words: speech
    assert not is_silence(0.3, -1.5)


def test_a_loop_is_cut_after_its_first_phrase():
    text = "Today I will play a game called Park, and " + "I will play a game called Park, and " * 5 + "I will"
    assert is_looping(text)
    assert kept(text) == "Today I will play a game called Park, and I will play a game called Park, and"[: len(kept(text))]
    assert 1 <= kept(text).count("game called Park") <= 2


@pytest.mark.parametrize(
    "text",
    [
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
        "we shall fight we shall fight on the beaches",
        "one two three four one two three four five",  # a repeat that goes on with new words is speech
    ],
)
def test_speech_is_kept_whole(text):
    assert kept(text, tail_phrases=True) == text


@pytest.mark.parametrize(
    "text",
    [
        "Like your country can do for you. Like your country can do for you.",
        "Like your country can do for you. Like your country can",  # the copy cut short by the window
    ],
)
def test_a_sentence_repeated_into_the_padding_is_cut_in_streaming(text):
    assert kept(text, tail_phrases=True) == "Like your country can do for you."
    assert kept(text) == text  # batch windows hold many utterances: only a real loop is cut there


JFK_SENTENCE = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def test_a_long_sentence_said_again_is_speech_in_batch():
    # a batched window of packed speech can hold one recording three times (test_drain's file)
    text = " ".join([JFK_SENTENCE] * 3)
    assert is_looping(text)
    assert kept(text) == text


def _fw_segment(text: str, words: list | None):
    from faster_whisper.transcribe import Segment

    return Segment(0, 0, 2.0, 12.0, text, list(range(len(text.split()))), -0.3, 3.0, 0.01, words, 0.0)


def test_a_loop_without_word_timings_is_cut_not_dropped():
    from audio_service.whisper.rules import without_loop

    loop = " Today I will play a game called Park, and" + " I will play a game called Park, and" * 5
    cut = without_loop(_fw_segment(loop, None), encode=str.split)
    assert cut is not None and cut.text.startswith(" Today I will play a game called Park, and")
    assert cut.text.count("game called Park") <= 2
    assert 2.0 < cut.end < 12.0 and len(cut.tokens) == len(cut.text.split())


def test_a_loop_with_word_timings_ends_at_its_last_kept_word():
    from faster_whisper.transcribe import Word

    from audio_service.whisper.rules import without_loop

    pieces = words("Today I will play a game called Park, and" + " I will play a game called Park, and" * 5)
    timed = [Word(2.0 + 0.2 * i, 2.15 + 0.2 * i, w, 0.9) for i, w in enumerate(pieces)]
    cut = without_loop(_fw_segment("".join(pieces), timed), encode=str.split)
    assert cut.words == timed[: len(cut.words)] and cut.end == cut.words[-1].end
    assert len(cut.words) < len(timed)


def test_loops_needs_a_short_phrase_said_again_not_just_good_compression():
    from audio_service.whisper.rules import repetition_start, text_words

    twice = text_words(" ".join([JFK_SENTENCE] * 2))  # compresses like a loop (ratio > 2.4), but is speech
    assert repetition_start(twice) == len(twice)
    loop = text_words("Today I will play a game called Park, and" + " I will play a game called Park, and" * 5)
    assert repetition_start(loop) < len(loop)


# --- the decoding rules both paths share (whisper/decoding.py, vad/params.py) -------------------


class _Model:
    """Only what the language rule reads of a loaded model."""

    def __init__(self, multilingual: bool) -> None:
        self.multilingual = multilingual


def test_language_rules_reach_the_batch_form_and_the_stream():
    from pydantic import ValidationError

    from audio_service.api.forms import TranscriptionParams
    from audio_service.errors import InvalidRequestError
    from audio_service.streaming.protocol import parse_options
    from audio_service.vad.params import VadParams
    from audio_service.whisper.decoding import decode_language, language_code

    assert language_code(" DE ") == "de" and language_code("") is None and language_code(None) is None
    with pytest.raises(ValueError) as rule:
        language_code("xx")
    with pytest.raises(ValidationError) as form:
        TranscriptionParams(language="xx")
    with pytest.raises(InvalidRequestError) as stream:
        parse_options({"language": "xx"}, VadParams(), 5.0)
    assert str(rule.value) in str(form.value) and str(rule.value) in stream.value.message
    assert TranscriptionParams(language="DE").language == parse_options({"language": "DE"}, VadParams(), 5.0).language == "de"
    assert decode_language(_Model(False), "de") == "en" and decode_language(_Model(True), None) is None
    assert decode_language(_Model(True), "en", "translate") is None and decode_language(_Model(True), "en") == "en"


def test_a_stream_s_vad_kwargs_drive_silero_as_the_batch_s_parameters_do():
    """A stream's ``vad_kwargs`` become the same Silero options as the batch VAD's parameters with those
    values (one parameter type, one conversion), and the off threshold follows the threshold."""
    import json
    from dataclasses import asdict, replace

    from audio_service.streaming.protocol import parse_options
    from audio_service.vad.params import BATCH_VAD, VadParams
    from audio_service.whisper.silero import silero_options

    kwargs = {"threshold": 0.6, "min_silence_duration_ms": 160, "speech_pad_ms": 400}
    stream_vad = parse_options({"vad_kwargs": json.dumps(kwargs)}, VadParams(), 5.0).vad
    assert asdict(silero_options(stream_vad)) == asdict(silero_options(replace(BATCH_VAD, threshold=0.6)))
    opts = silero_options(BATCH_VAD)
    assert (opts.min_silence_duration_ms, opts.speech_pad_ms, opts.neg_threshold) == (160, 400, None)
    assert VadParams(threshold=0.6).off_threshold == pytest.approx(0.45)
