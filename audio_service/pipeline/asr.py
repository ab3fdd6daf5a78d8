"""Speech recognition with a shared faster-whisper model.

All per-call state lives in local objects (a fresh ``BatchedInferencePipeline`` per call is only
a thin wrapper around the shared model), so any number of threads may transcribe at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from audio_service.models.decoding import decode_language, decoding_kwargs, text_tokens
from audio_service.models.whisper_rules import (
    COMPRESSION_RATIO_LIMIT,
    compression_ratio,
    is_looping,
    is_silence,
    loops,
    repetition_start,
    text_words,
)
from audio_service.pipeline.chunking import Packed, TimeMap, pack
from audio_service.pipeline.segmenter import resegment
from audio_service.schema import Audio, Segment, SpeechSpan, Task, Transcript, Word

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.models.registry import LoadedModel

log = logging.getLogger(__name__)

SKIPPED_SPEECH_S = 1.0  # speech left without text in a window that means the decoder skipped it
# A window with at least this much VAD speech never comes back empty when the decoder heard words in
# it: Whisper's no-speech rule (meant for silence, which our VAD already removed) otherwise drops
# low-confidence speech, e.g. a translation of synthetic German, that faster-whisper alone keeps.
RESCUE_SPEECH_S = 2.0
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class AsrOptions:
    task: Task = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperatures: tuple[float, ...] = (0.0,)
    beam_size: int = 5
    # Word timing costs little next to decoding, and gives sentence-sized segments (see segmenter).
    word_timestamps: bool = True
    batch_size: int = 8
    batched: bool = True  # False: decode window after window, conditioning on previous text
    max_window_s: float = 30.0  # longest stretch of packed speech given to the decoder at once


def transcribe(
    model: LoadedModel,
    audio: Audio,
    spans: list[SpeechSpan],
    opts: AsrOptions,
    on_segment: Callable[[float, str], None] | None = None,
) -> Transcript:
    """Decode the speech ``spans`` of ``audio``; timestamps in the result are on ``audio``'s clock.

    ``on_segment(end_s, text)``, if given, is called as each decoded segment comes out of the
    decoder (windows finish in batches), for progress reports; it does not change the decoding.

    The spans are packed (silence removed) into windows of at most ``opts.max_window_s``.

    A temperature fallback list (more than one temperature) needs the sequential decoder, which
    retries a window at the next temperature when it fails the compression/log-prob checks.
    """
    language = decode_language(model, opts.language, opts.task)
    packed = pack(audio, spans, opts.max_window_s)
    if not packed.windows:
        return Transcript(opts.task, "en" if opts.task == "translate" else (language or "en"), audio.duration, ())

    windows = list(packed.windows)
    keep = _Keep(model)
    report = _reporter(on_segment, TimeMap(packed.pieces)) if on_segment is not None else None
    if opts.batched and len(opts.temperatures) == 1:
        raw, info = _batched(model, packed.audio, windows, language, opts, report)
        kept = _redecode_failed_windows(model, packed, raw, info.language, opts, keep)
    else:
        raw, info = _sequential(model, packed.audio, windows, language, opts, report)
        kept = keep(raw)
    clock = TimeMap(packed.pieces)
    segments = tuple(_segment(i, s, clock) for i, s in enumerate(kept))
    if opts.word_timestamps:
        segments = resegment(segments, encode=lambda text: text_tokens(model, text))
    out_language = "en" if opts.task == "translate" else info.language
    return Transcript(
        task=opts.task,
        language=out_language,
        duration=audio.duration,
        segments=segments,
        language_probability=float(info.language_probability),
        provenance={"model": model.spec.id},
    )


def _common_kwargs(language: str | None, opts: AsrOptions) -> dict:
    """Decoding options both faster-whisper entry points share."""
    return {
        "language": language,
        "task": opts.task,
        "beam_size": opts.beam_size,
        "temperature": list(opts.temperatures),
        "initial_prompt": opts.prompt or None,
        "word_timestamps": opts.word_timestamps,
        "vad_filter": False,  # our VAD already chose the windows
        **decoding_kwargs(),
    }


def _reporter(on_segment: Callable[[float, str], None], clock: TimeMap) -> Callable[[object], None]:
    def report(s) -> None:
        if _has_text(s):
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


def _batched(model: LoadedModel, audio: Audio, windows: list[tuple[float, float]], language: str | None, opts: AsrOptions, report=None):
    from faster_whisper import BatchedInferencePipeline

    segments, info = BatchedInferencePipeline(model.whisper).transcribe(
        audio.samples,
        clip_timestamps=[{"start": a, "end": b} for a, b in windows],
        batch_size=opts.batch_size,
        # Timestamp tokens let Whisper move on after a sentence; without them it often stops at the
        # first one in a window of several utterances. Windows that still fail are re-decoded.
        without_timestamps=False,
        **_common_kwargs(language, opts),
    )
    return _collect(segments, report), info


def _sequential(
    model: LoadedModel, audio: Audio, windows: list[tuple[float, float]], language: str | None, opts: AsrOptions, report=None
):
    clips = [t for w in windows for t in w]
    segments, info = model.whisper.transcribe(audio.samples, clip_timestamps=clips, **_common_kwargs(language, opts))
    return _collect(segments, report), info


def _looping(segments: list) -> bool:
    """Whisper's loop sign on a batched window (what :func:`loops` calls one, not any text that
    compresses well: a sentence said twice used to send clean speech through the slow fallback)."""
    return any(s.compression_ratio > COMPRESSION_RATIO_LIMIT and loops(s.text) for s in segments)


def _skipped(segments: list, pieces: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Runs of VAD speech (packed clock) the window's decoded text left out, if they add up to more
    than SKIPPED_SPEECH_S; else none.

    Timestamp-mode decoding stops at the last sentence it can finish, or jumps over a stretch:
    every piece of speech should overlap some decoded segment.
    """
    heard = [s for s in segments if _has_text(s)]  # speech "heard" only as silence was skipped too
    runs: list[tuple[float, float]] = []
    for a, b in pieces:
        if sum(max(0.0, min(b, s.end) - max(a, s.start)) for s in heard) >= 0.3 * (b - a):
            continue
        if runs and runs[-1][1] >= a - 0.5:  # neighbouring pieces (joined by packing's gap)
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    return runs if sum(b - a for a, b in runs) > SKIPPED_SPEECH_S else []


