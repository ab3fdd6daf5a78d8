"""Word alignment: word timings for a transcript, or for a known text (forced alignment).

Aligner names a client sends (the reference API's ``mms_fa``, ``tdnn_ffn``, ``gentle``) are aliases the
operator maps (``Settings.aligners``) to the aligners this server has:

* ``whisper``: Whisper's cross-attention timing (CTranslate2 ``Whisper.align`` through
  faster-whisper's ``find_alignment``); offline, every language the model knows. In transcriptions the
  decoder's own word timestamps are exactly this, so it adds no work there.
* ``mms_fa``: torchaudio's MMS forced aligner (wav2vec2 CTC + ``forced_align``), only where the
  deployment puts its checkpoint (``model.pt``) in ``Settings.alignment.mms_fa_dir`` and installs the ``mms`` extra.

An alias may list several aligners separated by ``|``: the first one available serves it, so the
default ``mms_fa -> mms_fa|whisper`` upgrades itself when MMS weights are installed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from audio_service.errors import InvalidRequestError
from audio_service.extras import installed, require
from audio_service.schema import Audio, Segment, SpeechSpan, Transcript, Word
from audio_service.whisper.decoding import decode_language, detect_language, encode_window, text_tokens, tokenizer, word_alignment
from audio_service.whisper.rules import DEFAULT_OPTIONS
from audio_service.whisper.types import WINDOW_S

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.pipeline.align_mms import MmsAligner
    from audio_service.settings import Settings
    from audio_service.whisper.types import LoadedModel

log = logging.getLogger(__name__)

MAX_TEXT_TOKENS = 440  # Whisper's decoder holds 448 positions, some taken by the start sequence
# A text needing more than this many tokens per second of audio cannot have been spoken in it
# (fast speech is about 4 tokens/s; Whisper's alignment resolution is 50 frames/s).
MAX_TOKENS_PER_SECOND = 12.0
SEGMENT_GAP_S = 1.0
SENTENCE_END = ".!?。！？"


class AlignerRegistry:
    """Resolves aligner names to available aligners and runs them."""

    def __init__(self, settings: Settings) -> None:
        self._aliases = dict(settings.alignment.aligners)
        self._default = settings.alignment.default
        self._available = {"whisper"}
        self._mms_dir = Path(settings.alignment.mms_fa_dir).expanduser() if settings.alignment.mms_fa_dir else None
        # weights without the mms extra: names that fall back (mms_fa|whisper) do; mms_fa alone gets the extra's name
        self._mms_needs_extra = False
        if self._mms_dir is not None and (self._mms_dir / "model.pt").is_file():
            if installed("mms_alignment"):
                self._available.add("mms_fa")
            else:
                self._mms_needs_extra = True
                log.warning("alignment.mms_fa_dir holds MMS weights but the mms extra is not installed: mms_fa is not available")
        self._mms: MmsAligner | None = None
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The names that work on this server."""
        return sorted(n for n in self._aliases if self._backend(n) is not None)

    def _backend(self, name: str) -> str | None:
        target = self._aliases.get(name)
        if target is None:
            return None
        return next((b for b in target.split("|") if b in self._available), None)

    def resolve(self, name: str | None) -> str:
        """The aligner serving ``name`` (None = the default); 400 listing working names if none."""
        backend = self._backend(name or self._default)
        if backend is None:
            if self._mms_needs_extra and "mms_fa" in self._aliases.get(name or self._default, "").split("|"):
                require("mms_alignment", param="alignment_model")
            raise InvalidRequestError(
                f"Unknown alignment_model {name!r}. Available: {', '.join(self.names())}.", param="alignment_model"
            )
        return backend

    def realign(self, backend: str, audio: Audio, transcript: Transcript) -> Transcript:
        """Word timings of ``transcript`` from ``backend`` (whisper's come with the transcript, and are
        only tightened to the speech they cover)."""
        if backend == "whisper":
            return snap_transcript(transcript, fine_speech_spans(audio))
        return self._mms_aligner().realign(audio, transcript)

    def align_text(self, backend: str, model: LoadedModel, audio: Audio, text: str, language: str | None) -> Transcript:
        """Forced-align a known ``text`` to ``audio``."""
        check_text_fits(model, audio, text)
        if backend == "whisper":
            return whisper_align_text(model, audio, text, language)
        words = self._mms_aligner().align_words(audio, text.split(), 0.0)
        return Transcript("transcribe", language or "en", audio.duration, tuple(segments_from_words(words)))

    def align_source(
        self, model: LoadedModel, source: str | BinaryIO, text: str, alignment_model: str | None, language: str | None
    ) -> Transcript:
        """Decode ``source`` and forced-align ``text`` to it (blocking: run on a worker thread)."""
        from audio_service.audio.decode import decode_audio

        backend = self.resolve(alignment_model)
        audio = decode_audio(source)
        transcript = self.align_text(backend, model, audio, text, language)
        return transcript.with_provenance(model=model.spec.id, aligner=backend)

    def _mms_aligner(self) -> MmsAligner:
        from audio_service.pipeline.align_mms import MmsAligner

        with self._lock:
            if self._mms is None:
                assert self._mms_dir is not None
                self._mms = MmsAligner(self._mms_dir)
            return self._mms


