"""Batched Whisper decoding of stream windows on the shared model (no per-call state on the model).

One call encodes the windows of several streams, generates them in a batch and word-aligns them.
The encoder's input is cut to the window's audio plus a little padding instead of Whisper's fixed
30 s: CTranslate2 accepts shorter mel inputs, the encoder's cost is roughly proportional to its
input length, and Whisper still transcribes well when at least ~1 s of padding follows the speech
(measured on jfk and two_speakers: same words as the 30 s window, 3-5x faster).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audio_service.schema import SAMPLE_RATE
from audio_service.whisper.decoding import (
    decode_language,
    heard_language,
    languages_heard,
    prompt_tokens,
    storage,
    suppressed_tokens,
    word_alignment,
)
from audio_service.whisper.decoding import tokenizer as model_tokenizer
from audio_service.whisper.rules import DecodeOptions, avg_logprob, is_silence, repetition_start
from audio_service.whisper.types import FULL_FRAMES, DecodedWord, DecodeRequest, DecodeResult, LoadedModel, WindowPolicy

# CTranslate2's batched generate needs <|startoftranscript|> at one position in every prompt of a
# batch, i.e. the same number of previous-text tokens. A stream context longer than two buckets keeps
# a multiple of this many of its most recent tokens (losing at most 15 of 32 or more), so streams with
# the same client prompt and a long context share a position; a batch is grouped by that position.
# Short contexts are kept whole: dropping them cost words at segment starts (measured on jfk).
PROMPT_BUCKET_TOKENS = 16


def decode_batch(
    model: LoadedModel, requests: list[DecodeRequest], window: WindowPolicy, options: DecodeOptions
) -> list[DecodeResult]:
    """Decode several streams' windows: one encoder call each, one batched generate per window length.

    Each window is decoded at its request's beam size and temperature under ``options`` (the suppressed
    tokens and penalties faster-whisper's ``transcribe`` passes, its no-speech and loop rules).

    Measured on this 2-core CPU (int8, 8 windows of 4 s): a batched encoder call is *slower* than
    eight single ones (0.71 s vs 0.42 s) and so is batched alignment (0.24 s vs 0.12 s), while a
    batched generate is faster (0.27 s vs 0.34 s). So only the decoder is batched across streams.
    """
    whisper = model.whisper
    feats = [whisper.feature_extractor(r.samples) for r in requests]
    frames = [window.frames(f.shape[1], len(requests)) for f in feats]
    encoded = [np.array(whisper.model.encode(storage(_fit(f, n)[None]))) for f, n in zip(feats, frames)]
    languages = _languages(model, requests, encoded)
    tokenizers: dict[str, Any] = {}

    def tokenizer(lang: str, task: str) -> Any:
        key = f"{lang}/{task}"
        if key not in tokenizers:
            tokenizers[key] = model_tokenizer(model, lang, task)
        return tokenizers[key]

    prefixes = [_prefix(tokenizer(lang, r.task), r) for r, lang in zip(requests, languages)]
    prompts = [_prompt(model, tokenizer(lang, r.task), r, p) for r, lang, p in zip(requests, languages, prefixes)]
    results: list = [None] * len(requests)
    # one generate per (window length, beam, temperature, start-of-transcript position): encoder
    # outputs of a batch must have one shape, and the SOT token one position (see PROMPT_BUCKET_TOKENS).
    # The suppressed tokens are special and non-speech tokens, the same for every language and task.
    sot = whisper.hf_tokenizer.token_to_id("<|startoftranscript|>")
    groups: dict[tuple[int, int, float, int], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((frames[i], r.beam_size, r.temperature, prompts[i].index(sot)), []).append(i)
    for (_, beam, temp, _), idx in groups.items():
        # CTranslate2's Whisper generates at most min(max_length / 2, max_length - lead) text tokens (the forced
        # prefix included), ``lead`` being the prompt before the text: previous text and start sequence
        # (measured on CTranslate2 4.x). Without previous text, prompt + budget as max_length gave half the
        # budget: a stream's first segment stalled at its first words until the text timeout cut it.
        most = max(_text_budget(requests[i], len(prefixes[i])) for i in idx)
        lead = max(len(prompts[i]) - len(prefixes[i]) for i in idx)
        out = whisper.model.generate(
            storage(np.concatenate([encoded[i] for i in idx])),
            [prompts[i] for i in idx],
            max_length=min(whisper.max_length, max(2 * most, most + lead)),
            **generate_options(model, options, tokenizer(languages[idx[0]], requests[idx[0]].task), beam, temp),
        )
        for i, res in zip(idx, out):
            results[i] = res

    out_results = []
    for i, (r, res) in enumerate(zip(requests, results)):
        tok = tokenizer(languages[i], r.task)
        tokens = [t for t in res.sequences_ids[0] if t < tok.eot]
        logprob = avg_logprob(res.scores[0], len(res.sequences_ids[0]), options)
        if is_silence(res.no_speech_prob, logprob, options):
            tokens = []
        words = _align(model, tok, tokens, encoded[i], feats[i].shape[1], r.offset, options) if tokens else []
        text = tok.decode(tokens).strip() if tokens else ""
        kept = _drop_unheard_tail(words, r.offset + len(r.samples) / SAMPLE_RATE)
        if len(kept) < len(words):
            text, words = "".join(w.word for w in kept).strip(), kept
        keep = repetition_start([w.word for w in words], tail_phrases=True, options=options)
        if keep < len(words):  # cut a looping hypothesis where it starts repeating itself
            words = words[:keep]
            text = "".join(w.word for w in words).strip()
        out_results.append(DecodeResult(text, tuple(words), languages[i], float(res.no_speech_prob), float(logprob)))
    return out_results


def generate_options(model: LoadedModel, options: DecodeOptions, tok: Any, beam_size: int, temperature: float) -> dict[str, Any]:
    """CTranslate2 ``generate`` keyword arguments for one decode at ``beam_size`` and ``temperature``: the
    values faster-whisper's ``transcribe`` passes for ``options`` (sampling draws one hypothesis, where
    faster-whisper draws ``best_of``: a stream re-decodes its window soon anyway)."""
    sampling = temperature > 0  # sampling is per hypothesis; beam search ignores temperature
    return {
        "beam_size": 1 if sampling else beam_size,
        "patience": options.patience,
        "length_penalty": options.length_penalty,
        "repetition_penalty": options.repetition_penalty,
        "no_repeat_ngram_size": options.no_repeat_ngram_size,
        "suppress_blank": options.suppress_blank,
        "suppress_tokens": suppressed_tokens(model, tok, options),
        "sampling_temperature": temperature if sampling else 1.0,
        "sampling_topk": 0 if sampling else 1,
        "return_scores": True,
        "return_no_speech_prob": True,
    }


def _text_budget(r: DecodeRequest, prefix: int) -> int:
    """Text tokens a window may hold, its ``prefix`` forced tokens included: ``max_tokens`` (or 10 + 7 per
    second of audio), and at least 4 new ones."""
    budget = r.max_tokens or int(10 + 7 * len(r.samples) / SAMPLE_RATE)
    return max(prefix + 4, min(224, budget))


def _prefix(tok, r: DecodeRequest) -> list[int]:
    """The forced decoder prefix: ``prefix_tokens``, else ``prefix_text`` in this model's vocabulary."""
    return list(r.prefix_tokens) or (tok.encode(r.prefix_text) if r.prefix_text.strip() else [])


