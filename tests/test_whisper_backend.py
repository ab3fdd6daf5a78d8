"""One Whisper backend: the batch path and the streaming path decode one window of real speech under the
same options (audio_service/whisper), and CTranslate2 receives the same values from both."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from audio_service.models.registry import ModelRegistry
from audio_service.pipeline.asr import AsrOptions, transcribe
from audio_service.schema import SAMPLE_RATE, Audio, SpeechSpan
from audio_service.settings import Settings
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.stream import decode_batch
from audio_service.whisper.types import DecodeRequest, LoadedModel, WindowPolicy
from tests.audio_utils import JFK, JFK_TEXT, load_16k, normalize

# what a decode at temperature 0 hands to CTranslate2's generate on either path
SHARED_GENERATE_OPTIONS = (
    "beam_size",
    "patience",
    "length_penalty",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "suppress_blank",
    "suppress_tokens",
    "return_scores",
    "return_no_speech_prob",
)


class _Recording:
    """CTranslate2's Whisper, recording the keyword arguments of every ``generate`` call."""

    def __init__(self, ct2_model: Any, calls: list[dict]) -> None:
        self._model = ct2_model
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append(kwargs)
        return self._model.generate(*args, **kwargs)


def _recording(model: LoadedModel, calls: list[dict], infos: list) -> LoadedModel:
    """``model`` on a copy of its faster-whisper model whose CTranslate2 calls are recorded, as is the
    ``TranscriptionInfo`` (the options faster-whisper resolved) of each ``transcribe``."""
    view = copy.copy(model.whisper)
    view.model = _Recording(model.whisper.model, calls)
    fw_transcribe = view.transcribe

    def transcribe_recorded(*args: Any, **kwargs: Any) -> Any:
        segments, info = fw_transcribe(*args, **kwargs)
        infos.append(info)
        return segments, info

    view.transcribe = transcribe_recorded
    return replace(model, whisper=view)


def _shared(generate_kwargs: dict) -> dict:
    """The options both paths must agree on (a KeyError when a path does not pass one)."""
    return {k: list(generate_kwargs[k]) if k == "suppress_tokens" else generate_kwargs[k] for k in SHARED_GENERATE_OPTIONS}


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return ModelRegistry(Settings()).get()


def test_one_window_decodes_alike_on_the_batch_and_the_streaming_path(model: LoadedModel) -> None:
    samples = load_16k(JFK)  # 11 s: one Whisper window
    audio = Audio(samples)
    options = DecodeOptions.from_settings(Settings())

    batch_calls: list[dict] = []
    infos: list = []
    transcript = transcribe(
        _recording(model, batch_calls, infos),
        audio,
        [SpeechSpan(0.0, audio.duration)],
        AsrOptions(language="en", decode=options),
    )
    stream_calls: list[dict] = []
    (result,) = decode_batch(
        _recording(model, stream_calls, []),
        [DecodeRequest(samples, 0.0, "en", beam_size=options.beam_size)],
        WindowPolicy(),
        options,
    )

    batch_text = " ".join(s.text.strip() for s in transcript.segments)
    assert normalize(batch_text) == normalize(result.text) == normalize(JFK_TEXT)

    # the same options reach CTranslate2 from both paths (suppressed tokens expanded as faster-whisper does)
    batch, stream = _shared(batch_calls[0]), _shared(stream_calls[0])
    assert batch == stream
    assert -1 not in stream["suppress_tokens"] and len(stream["suppress_tokens"]) > 50

    # and the batch path's fallback and silence rules run on the service's thresholds, not faster-whisper's defaults
    resolved = infos[0].transcription_options
    assert (resolved.no_speech_threshold, resolved.log_prob_threshold, resolved.compression_ratio_threshold) == (
        options.no_speech_threshold,
        options.log_prob_threshold,
        options.compression_ratio_threshold,
    )
    assert tuple(resolved.temperatures) == options.temperatures
    assert resolved.condition_on_previous_text == options.condition_on_previous_text
    assert list(resolved.suppress_tokens) == list(stream["suppress_tokens"])


def test_the_batch_path_passes_its_thresholds_explicitly(model: LoadedModel) -> None:
    """A threshold changed in the options reaches faster-whisper's transcribe loop."""
    infos: list = []
    options = replace(DecodeOptions(), no_speech_threshold=0.5, log_prob_threshold=-0.8, compression_ratio_threshold=2.2)
    audio = Audio(load_16k(JFK)[: 3 * SAMPLE_RATE])
    transcribe(_recording(model, [], infos), audio, [SpeechSpan(0.0, audio.duration)], AsrOptions(language="en", decode=options))
    resolved = infos[0].transcription_options
    assert (resolved.no_speech_threshold, resolved.log_prob_threshold, resolved.compression_ratio_threshold) == (0.5, -0.8, 2.2)


def _tokens(result) -> int:
    return sum(len(w.tokens) for w in result.words)


@pytest.mark.parametrize("context", ["", "And so, my fellow Americans, these are the words he said that day."])
def test_a_window_gets_the_text_tokens_its_budget_allows_with_or_without_previous_text(model: LoadedModel, context: str) -> None:
    # CTranslate2 caps a Whisper generate at half its max_length: with no previous text, a budget of 16
    # tokens once gave 8, and a stream's first segment stalled at its first words
    samples = load_16k(JFK)
    options = DecodeOptions.from_settings(Settings())
    for budget in (10, 16):
        (result,) = decode_batch(
            model, [DecodeRequest(samples, 0.0, "en", context_text=context, max_tokens=budget)], WindowPolicy(), options
        )
        assert budget - 2 <= _tokens(result) <= budget + 1, (budget, result.text)


def test_a_text_prefix_is_forced_in_the_model_s_own_vocabulary(model: LoadedModel) -> None:
    # the draft model re-reads the words committed from the stream's model by their text
    samples = load_16k(JFK)
    options = DecodeOptions.from_settings(Settings())
    request = DecodeRequest(samples, 0.0, "en", prefix_text=" And so my fellow Americans, ask")
    (result,) = decode_batch(model, [request], WindowPolicy(), options)
    assert normalize(result.text).startswith("and so my fellow americans ask")
    assert normalize(result.text) == normalize(JFK_TEXT)