# --- Whisper cross-attention alignment -------------------------------------------------------------


def _tokenizer(model: LoadedModel, audio: Audio, language: str | None):
    language = decode_language(model, language)
    if language is None:
        language, _ = detect_language(model, audio.samples)
    return tokenizer(model, language), language


def check_text_fits(model: LoadedModel, audio: Audio, text: str) -> None:
    """400 for an empty text, or one far longer than the audio could hold."""
    if not text.strip():
        raise InvalidRequestError("text is empty: give the words spoken in the audio.", param="text")
    tokens = len(text_tokens(model, " " + text.strip()))
    limit = MAX_TOKENS_PER_SECOND * audio.duration + 10
    if tokens > limit:
        raise InvalidRequestError(
            f"text is far longer than {audio.duration:.1f}s of audio could hold ({tokens} tokens, at most {int(limit)}).",
            param="text",
        )


def whisper_align_text(model: LoadedModel, audio: Audio, text: str, language: str | None) -> Transcript:
    """Align ``text`` with Whisper's cross-attention, window by window of 30 s.

    Each window gets all remaining words (up to the decoder's capacity); words ending well inside
    the window are kept and the next window starts at the last kept word's end, so long audio is
    covered without transcribing it.
    """
    tok, language = _tokenizer(model, audio, language)
    words, word_tokens = tok.split_to_word_tokens(tok.encode(" " + text.strip()) + [tok.eot])
    words, word_tokens = words[:-1], word_tokens[:-1]  # drop the end-of-text marker
    out: list[Word] = []
    i, offset = 0, 0.0
    while i < len(words):
        window = audio.slice(offset, offset + WINDOW_S)
        j = _fit(word_tokens, i)
        timed = _align_window(model, tok, window, [t for w in word_tokens[i:j] for t in w])
        finished = j == len(words) and offset + WINDOW_S >= audio.duration
        keep = len(timed) if finished else _kept(timed, window.duration)
        for a in timed[:keep]:
            out.append(Word(offset + float(a["start"]), offset + float(a["end"]), a["word"], float(a["probability"])))
        i = _advance(word_tokens, i, sum(len(a["tokens"]) for a in timed[:keep]))
        offset = max(offset + 1.0, out[-1].end if out else offset + WINDOW_S / 2)
        if i < len(words) and offset >= audio.duration:  # no audio left for the rest of the text
            out += [Word(audio.duration, audio.duration, w, 0.0) for w in words[i:] if w.strip()]
            break
    words_out = _monotone(snap_words(out, fine_speech_spans(audio)), audio.duration)
    return Transcript(
        "transcribe", language, audio.duration, tuple(segments_from_words(words_out)), provenance={"model": model.spec.id}
    )


def _align_window(model: LoadedModel, tok, window: Audio, tokens: list[int]) -> list[dict]:
    # the word timings of a text follow the punctuation rules of transcription (decoding options' defaults)
    encoder_output, num_frames = encode_window(model, window.samples)
    return word_alignment(model, tok, tokens, encoder_output, num_frames, DEFAULT_OPTIONS)


