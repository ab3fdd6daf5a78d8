"""Batched Whisper decoding of stream windows on the shared model (no per-call state on the model).

One call encodes the windows of several streams, generates them in a batch and word-aligns them.
The encoder's input is cut to the window's audio plus a little padding instead of Whisper's fixed
30 s: CTranslate2 accepts shorter mel inputs, the encoder's cost is roughly proportional to its
input length, and Whisper still transcribes well when at least ~1 s of padding follows the speech
(measured on jfk and two_speakers: same words as the 30 s window, 3-5x faster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from audio_service.models.decoding import MEL_FRAMES_PER_S, WINDOW_S, decode_language, heard_language, word_alignment
from audio_service.models.decoding import tokenizer as model_tokenizer
from audio_service.models.whisper_rules import is_silence, repetition_start
from audio_service.schema import SAMPLE_RATE

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.models.registry import LoadedModel

FULL_FRAMES = int(WINDOW_S * MEL_FRAMES_PER_S)  # Whisper's 30 s window, in mel frames
BUCKET_FRAMES = 500  # in a call with several windows, lengths are rounded up to 5 s so they share one batch shape
SINGLE_BUCKET_FRAMES = 100  # a call with one window has nothing to share a shape with: 1 s steps
# CTranslate2's batched generate needs <|startoftranscript|> at one position in every prompt of a
# batch, i.e. the same number of previous-text tokens. A stream context longer than two buckets keeps
# a multiple of this many of its most recent tokens (losing at most 15 of 32 or more), so streams with
# the same client prompt and a long context share a position; a batch is grouped by that position.
# Short contexts are kept whole: dropping them cost words at segment starts (measured on jfk).
PROMPT_BUCKET_TOKENS = 16


@dataclass(frozen=True)
class DecodeRequest:
    """One stream window to decode. ``offset`` is the absolute time of ``samples[0]``."""

    samples: np.ndarray
    offset: float
    language: str | None
    # the stream's language so far, which Whisper's detection on this window replaces when confident
    # (the client set none): code-switched speech keeps each language
    language_switch: bool = False
    prompt_text: str = ""  # the client's prompt: always kept whole
    context_text: str = ""  # recent final text of the stream: trimmed to a token bucket (see _prompt)
    prefix_tokens: tuple[int, ...] = ()
    beam_size: int = 1
    temperature: float = 0.0
    task: str = "transcribe"
    max_tokens: int = 0  # most text tokens of the window, forced prefix included (0: 10 + 7 per second)


@dataclass(frozen=True)
class DecodedWord:
    word: str
    start: float
    end: float
    probability: float
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class DecodeResult:
    text: str
    words: tuple[DecodedWord, ...]
    language: str
    no_speech_prob: float
    avg_logprob: float


@dataclass(frozen=True)
class WindowPolicy:
    """How long the encoder input is: ``full`` = always 30 s; otherwise audio + ``pad_s``, rounded up to
    a bucket: 5 s when the call has several windows (batched generate needs one shape), else 1 s
    (``fixed_buckets``: always 5 s). The encoder's cost grows with its input,
    so a lone 2 s partial encodes 3 s instead of 5 s."""

    full: bool = False
    pad_s: float = 1.0
    fixed_buckets: bool = False

    def frames(self, audio_frames: int, windows_in_call: int = 1) -> int:
        if self.full:
            return FULL_FRAMES
        need = audio_frames + int(self.pad_s * MEL_FRAMES_PER_S)
        bucket = SINGLE_BUCKET_FRAMES if windows_in_call == 1 and not self.fixed_buckets else BUCKET_FRAMES
        return min(FULL_FRAMES, int(math.ceil(need / bucket)) * bucket)


class DecodeBatch(Protocol):
    """The signature of :func:`decode_batch`: what the streaming engine calls for each model call
    (tests give it a fake that needs no model)."""

    def __call__(self, model: LoadedModel, requests: list[DecodeRequest], window: WindowPolicy) -> list[DecodeResult]: ...


def decode_batch(model: LoadedModel, requests: list[DecodeRequest], window: WindowPolicy) -> list[DecodeResult]:
    """Decode several streams' windows: one encoder call each, one batched generate per window length.

    Measured on this 2-core CPU (int8, 8 windows of 4 s): a batched encoder call is *slower* than
    eight single ones (0.71 s vs 0.42 s) and so is batched alignment (0.24 s vs 0.12 s), while a
    batched generate is faster (0.27 s vs 0.34 s). So only the decoder is batched across streams.
    """
    import ctranslate2

    whisper = model.whisper
    feats = [whisper.feature_extractor(r.samples) for r in requests]
    frames = [window.frames(f.shape[1], len(requests)) for f in feats]
    encoded = [
        np.array(whisper.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(_fit(f, n)[None]))))
        for f, n in zip(feats, frames)
    ]
    languages = _languages(model, requests, encoded)
    tokenizers: dict[str, Any] = {}

    def tokenizer(lang: str, task: str) -> Any:
        key = f"{lang}/{task}"
        if key not in tokenizers:
            tokenizers[key] = model_tokenizer(model, lang, task)
        return tokenizers[key]

    prompts = [_prompt(whisper, tokenizer(lang, r.task), r) for r, lang in zip(requests, languages)]
    results: list = [None] * len(requests)
    # one generate per (window length, beam, temperature, start-of-transcript position): encoder
    # outputs of a batch must have one shape, and the SOT token one position (see PROMPT_BUCKET_TOKENS)
    sot = whisper.hf_tokenizer.token_to_id("<|startoftranscript|>")
    groups: dict[tuple[int, int, float, int], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((frames[i], r.beam_size, r.temperature, prompts[i].index(sot)), []).append(i)
    for (_, beam, temp, _), idx in groups.items():
        beam = 1 if temp > 0 else beam  # sampling is per hypothesis; beam search ignores temperature
        enc = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate([encoded[i] for i in idx])))
        max_new = max(_token_budget(requests[i]) for i in idx)
        out = whisper.model.generate(
            enc,
            [prompts[i] for i in idx],
            beam_size=beam,
            max_length=min(whisper.max_length, max(len(prompts[i]) for i in idx) + max_new),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            sampling_temperature=temp if temp > 0 else 1.0,
            sampling_topk=0 if temp > 0 else 1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
        )
        for i, res in zip(idx, out):
            results[i] = res

    out_results = []
    for i, (r, res) in enumerate(zip(requests, results)):
        tok = tokenizer(languages[i], r.task)
        tokens = [t for t in res.sequences_ids[0] if t < tok.eot]
        seq_len = len(res.sequences_ids[0])
        avg_logprob = float(res.scores[0] * seq_len / (seq_len + 1))
        if is_silence(res.no_speech_prob, avg_logprob):
            tokens = []
        words = _align(whisper, tok, tokens, encoded[i], feats[i].shape[1], r.offset) if tokens else []
        text = tok.decode(tokens).strip() if tokens else ""
        kept = _drop_unheard_tail(words, r.offset + len(r.samples) / SAMPLE_RATE)
        if len(kept) < len(words):
            text, words = "".join(w.word for w in kept).strip(), kept
        keep = repetition_start([w.word for w in words], tail_phrases=True)
        if keep < len(words):  # cut a looping hypothesis where it starts repeating itself
            words = words[:keep]
            text = "".join(w.word for w in words).strip()
        out_results.append(DecodeResult(text, tuple(words), languages[i], float(res.no_speech_prob), avg_logprob))
    return out_results


def _token_budget(r: DecodeRequest) -> int:
    """New tokens a window may get: ``max_tokens`` (or 10 + 7 per second of audio), less the forced prefix."""
    budget = r.max_tokens or int(10 + 7 * len(r.samples) / SAMPLE_RATE)
    return max(4, min(224, budget) - len(r.prefix_tokens))


def _fit(feat: np.ndarray, frames: int) -> np.ndarray:
    if feat.shape[1] >= frames:
        return feat[:, :frames]
    return np.pad(feat, ((0, 0), (0, frames - feat.shape[1])))


def _languages(model: LoadedModel, requests: list[DecodeRequest], encoded: list[np.ndarray]) -> list[str]:
    """The requested language, else Whisper's detection on the window; with ``language_switch``, the
    detection when it is confident and the stream's language so far otherwise."""
    import ctranslate2

    out = []
    for r, enc in zip(requests, encoded):
        language = decode_language(model, r.language, r.task)
        if language and not (r.language_switch and model.multilingual):
            out.append(language)
            continue
        token, probability = model.whisper.model.detect_language(ctranslate2.StorageView.from_array(enc))[0][0]
        out.append(heard_language(language, token[2:-2], probability))
    return out


