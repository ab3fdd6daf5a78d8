"""Speech recognition with a shared faster-whisper model.

All per-call state lives in local objects (a fresh ``BatchedInferencePipeline`` per call is only
a thin wrapper around the shared model), so any number of threads may transcribe at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from audio_service.pipeline.vad import Chunk
from audio_service.schema import Audio, Segment, Task, Transcript, Word

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.models.registry import LoadedModel

# Whisper's own rule for "this window is silence": both a high no-speech probability and a low
# average log-probability. The batched decoder does not apply it, so we do.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0


@dataclass(frozen=True)
class AsrOptions:
    task: Task = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperatures: tuple[float, ...] = (0.0,)
    beam_size: int = 5
    word_timestamps: bool = False
    batch_size: int = 8
    batched: bool = True  # False: decode chunk after chunk, conditioning on previous text


def transcribe(model: "LoadedModel", audio: Audio, chunks: list[Chunk], opts: AsrOptions) -> Transcript:
    """Decode ``chunks`` of ``audio`` and return a transcript with absolute timestamps.

    A temperature fallback list (more than one temperature) needs the sequential decoder, which
    retries a window at the next temperature when it fails the compression/log-prob checks.
    """
    language = opts.language
    if opts.task == "translate" and language == "en":
        language = None  # "en" is the translation's target, not a hint about the source
    if not model.multilingual:
        language = "en"
    if not chunks:
        return Transcript(opts.task, "en" if opts.task == "translate" else (language or "en"), audio.duration, ())

    if opts.batched and len(opts.temperatures) == 1:
        raw, info = _batched(model, audio, chunks, language, opts)
    else:
        raw, info = _sequential(model, audio, chunks, language, opts)

    kept = [s for s in raw if s.text.strip() and not _is_silence(s)]
    segments = tuple(_segment(i, s) for i, s in enumerate(kept))
    out_language = "en" if opts.task == "translate" else info.language
    return Transcript(
        task=opts.task,
        language=out_language,
        duration=audio.duration,
        segments=segments,
        language_probability=float(info.language_probability),
        provenance={"model": model.spec.id},
    )


def _batched(model: "LoadedModel", audio: Audio, chunks: list[Chunk], language: str | None, opts: AsrOptions):
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model.whisper)
    segments, info = pipeline.transcribe(
        audio.samples,
        language=language,
        task=opts.task,
        beam_size=opts.beam_size,
        temperature=list(opts.temperatures),
        initial_prompt=opts.prompt or None,
        word_timestamps=opts.word_timestamps,
        clip_timestamps=[{"start": c.start, "end": c.end} for c in chunks],
        vad_filter=False,
        batch_size=opts.batch_size,
        without_timestamps=False,  # timestamp tokens split a chunk into sentence-sized segments
    )
    return list(segments), info


def _sequential(model: "LoadedModel", audio: Audio, chunks: list[Chunk], language: str | None, opts: AsrOptions):
    clips = [t for c in chunks for t in (c.start, c.end)]
    segments, info = model.whisper.transcribe(
        audio.samples,
        language=language,
        task=opts.task,
        beam_size=opts.beam_size,
        temperature=list(opts.temperatures),
        initial_prompt=opts.prompt or None,
        word_timestamps=opts.word_timestamps,
        clip_timestamps=clips,
        vad_filter=False,
    )
    return list(segments), info


def _is_silence(s) -> bool:
    return s.no_speech_prob > NO_SPEECH_PROB and s.avg_logprob < LOW_LOGPROB


def _segment(i: int, s) -> Segment:
    words = tuple(Word(w.start, w.end, w.word, float(w.probability)) for w in (s.words or ()))
    return Segment(
        id=i,
        start=float(s.start),
        end=float(s.end),
        text=s.text,
        words=words,
        seek=int(s.seek),
        tokens=tuple(int(t) for t in s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
    )
