"""Streams cut where nobody planned: mixed prompt lengths in one batch, and checkpoints mid-speech.

Both were bugs seen under load: a batch whose prompts differed in length failed every
stream in it, and a mid-speech checkpoint lost the rest of the utterance.
"""

from __future__ import annotations

import asyncio

import jiwer
import pytest

from audio_service.models.registry import ModelRegistry
from audio_service.settings import Settings
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.stream import decode_batch
from audio_service.whisper.types import DecodeRequest, WindowPolicy
from tests.audio_utils import JFK, JFK_TEXT, load_16k, normalize, wer
from tests.stream_client import stream

SR = 16000


@pytest.fixture(scope="module")
def jfk():
    return load_16k(JFK)


def test_one_batch_mixes_prompt_lengths(jfk):
    """No prompt, a short one, the 224-token maximum and a locked prefix decode together, all correctly."""
    model = ModelRegistry(Settings()).get()
    # varied text, as a stream's recent finals are (a repeated phrase would prime Whisper to continue it)
    words = " ".join(
        f"Item {i} on the agenda was the {topic} report, which the committee discussed at length."
        for i, topic in enumerate(["budget", "housing", "transport", "school", "water", "library", "park", "energy"] * 3)
    ).split()
    audio = jfk[: 4 * SR]  # "And so my fellow Americans, ask not"
    requests = [
        DecodeRequest(audio, 0.0, "en"),
        DecodeRequest(audio, 0.0, "en", prompt_text="Kennedy."),
        DecodeRequest(audio, 0.0, "en", context_text=" ".join(words)),  # far over the 224-token maximum
        DecodeRequest(audio, 0.0, "en", prompt_text="A speech.", context_text=" ".join(words[:9])),
        DecodeRequest(audio, 0.0, "en", context_text=" ".join(words[:30]), beam_size=1),
    ]
    results = decode_batch(model, requests, WindowPolicy(), DecodeOptions())
    assert len(results) == len(requests)
    for i, r in enumerate(results):
        assert r.words and all(0.0 <= w.start <= w.end <= 4.5 for w in r.words), r
        if i != 2:  # a 224-token prompt primes Whisper-base to continue the prompt: only its shape is checked
            assert wer("and so my fellow Americans ask", r.text) <= 0.35, r.text


def _errors(reference: str, hypothesis: str) -> int:
    out = jiwer.process_words(normalize(reference), normalize(hypothesis))
    return out.substitutions + out.deletions + out.insertions


@pytest.mark.parametrize(
    ("cut", "pace"),
    [(2.0, 0), (6.0, 0), (8.5, 0), (9.5, 0), (6.0, 1.0)],
    ids=["2.0s-fast", "6.0s-fast", "8.5s-fast", "9.5s-fast", "6.0s-real-time"],
)
def test_checkpoint_mid_speech_costs_at_most_the_cut_word(server, jfk, cut, pace):
    r = asyncio.run(stream(server.ws_url, jfk, frame_ms=100, pace=pace, params={"language": "en"}, checkpoints_at=(cut,)))
    assert r.checkpoints == [f"cp{cut}", "final"], r.errors
    assert not r.final_changed and r.all_final
    assert _errors(JFK_TEXT, r.text) <= 1, r.text
    # the words after the cut are all there: the transcript ends with the speech's last word
    assert normalize(r.text).endswith("country"), r.text
    after = [s for s in r.segments.values() if s["start"] >= cut - 0.05]
    assert after and all(s["end"] <= 11.1 for s in after)