def _fit(word_tokens: list[list[int]], i: int) -> int:
    """End index of the words from ``i`` whose tokens fit in one decoder pass."""
    j, n_tokens = i, 0
    while j < len(word_tokens) and n_tokens + len(word_tokens[j]) <= MAX_TEXT_TOKENS:
        n_tokens += len(word_tokens[j])
        j += 1
    return max(j, i + 1)


def _kept(timed: list[dict], window_s: float) -> int:
    """How many leading words end safely inside the window (at least one, so alignment advances)."""
    n = 0
    while n < len(timed) and timed[n]["end"] < window_s - 2.0:
        n += 1
    return max(1, n)


def _advance(word_tokens: list[list[int]], i: int, n_tokens: int) -> int:
    total = 0
    while i < len(word_tokens) and total < n_tokens:
        total += len(word_tokens[i])
        i += 1
    return i


def _monotone(words: list[Word], duration: float) -> list[Word]:
    """Clamp times into the audio and make starts non-decreasing and each end >= its start."""
    out: list[Word] = []
    prev = 0.0
    for w in words:
        start = min(max(w.start, prev), duration)
        end = min(max(w.end, start), duration)
        out.append(replace(w, start=round(start, 3), end=round(end, 3)))
        prev = start
    return out


def fine_speech_spans(audio: Audio) -> list[SpeechSpan]:
    """Speech spans with short pauses kept apart (silero VAD, 100 ms minimum silence)."""
    from audio_service.vad.params import VadParams
    from audio_service.vad.silero import silero_vad

    return silero_vad(audio, VadParams(min_speech_duration_ms=100, min_silence_duration_ms=100, speech_pad_ms=30))


def snap_words(words: list[Word], spans: list[SpeechSpan]) -> list[Word]:
    """Pull word edges out of silence onto the speech they cover.

    Whisper's cross-attention timing tiles the time axis: a word after a pause starts where the
    previous word ended. Where a word's edges fall in a pause the VAD found, move them to the first
    and last speech inside the word; words over continuous speech are left alone.
    """
    out = []
    for k, w in enumerate(words):
        inside = [s for s in spans if s.end > w.start and s.start < w.end]
        if inside:
            # The span the word overlaps most is its own speech; spans reaching in from before the
            # word's start are the previous word's, so the word starts at the first span that begins
            # inside it (up to that anchor).
            anchor = max(inside, key=lambda s: min(s.end, w.end) - max(s.start, w.start))
            starts = [s.start for s in inside if w.start <= s.start <= anchor.start]
            start = min(starts) if starts else w.start
            w = replace(w, start=start, end=max(start, min(w.end, inside[-1].end)))
        else:
            # A word placed wholly in a pause belongs to the speech that follows, if that speech
            # begins before the next word ends.
            limit = words[k + 1].end if k + 1 < len(words) else float("inf")
            following = next((s for s in spans if s.start >= w.end), None)
            if following is not None and following.start < limit:
                w = replace(w, start=following.start, end=min(following.end, following.start + (w.end - w.start)))
        out.append(w)
    return out


def snap_transcript(transcript: Transcript, spans: list[SpeechSpan]) -> Transcript:
    """``transcript`` with every segment's words snapped by :func:`snap_words`."""
    return transcript.with_segments(tuple(replace(s, words=tuple(snap_words(list(s.words), spans))) for s in transcript.segments))


def segments_from_words(words: list[Word]) -> list[Segment]:
    """Group aligned words into segments at sentence ends and long pauses."""
    segments: list[Segment] = []
    run: list[Word] = []

    def flush() -> None:
        if run:
            text = "".join(w.word if w.word.startswith(" ") else " " + w.word for w in run)
            segments.append(Segment(len(segments), run[0].start, run[-1].end, text, tuple(run)))
            run.clear()

    for w in words:
        if run and w.start - run[-1].end > SEGMENT_GAP_S:
            flush()
        run.append(w)
        if w.word.strip()[-1:] in SENTENCE_END:
            flush()
    flush()
    return segments
