"""How both decoding paths talk to Whisper: languages, prompt limits, tokenizers, word timings.

The batch pipeline (``pipeline/asr.py`` through faster-whisper, ``pipeline/align.py``) and the
streaming decoder (``streaming/decoder.py``, CTranslate2 directly) call these, so a change here
reaches both. The quality rules (no-speech, loops) are in :mod:`audio_service.models.whisper_rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from faster_whisper.tokenizer import Tokenizer

    from audio_service.models.registry import LoadedModel

WINDOW_S = 30.0  # Whisper's input window: the longest audio one decode sees
MEL_FRAMES_PER_S = 100  # Whisper's feature frames per second of audio
# With the language unset, a window confidently in another language than the one spoken so far switches to
# it; below this, short or noisy windows are often given a neighbouring language (jfk's "ask not": 0.4).
LANGUAGE_SWITCH_PROB = 0.7
MAX_PROMPT_CHARS = 4000  # a client prompt; Whisper keeps only its last ~220 tokens anyway
# Punctuation glued to the word before or after it in word timings (openai-whisper's defaults).
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


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


def tokenizer(model: LoadedModel, language: str, task: str = "transcribe") -> Tokenizer:
    """The model's tokenizer for one language and task (cheap: wraps the shared HF tokenizer)."""
    from faster_whisper.tokenizer import Tokenizer

    return Tokenizer(model.whisper.hf_tokenizer, model.multilingual, task=task, language=language)


def text_tokens(model: LoadedModel, text: str) -> list[int]:
    """Whisper's text tokens of ``text`` (no special tokens)."""
    return model.whisper.hf_tokenizer.encode(text, add_special_tokens=False).ids


def decoding_kwargs() -> dict[str, Any]:
    """Options every faster-whisper ``transcribe`` call gets, so its word timings follow the rules here."""
    return {"prepend_punctuations": PREPEND_PUNCTUATIONS, "append_punctuations": APPEND_PUNCTUATIONS}


def word_alignment(whisper: Any, tok: Tokenizer, tokens: list[int], encoder_output: Any, num_frames: int) -> list[dict]:
    """Word timings of ``tokens`` from the cross-attention (faster-whisper's ``find_alignment``), with
    punctuation merged into its word and empty words dropped; times are seconds from the window start."""
    from faster_whisper.transcribe import merge_punctuations

    alignment = whisper.find_alignment(tok, [tokens], encoder_output, num_frames)[0]
    merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
    return [a for a in alignment if a["word"]]


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
        for ranked in self._model.detect_language(encoded):
            token, probability = ranked[0]
            self._heard.append((token[2:-2], float(probability)))
        return encoded


def language_watching(whisper: Any, heard: list[tuple[str, float]]) -> Any:
    """A per-call view of the shared faster-whisper ``whisper`` model that appends to ``heard`` the
    language (and its probability) of each window it encodes. The shared model is not changed: the
    view is a shallow copy holding the same CTranslate2 model, so any number of calls may run at once."""
    import copy

    view = copy.copy(whisper)
    view.model = _LanguageWatch(whisper.model, heard)
    return view
