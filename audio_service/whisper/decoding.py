"""What both decoding paths ask of Whisper itself: languages, language detection, tokenizers, prompts,
suppressed tokens, word timings.

The batch path (:mod:`audio_service.whisper.batch`, forced alignment) and the streaming path
(:mod:`audio_service.whisper.stream`) call these, so a change here reaches both. faster-whisper's
private names (``_LANGUAGE_CODES``, ``get_prompt``, ``find_alignment``, ``get_suppressed_tokens``) are used
only here and in :mod:`audio_service.whisper.silero` (its VAD session): that is why faster-whisper is pinned to the release
tested (``~=``).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from faster_whisper.tokenizer import Tokenizer

    from audio_service.whisper.rules import DecodeOptions
    from audio_service.whisper.types import LoadedModel

# With the language unset, a window confidently in another language than the one spoken so far switches to
# it; below this, short or noisy windows are often given a neighbouring language (jfk's "ask not": 0.4).
LANGUAGE_SWITCH_PROB = 0.7
MAX_PROMPT_CHARS = 4000  # a client prompt; Whisper keeps only its last ~220 tokens anyway
# Keyterms share Whisper's previous-text half window (223 tokens) with the prompt and the context:
# 500 characters of names are ~150 tokens, so some recent context still fits beside them.
MAX_KEYTERMS = 100
MAX_HOTWORDS_CHARS = 500


def keyterms_text(keyterms: Sequence[str] = (), text: str | None = None) -> str | None:
    """The hotwords string for a client's ``keyterms`` (a list of terms, joined as "a, b, c.") or
    ``hotwords`` (free text, as faster-whisper takes it): None when neither is given. ValueError (naming the field) when both are
    given, or for more than MAX_KEYTERMS terms or MAX_HOTWORDS_CHARS characters."""
    terms = [t.strip() for t in keyterms if t.strip()]
    text = (text or "").strip()
    if terms and text:
        raise ValueError("keyterms: give keyterms or hotwords, not both")
    if len(terms) > MAX_KEYTERMS:
        raise ValueError(f"keyterms: at most {MAX_KEYTERMS} terms, got {len(terms)}")
    # the terms read as a list ending a sentence, so the speech after it starts afresh: on
    # bench/keyterms.py this recalled more terms than terms joined without the period, and changed
    # fewer of the other words
    out = ", ".join(terms) + ("" if not terms or terms[-1][-1] in ".!?" else ".") if terms else text
    if len(out) > MAX_HOTWORDS_CHARS:
        field = "keyterms" if terms else "hotwords"
        raise ValueError(f"{field}: at most {MAX_HOTWORDS_CHARS} characters in all, got {len(out)}")
    return out or None


def heard_language(current: str | None, detected: str, probability: float) -> str:
    """The language to decode in when Whisper hears ``detected`` (at ``probability``) where ``current``
    was spoken so far: the detection when nothing was heard yet or when it is confident."""
    return detected if current is None or probability >= LANGUAGE_SWITCH_PROB else current


def whisper_languages() -> frozenset[str]:
    """The language codes Whisper knows."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def language_code(value: str | None) -> str | None:
    """A client's language as Whisper's code (None when blank); ValueError naming it when Whisper does not know it."""
    if value is None or not value.strip():
        return None
    code = value.strip().lower()
    if code not in whisper_languages():
        raise ValueError(f"unsupported language {value!r}; use an ISO-639-1 code Whisper knows, e.g. 'en', 'de'")
    return code


def decode_language(model: LoadedModel, language: str | None, task: str = "transcribe") -> str | None:
    """The language to decode in (None: detect it). An English-only model always decodes English;
    a translation's ``en`` is its target, not a hint about the source."""
    if not model.multilingual:
        return "en"
    if task == "translate" and language == "en":
        return None
    return language


def storage(array: Any) -> Any:
    """``array`` as a CTranslate2 StorageView (one already is: it may live on a GPU)."""
    import ctranslate2
    import numpy as np

    return (
        array if isinstance(array, ctranslate2.StorageView) else ctranslate2.StorageView.from_array(np.ascontiguousarray(array))
    )


def languages_heard(ct2_whisper: Any, encoder_output: Any) -> list[tuple[str, float]]:
    """The most likely language (code, probability) of each window in ``encoder_output`` (a CTranslate2
    StorageView or array of encoder outputs): Whisper's language detection, as faster-whisper runs it.

    Every language detection of the service goes through here: the streaming windows, the windows the
    batch decoder encodes, and :func:`detect_language` on a file's audio."""
    return [(ranked[0][0][2:-2], float(ranked[0][1])) for ranked in ct2_whisper.detect_language(storage(encoder_output))]