def _redecode_failed_windows(model: LoadedModel, packed: Packed, raw: list, language: str, opts: AsrOptions, keep: _Keep) -> list:
    """The segments worth keeping, after repairing the windows the batched pass got wrong.

    Speech the decoder skipped is decoded again on its own, all such spans of the file in one
    batched call. A looping window is re-decoded sequentially with temperature fallback (the
    batched decoder has none); that is slow, so only loops get it.
    """
    windows = list(packed.windows)
    by_window: list[list] = [[] for _ in windows]
    for seg in raw:  # segment times are on the packed clock, inside their window
        i = next((k for k, (a, b) in enumerate(windows) if a - 0.01 <= seg.start < b), len(windows) - 1)
        by_window[i].append(seg)
    pieces = [(p.packed_start, p.packed_start + p.end - p.start) for p in packed.pieces]
    in_window = [[(a, b) for a, b in pieces if w0 - 0.01 <= a < w1] for w0, w1 in windows]
    looping = {k for k, segs in enumerate(by_window) if _looping(segs)}
    skipped = {k: runs for k, segs in enumerate(by_window) if k not in looping and (runs := _skipped(segs, in_window[k]))}
    if looping or skipped:
        log.info("%d of %d windows loop, %d skipped speech: re-decoding", len(looping), len(windows), len(skipped))
    extra = _batched(model, packed.audio, [r for k in sorted(skipped) for r in skipped[k]], language, opts)[0] if skipped else []
    for seg in extra:  # each span lies inside its window
        k = next((k for k, (a, b) in enumerate(windows) if a - 0.01 <= seg.start < b), len(windows) - 1)
        by_window[k] = sorted(by_window[k] + [seg], key=lambda s: s.start)
    retry = replace(opts, temperatures=FALLBACK_TEMPERATURES)
    kept: list = []
    for k, segs in enumerate(by_window):
        redone = keep(_sequential(model, packed.audio, [windows[k]], language, retry)[0]) if k in looping else keep(segs)
        # The fallback (or the no-speech rule) can end with nothing where the first pass heard words
        # in VAD speech: keep those, cut before any loop, rather than lose the window (seen on German
        # speech translated with int8 numerics on an AVX2 CPU, where faster-whisper returns text).
        speech_s = sum(b - a for a, b in in_window[k])
        kept += redone if redone or not rescuable(speech_s, k in looping) else keep(segs, silence_too=True)
    return kept


def rescuable(speech_s: float, looping: bool) -> bool:
    """Whether a window that kept nothing should keep its first pass's words instead: always after a
    failed loop fallback; else when it held enough VAD speech that the no-speech rule must be wrong
    (a short burst of noise that Whisper calls speech still comes back empty)."""
    return looping or speech_s >= RESCUE_SPEECH_S


def _has_text(s) -> bool:
    return bool(s.text.strip()) and not is_silence(s.no_speech_prob, s.avg_logprob)


class _Keep:
    """What of a list of decoded segments to return: loops cut where they start repeating, and
    (unless ``silence_too``) Whisper's no-speech windows dropped."""

    def __init__(self, model: LoadedModel) -> None:
        self._model = model

    def __call__(self, segments: list, silence_too: bool = False) -> list:
        out = [self._without_loop(s) for s in segments if s.text.strip()]
        return [s for s in out if s is not None and (silence_too or _has_text(s))]

    def _without_loop(self, s):
        return without_loop(s, lambda text: text_tokens(self._model, text))


def without_loop(s, encode: Callable[[str], list[int]]):
    """Decoded segment ``s`` cut where it starts repeating itself (``None`` if nothing is left).

    Without word timings (the client asked for none) the text's own words are cut and the end
    time is estimated from the share of the text kept: a looping segment must not vanish whole.
    """
    if not is_looping(s.text):
        return s
    pieces = [w.word for w in s.words] if s.words else text_words(s.text)
    keep = repetition_start(pieces)
    if keep == len(pieces):
        return s
    if keep == 0:
        return None
    text = "".join(pieces[:keep])
    if s.words:
        words, end = s.words[:keep], s.words[keep - 1].end
    else:
        words, end = s.words, s.start + (s.end - s.start) * len(text) / len(s.text)
    n_tokens = len(encode(text))
    return replace(s, text=text, words=words, end=end, tokens=s.tokens[:n_tokens], compression_ratio=compression_ratio(text))


def _segment(i: int, s, clock: TimeMap) -> Segment:
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
    )