def _prompt(whisper, tok, r: DecodeRequest) -> list[int]:
    def encode(text: str) -> list[int]:
        return tok.encode(" " + text.strip()) if text.strip() else []

    client, context = encode(r.prompt_text), encode(r.context_text)
    # Whisper keeps at most max_length // 2 - 1 previous tokens, the most recent ones
    room = max(0, whisper.max_length // 2 - 1 - len(client))
    keep = min(len(context), room)
    if keep >= 2 * PROMPT_BUCKET_TOKENS:
        keep = keep // PROMPT_BUCKET_TOKENS * PROMPT_BUCKET_TOKENS
    previous = client + context[len(context) - keep :]
    prompt = whisper.get_prompt(tok, previous_tokens=previous, without_timestamps=True)
    return prompt + list(r.prefix_tokens)


def _align(whisper, tok, tokens: list[int], encoded: np.ndarray, num_frames: int, offset: float) -> list[DecodedWord]:
    """Word timings from the cross-attention alignment (faster-whisper's ``find_alignment``)."""
    import ctranslate2

    enc = ctranslate2.StorageView.from_array(encoded)
    return [
        DecodedWord(a["word"], offset + float(a["start"]), offset + float(a["end"]), float(a["probability"]), tuple(a["tokens"]))
        for a in word_alignment(whisper, tok, tokens, enc, min(num_frames, FULL_FRAMES))
    ]


def _drop_unheard_tail(words: list[DecodedWord], audio_end: float) -> list[DecodedWord]:
    """Drop trailing words the alignment could not place in the audio.

    Conditioned on earlier text, Whisper sometimes repeats a sentence into the padding after the
    speech; the alignment then squeezes those words into zero length at the very end, or past it.
    """
    n = len(words)
    while n and (words[n - 1].start >= audio_end - 0.02 or words[n - 1].end - words[n - 1].start < 0.02):
        n -= 1
    tail = words[n:]
    # a single very short last word can be real (a clipped syllable); several, or any past the end, are not
    if len(tail) >= 2 or any(w.start >= audio_end - 0.02 for w in tail):
        return words[:n]
    return words