def detect_language(model: LoadedModel, samples: np.ndarray) -> tuple[str, float]:
    """The language spoken in the first 30 s of ``samples`` and its probability (one encoder pass)."""
    from faster_whisper.audio import pad_or_trim

    whisper = model.whisper
    features = whisper.feature_extractor(samples[: whisper.feature_extractor.n_samples])
    encoded = whisper.encode(pad_or_trim(features[..., : whisper.feature_extractor.nb_max_frames]))
    return languages_heard(whisper.model, encoded)[0]


def tokenizer(model: LoadedModel, language: str, task: str = "transcribe") -> Tokenizer:
    """The model's tokenizer for one language and task (cheap: wraps the shared HF tokenizer)."""
    from faster_whisper.tokenizer import Tokenizer

    return Tokenizer(model.whisper.hf_tokenizer, model.multilingual, task=task, language=language)


def text_tokens(model: LoadedModel, text: str) -> list[int]:
    """Whisper's text tokens of ``text`` (no special tokens)."""
    return model.whisper.hf_tokenizer.encode(text, add_special_tokens=False).ids


def suppressed_tokens(model: LoadedModel, tok: Tokenizer, options: DecodeOptions) -> list[int]:
    """The token ids generation may not produce: ``options.suppress_tokens`` with -1 expanded to the
    tokenizer's non-speech tokens, plus the task, start and no-speech tokens (faster-whisper's expansion).

    Computed once per model: the expansion takes milliseconds (it tokenizes every symbol), and its tokens
    are the same for every language and task."""
    from faster_whisper.transcribe import get_suppressed_tokens

    known = _SUPPRESSED.setdefault(model.whisper, {})
    if options.suppress_tokens not in known:
        known[options.suppress_tokens] = list(get_suppressed_tokens(tok, list(options.suppress_tokens)))
    return known[options.suppress_tokens]


# faster-whisper model -> suppress_tokens option -> the expanded ids (dropped with the model)
_SUPPRESSED: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], list[int]]] = weakref.WeakKeyDictionary()


def prompt_tokens(
    model: LoadedModel, tok: Tokenizer, previous: list[int], prefix: list[int] | None = None, hotwords: str = ""
) -> list[int]:
    """Whisper's decoder prompt without timestamps: ``hotwords`` and ``previous`` text tokens, the start
    sequence, ``prefix``.

    faster-whisper's ``get_prompt`` places the hotwords (before the previous text, both after
    <|startofprev|>) as its ``transcribe`` does; it drops them only for a client's text prefix, which
    this prompt never has: ``prefix`` is a stream's own stable head, re-decoded under the same bias."""
    return model.whisper.get_prompt(tok, previous_tokens=previous, without_timestamps=True, hotwords=hotwords or None) + list(
        prefix or ()
    )


def word_alignment(
    model: LoadedModel, tok: Tokenizer, tokens: list[int], encoder_output: Any, num_frames: int, options: DecodeOptions
) -> list[dict]:
    """Word timings of ``tokens`` from the cross-attention (faster-whisper's ``find_alignment``), with
    punctuation merged into its word and empty words dropped; times are seconds from the window start."""
    from faster_whisper.transcribe import merge_punctuations

    alignment = model.whisper.find_alignment(tok, [tokens], storage(encoder_output), num_frames)[0]
    merge_punctuations(alignment, options.prepend_punctuations, options.append_punctuations)
    return [a for a in alignment if a["word"]]


def encode_window(model: LoadedModel, samples: np.ndarray) -> tuple[Any, int]:
    """The encoder output of up to 30 s of ``samples`` padded to Whisper's window, and how many of its
    feature frames hold audio."""
    from faster_whisper.audio import pad_or_trim

    whisper = model.whisper
    features = whisper.feature_extractor(samples)[..., :-1]
    num_frames = min(features.shape[-1], whisper.feature_extractor.nb_max_frames)
    return whisper.encode(pad_or_trim(features)), num_frames


class _LanguageWatch:
    """CTranslate2's Whisper, with Whisper's language detection run on every encoder output it makes.

    Detection on an encoder output is one decoder step, next to nothing beside the encoder pass and
    the decoding, and it changes nothing in what is decoded."""

    def __init__(self, ct2_model: Any, heard: list[tuple[str, float]]) -> None:
        self._model = ct2_model
        self._heard = heard

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, *args: Any, **kwargs: Any) -> Any:
        encoded = self._model.encode(features, *args, **kwargs)
        self._heard.extend(languages_heard(self._model, encoded))
        return encoded


def language_watching(whisper: Any, heard: list[tuple[str, float]]) -> Any:
    """A per-call view of the shared faster-whisper ``whisper`` model that appends to ``heard`` the
    language (and its probability) of each window it encodes. The shared model is not changed: the
    view is a shallow copy holding the same CTranslate2 model, so any number of calls may run at once."""
    import copy

    view = copy.copy(whisper)
    view.model = _LanguageWatch(whisper.model, heard)
    return view
