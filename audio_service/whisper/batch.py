"""faster-whisper's own decoders over a file's packed speech: its sequential ``transcribe`` loop
(conditioned on previous text, temperature fallback) and its ``BatchedInferencePipeline``.

Both get every option of :class:`~audio_service.whisper.rules.DecodeOptions` explicitly, so the
thresholds, suppressed tokens and penalties are the ones the streaming decoder uses, whatever
faster-whisper's defaults are. Per-call state lives in local objects (a pipeline or a language-watching
view is a thin wrapper around the shared model), so any number of threads may transcribe at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from audio_service.whisper.decoding import language_watching
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.types import LoadedModel


def transcribe_options(options: DecodeOptions) -> dict[str, Any]:
    """faster-whisper ``transcribe`` keyword arguments for ``options`` (both of its entry points take them)."""
    return {
        "beam_size": options.beam_size,
        "patience": options.patience,
        "length_penalty": options.length_penalty,
        "repetition_penalty": options.repetition_penalty,
        "no_repeat_ngram_size": options.no_repeat_ngram_size,
        "compression_ratio_threshold": options.compression_ratio_threshold,
        "log_prob_threshold": options.log_prob_threshold,
        "no_speech_threshold": options.no_speech_threshold,
        "condition_on_previous_text": options.condition_on_previous_text,
        "suppress_blank": options.suppress_blank,
        "suppress_tokens": list(options.suppress_tokens),  # faster-whisper expands -1 (whisper.decoding.suppressed_tokens)
        "prepend_punctuations": options.prepend_punctuations,
        "append_punctuations": options.append_punctuations,
        "vad_filter": False,  # the service's VAD already chose the speech
    }


def transcribe_sequential(
    model: LoadedModel,
    samples: np.ndarray,
    options: DecodeOptions,
    temperatures: tuple[float, ...],
    heard: list[tuple[str, float]] | None = None,
    **request: Any,
) -> tuple[Iterable, Any]:
    """faster-whisper's transcribe loop over ``samples`` at ``temperatures`` (tried in turn while the
    thresholds fail); ``request`` holds the per-request arguments (language, task, initial_prompt,
    word_timestamps, clip_timestamps). With ``heard``, the language Whisper hears in each window it
    encodes is appended to it (one decoder step per window, on the encoder output computed anyway)."""
    whisper = model.whisper if heard is None else language_watching(model.whisper, heard)
    return whisper.transcribe(samples, temperature=list(temperatures), **transcribe_options(options), **request)


def transcribe_batched(
    model: LoadedModel,
    samples: np.ndarray,
    windows: list[tuple[float, float]],
    options: DecodeOptions,
    temperature: float,
    batch_size: int,
    **request: Any,
) -> tuple[Iterable, Any]:
    """faster-whisper's batched pipeline over the ``windows`` (seconds) of ``samples``, at one
    ``temperature`` (the batched decoder has no fallback)."""
    from faster_whisper import BatchedInferencePipeline

    return BatchedInferencePipeline(model.whisper).transcribe(
        samples,
        clip_timestamps=[{"start": a, "end": b} for a, b in windows],
        batch_size=batch_size,
        temperature=[temperature],
        **transcribe_options(options),
        **request,
    )