def _fit(feat: np.ndarray, frames: int) -> np.ndarray:
    if feat.shape[1] >= frames:
        return feat[:, :frames]
    return np.pad(feat, ((0, 0), (0, frames - feat.shape[1])))


def _languages(model: LoadedModel, requests: list[DecodeRequest], encoded: list[np.ndarray]) -> list[str]:
    """The requested language, else Whisper's detection on the window; with ``language_switch``, the
    detection when it is confident and the stream's language so far otherwise."""
    out = []
    for r, enc in zip(requests, encoded):
        language = decode_language(model, r.language, r.task)
        if language and not (r.language_switch and model.multilingual):
            out.append(language)
            continue
        detected, probability = languages_heard(model.whisper.model, enc)[0]
        out.append(heard_language(language, detected, probability))
    return out


def _prompt(model: LoadedModel, tok, r: DecodeRequest, prefix: list[int]) -> list[int]:
    def encode(text: str) -> list[int]:
        return tok.encode(" " + text.strip()) if text.strip() else []

    client, context = encode(r.prompt_text), encode(r.context_text)
    # Whisper keeps at most max_length // 2 - 1 previous tokens, the most recent ones; the hotwords
    # take their share of that room, so the whole prompt stays inside it (long contexts are trimmed)
    room = max(0, model.whisper.max_length // 2 - 1 - len(client) - len(encode(r.hotwords)))
    keep = min(len(context), room)
    if keep >= 2 * PROMPT_BUCKET_TOKENS:
        keep = keep // PROMPT_BUCKET_TOKENS * PROMPT_BUCKET_TOKENS
    previous = client + context[len(context) - keep :]
    return prompt_tokens(model, tok, previous, prefix, r.hotwords)


def _align(
    model: LoadedModel, tok, tokens: list[int], encoded: np.ndarray, num_frames: int, offset: float, options: DecodeOptions
) -> list[DecodedWord]:
    """Word timings from the cross-attention alignment (faster-whisper's ``find_alignment``)."""
    return [
        DecodedWord(a["word"], offset + float(a["start"]), offset + float(a["end"]), float(a["probability"]), tuple(a["tokens"]))
        for a in word_alignment(model, tok, tokens, encoded, min(num_frames, FULL_FRAMES), options)
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
