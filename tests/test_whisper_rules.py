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
