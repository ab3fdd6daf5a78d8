"""Speech recognition with a shared faster-whisper model.

The default decoder is faster-whisper's own transcribe loop over the speech our VAD found, packed
as faster-whisper packs it, so the text is what faster-whisper returns run directly (the service is
never less accurate than the engine it wraps; ``bench/accuracy.py`` compares them file by file).

faster-whisper itself is called through :mod:`audio_service.whisper.batch`, under the same
:class:`~audio_service.whisper.rules.DecodeOptions` as the streaming decoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from audio_service.pipeline.chunking import Packed, TimeMap, pack
from audio_service.pipeline.segmenter import resegment
from audio_service.schema import Audio, Segment, SpeechSpan, Task, Transcript, Word
from audio_service.vad.params import BATCH_VAD
from audio_service.vad.silero import silero_vad
from audio_service.whisper.batch import transcribe_batched, transcribe_sequential
from audio_service.whisper.decoding import decode_language, detect_language, heard_language, text_tokens
from audio_service.whisper.rules import DecodeOptions, is_silence, without_loop
from audio_service.whisper.types import MEL_FRAMES_PER_S, WINDOW_S

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.whisper.types import LoadedModel

log = logging.getLogger(__name__)

UTTERANCE_S = 1.5  # code-switched files are re-detected utterance by utterance, each at least this long


@dataclass(frozen=True)
class AsrOptions:
    task: Task = "transcribe"
    language: str | None = None
    prompt: str | None = None
    hotwords: str | None = None  # the client's keyterms: faster-whisper's ``hotwords``, put before the previous text
    # The client's keyterms as a list (not its free-text ``hotwords``): the batch service decodes without
    # and with the hotwords and takes only the keyterms' spans from the second (pipeline.keyterms).
    keyterms: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = (0.0,)  # the client's; (0.0,) is Whisper's fallback list (DecodeOptions.fallback)
    decode: DecodeOptions = DecodeOptions()  # the service's decoding options (beam size, thresholds, ...)
    # Word timing costs little next to decoding, and gives sentence-sized segments (see segmenter).
    word_timestamps: bool = True
    batch_size: int = 8
    # "sequential": faster-whisper's own transcribe loop (conditioned on previous text, temperature
    # fallback) over the packed speech: what faster-whisper returns for the same VAD. "batched": windows
    # of packed speech decoded in batches without timestamps, as faster-whisper's BatchedInferencePipeline
    # (faster on a GPU, no fallback, and on real recordings a little less accurate).
    decoder: Literal["sequential", "batched"] = "sequential"
    max_window_s: float = 30.0  # longest stretch of packed speech given to the decoder at once
    # With ``language`` unset: the language detected in an earlier block of the same file, which this
    # block starts in (windows confidently in another language still switch).
    file_language: str | None = None


class Transcribe(Protocol):
    """The signature of :func:`transcribe`: what :class:`~audio_service.pipeline.batch.BatchService`
    calls to decode speech (tests give it a fake that needs no model)."""

    def __call__(
        self,
        model: LoadedModel,
        audio: Audio,
        spans: list[SpeechSpan],
        opts: AsrOptions,
        on_segment: Callable[[float, str], None] | None = None,
    ) -> Transcript: ...


def transcribe(
    model: LoadedModel,
    audio: Audio,
    spans: list[SpeechSpan],
    opts: AsrOptions,
    on_segment: Callable[[float, str], None] | None = None,
) -> Transcript:
    """Decode the speech ``spans`` of ``audio``; timestamps in the result are on ``audio``'s clock.

    ``on_segment(end_s, text)``, if given, is called as each decoded segment comes out of the
    decoder, for progress reports; it does not change the decoding.

    The spans are packed (silence removed) and decoded as the chosen engine decodes them. With the
    language unset, each segment gets the language spoken in it: a file whose windows are confidently
    in different languages is decoded language run by run.
    """
    language = decode_language(model, opts.language, opts.task)
    # the sequential decoder reads the speech joined as faster-whisper joins it; batched windows keep
    # pack()'s short gaps, as the batched pipeline always has (word timings do not smear across joins)
    packed = (
        pack(audio, spans, opts.max_window_s, gap_s=0.0)
        if opts.decoder == "sequential"
        else pack(audio, spans, opts.max_window_s)
    )
    if not packed.windows:
        return Transcript(opts.task, "en" if opts.task == "translate" else (language or "en"), audio.duration, ())
    clock = TimeMap(packed.pieces)
    report = _reporter(on_segment, clock, opts.decode) if on_segment is not None else None
    detect_runs = language is None and opts.task == "transcribe" and model.multilingual
    windows: list[tuple[str, float]] = []  # the language heard in each window (sequential, language unset)
    if opts.decoder == "batched":
        raw, info = _batched(model, packed.audio, list(packed.windows), language, opts, report)
    else:
        start = opts.file_language if detect_runs else language
        raw, info, windows = _sequential(model, packed.audio, _clips(packed, opts), start, opts, report, detect_runs)
    runs = [_Run(0.0, packed.audio.duration, info.language, raw)]
    if any(heard_language(info.language, lang, p) != info.language for lang, p in windows):
        runs = _decode_language_runs(model, packed, opts, runs[0])
    keep = _Keep(model, opts.decode)
    # a translation's segments are in English, the transcript's language
    kept = [(s, None if opts.task == "translate" else r.language) for r in runs for s in keep(r.segments)]
    segments = tuple(_segment(i, s, clock, lang) for i, (s, lang) in enumerate(kept))
    if opts.word_timestamps:
        segments = resegment(segments, encode=lambda text: text_tokens(model, text))
    out_language = "en" if opts.task == "translate" else _main_language(runs, info.language)
    return Transcript(
        task=opts.task,
        language=out_language,
        duration=audio.duration,
        segments=segments,
        language_probability=float(info.language_probability),
        provenance={"model": model.spec.id},
    )


@dataclass(frozen=True)
class _Run:
    """A stretch of packed audio decoded in one language, and its decoded segments (packed clock)."""

    start: float
    end: float
    language: str
    segments: list


def _main_language(runs: list[_Run], fallback: str) -> str:
    """The language with the most decoded speech (the file's language when it has one)."""
    spoken: dict[str, float] = {}
    for r in runs:
        spoken[r.language] = spoken.get(r.language, 0.0) + sum(s.end - s.start for s in r.segments)
    return max(spoken, key=lambda k: spoken[k]) if spoken and any(spoken.values()) else fallback


def _clips(packed: Packed, opts: AsrOptions) -> list[float] | None:
    """clip_timestamps for the sequential decoder: none (the whole packed audio, seeking like
    faster-whisper) unless the client asked for shorter windows."""
    if opts.max_window_s >= WINDOW_S:
        return None
    return [t for w in packed.windows for t in w]


def _request_kwargs(opts: AsrOptions) -> dict:
    """The per-request arguments both faster-whisper entry points share."""
    return {
        "task": opts.task,
        "initial_prompt": opts.prompt or None,
        "hotwords": opts.hotwords or None,
        "word_timestamps": opts.word_timestamps,
    }


def _reporter(on_segment: Callable[[float, str], None], clock: TimeMap, options: DecodeOptions) -> Callable[[object], None]:
    def report(s) -> None:
        if _has_text(s, options):
            on_segment(clock.original(float(s.end), is_end=True), s.text)

    return report


def _collect(segments: Iterable, report: Callable[[object], None] | None) -> list:
    """The decoder's lazy segments as a list, reporting each as it is produced."""
    out = []
    for s in segments:
        out.append(s)
        if report is not None:
            report(s)
    return out


def _batched(
    model: LoadedModel, audio: Audio, windows: list[tuple[float, float]], language: str | None, opts: AsrOptions, report=None
):
    segments, info = transcribe_batched(
        model,
        audio.samples,
        windows,
        opts.decode,
        opts.temperatures[0],  # the batched decoder has no fallback
        opts.batch_size,
        language=language,
        **_request_kwargs(opts),
    )
    return _collect(segments, report), info


def _sequential(
    model: LoadedModel,
    audio: Audio,
    clips: list[float] | None,
    language: str | None,
    opts: AsrOptions,
    report=None,
    watch_language: bool = False,
):
    """faster-whisper's transcribe loop; with ``watch_language``, also the language Whisper hears in
    each window it encodes."""
    windows: list[tuple[str, float]] = []
    kwargs = _request_kwargs(opts)
    if clips is not None:
        kwargs["clip_timestamps"] = clips
    temperatures = opts.decode.fallback(opts.temperatures)
    heard = windows if watch_language else None
    segments, info = transcribe_sequential(model, audio.samples, opts.decode, temperatures, heard, language=language, **kwargs)
    return _collect(segments, report), info, windows


def _decode_language_runs(model: LoadedModel, packed: Packed, opts: AsrOptions, first: _Run) -> list[_Run]:
    """A code-switched file decoded again in runs of one language each.

    Utterances of at least UTTERANCE_S (cut at the pauses a fine VAD finds) get Whisper's language
    detection; one that is not confidently another language keeps its neighbour's. Consecutive
    utterances of one language form a run, decoded in that language. The first pass's segments are
    kept where their whole window lay inside a run of the language they were decoded in.
    """
    runs: list[_Run] = []
    for start, end in _utterances(packed):
        lang, prob = detect_language(model, packed.audio.slice(start, end).samples)
        lang = heard_language(runs[-1].language if runs else first.language, lang, prob)
        if runs and runs[-1].language == lang:
            runs[-1] = _Run(runs[-1].start, end, lang, [])
        else:
            runs.append(_Run(start, end, lang, []))
    log.info("code-switched audio: %s", ", ".join(f"{r.language} {r.start:.1f}-{r.end:.1f}s" for r in runs))
    out = []
    for r in runs:
        kept = (
            []
            if r.language != first.language
            else [s for s in first.segments if r.start <= _window(s)[0] and _window(s)[1] <= r.end]
        )
        resume = max((float(s.end) for s in kept), default=r.start)
        raw = _sequential(model, packed.audio, [resume, r.end], r.language, opts)[0] if r.end - resume > 0.2 else []
        out.append(_Run(r.start, r.end, r.language, kept + raw))
    return out


def _window(s) -> tuple[float, float]:
    """The packed-audio window a sequential segment was decoded in (its seek and Whisper's 30 s)."""
    start = s.seek / MEL_FRAMES_PER_S
    return start, start + WINDOW_S


def _utterances(packed: Packed) -> list[tuple[float, float]]:
    """Packed speech cut into utterances of at least UTTERANCE_S, in the pauses a fine VAD finds."""
    spans = silero_vad(packed.audio, BATCH_VAD)
    pauses = [(a.end + b.start) / 2 for a, b in zip(spans, spans[1:])] + [p.packed_start for p in packed.pieces[1:]]
    cuts, start = [], 0.0
    for t in sorted(pauses):
        if t - start >= UTTERANCE_S:
            cuts.append((start, t))
            start = t
    end = packed.audio.duration
    if cuts and end - start < UTTERANCE_S / 2:
        cuts[-1] = (cuts[-1][0], end)
    else:
        cuts.append((start, end))
    return cuts


def _has_text(s, options: DecodeOptions) -> bool:
    return bool(s.text.strip()) and not is_silence(s.no_speech_prob, s.avg_logprob, options)


class _Keep:
    """What of a list of decoded segments to return: loops cut where they start repeating, and
    Whisper's no-speech windows dropped (the sequential decoder has dropped them already)."""

    def __init__(self, model: LoadedModel, options: DecodeOptions) -> None:
        self._model = model
        self._options = options

    def __call__(self, segments: list) -> list:
        out = [self._without_loop(s) for s in segments if s.text.strip()]
        return [s for s in out if s is not None and _has_text(s, self._options)]

    def _without_loop(self, s):
        return without_loop(s, lambda text: text_tokens(self._model, text), self._options)


def _segment(i: int, s, clock: TimeMap, language: str | None = None) -> Segment:
    words = tuple(Word(*clock.word(w.start, w.end), w.word, float(w.probability)) for w in (s.words or ()))
    return Segment(
        id=i,
        start=clock.original(float(s.start)),
        end=clock.original(float(s.end), is_end=True),
        text=s.text,
        words=words,
        seek=int(s.seek),
        tokens=tuple(int(t) for t in s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        language=language,
    )
