"""Whisper's quality rules (models/whisper_rules.py): pure logic, no model."""

from __future__ import annotations

import pytest

from audio_service.models.whisper_rules import is_looping, is_silence, repetition_start


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
    from audio_service.pipeline.asr import without_loop

    loop = " Today I will play a game called Park, and" + " I will play a game called Park, and" * 5
    cut = without_loop(_fw_segment(loop, None), encode=str.split)
    assert cut is not None and cut.text.startswith(" Today I will play a game called Park, and")
    assert cut.text.count("game called Park") <= 2
    assert 2.0 < cut.end < 12.0 and len(cut.tokens) == len(cut.text.split())


def test_a_loop_with_word_timings_ends_at_its_last_kept_word():
    from faster_whisper.transcribe import Word

    from audio_service.pipeline.asr import without_loop

    pieces = words("Today I will play a game called Park, and" + " I will play a game called Park, and" * 5)
    timed = [Word(2.0 + 0.2 * i, 2.15 + 0.2 * i, w, 0.9) for i, w in enumerate(pieces)]
    cut = without_loop(_fw_segment("".join(pieces), timed), encode=str.split)
    assert cut.words == timed[: len(cut.words)] and cut.end == cut.words[-1].end
    assert len(cut.words) < len(timed)


def test_loops_needs_a_short_phrase_said_again_not_just_good_compression():
    from audio_service.models.whisper_rules import loops

    assert not loops(" ".join([JFK_SENTENCE] * 2))  # compresses like a loop (ratio > 2.4), but is speech
    assert loops("Today I will play a game called Park, and" + " I will play a game called Park, and" * 5)


def test_skipped_speech_is_found_as_runs_of_uncovered_pieces():
    from audio_service.pipeline.asr import _skipped

    heard = [_fw_segment(" " + JFK_SENTENCE, None)]  # 2-12 s on the packed clock
    pieces = [(2.0, 6.0), (6.3, 12.0), (12.3, 14.0), (14.3, 16.5)]
    assert _skipped(heard, pieces) == [(12.3, 16.5)]  # the window's last sentence was left out
    assert _skipped(heard, pieces[:3] + [(14.3, 14.5)]) == [(12.3, 14.5)]
    assert _skipped(heard, [(2.0, 6.0), (12.3, 12.9)]) == []  # under a second: not worth a decode


def _unsure_window(speech_s: float):
    """One packed window of ``speech_s`` s of VAD speech, decoded as text Whisper calls "no speech"."""
    from faster_whisper.transcribe import Segment

    from audio_service.pipeline.chunking import Packed, Piece

    packed = Packed(audio=None, windows=((0.0, speech_s + 0.5),), pieces=(Piece(0.0, speech_s, 0.0),))
    text = " Good morning, today we go to the park with the children."
    return packed, [Segment(0, 0, 0.0, speech_s, text, list(range(12)), -1.4, 1.1, 0.8, None, 0.0)]


def test_low_confidence_speech_is_not_dropped_as_silence(monkeypatch):
    """The no-speech rule (no_speech_prob 0.8, avg_logprob -1.4) emptied whole windows of real, unsure
    speech (a translation of espeak German, where faster-whisper alone returns text: issue 10); a window
    of enough VAD speech keeps the words the decoder heard, a short burst still comes back empty."""
    from audio_service.pipeline import asr
    from audio_service.pipeline.asr import AsrOptions, _Keep, _redecode_failed_windows

    # text the rule calls silence leaves its speech "skipped": the re-decode of that span (a model
    # call, replaced here) heard nothing either, as in the failing CI run
    monkeypatch.setattr(asr, "_batched", lambda *args, **kwargs: ([], None))
    for speech_s, expected in ((5.5, 1), (1.0, 0)):
        packed, raw = _unsure_window(speech_s)
        kept = _redecode_failed_windows(None, packed, raw, "de", AsrOptions(), _Keep(None))
        assert len(kept) == expected, (speech_s, kept)


# --- the decoding rules both paths share (models/decoding.py, models/silero.py) -------------------

class _Model:
    """Only what the language rule reads of a loaded model."""

    def __init__(self, multilingual: bool) -> None:
        self.multilingual = multilingual


def test_language_rules_reach_the_batch_form_and_the_stream():
    from pydantic import ValidationError

    from audio_service.api.forms import TranscriptionParams
    from audio_service.errors import InvalidRequestError
    from audio_service.models.decoding import decode_language, language_code
    from audio_service.models.silero import VadParams
    from audio_service.streaming.protocol import parse_options

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


def test_error_body_is_one_shape_for_http_and_websocket():
    from audio_service.errors import InvalidRequestError
    from audio_service.streaming.protocol import error_message

    exc = InvalidRequestError("bad", param="language")
    assert error_message(exc) == exc.body() == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "language", "code": "invalid_value"}}


def test_batch_and_stream_vad_parameters_are_one_type():
    from audio_service.models.silero import VadParams
    from audio_service.pipeline.vad import BATCH_VAD
    from audio_service.streaming.protocol import StreamOptions

    assert type(StreamOptions().vad) is type(BATCH_VAD) is VadParams
    opts = BATCH_VAD.faster_whisper_options()
    assert (opts.min_silence_duration_ms, opts.speech_pad_ms, opts.neg_threshold) == (160, 400, None)
    assert VadParams(threshold=0.6).off_threshold == pytest.approx(0.45)
