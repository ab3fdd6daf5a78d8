"""Turn a :class:`Transcript` into the body of a response in the requested format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audio_service.formatting.subtitles import to_srt, to_vtt
from audio_service.schema import Segment, Transcript, Word

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_MEDIA_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass(frozen=True)
class Rendered:
    body: str | dict[str, Any]
    media_type: str


def _r(x: float) -> float:
    return round(float(x), 3)


def word_json(w: Word, language: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "word": w.word,
        "start": _r(w.start),
        "end": _r(w.end),
        "language": language,
        "probability": round(w.probability, 4),
    }
    if w.speaker is not None:
        out["speaker_id"] = w.speaker
    if w.channel is not None:
        out["channel"] = w.channel
    return out


def segment_json(s: Segment, language: str, with_words: bool) -> dict[str, Any]:
    language = s.language or language
    out: dict[str, Any] = {
        "id": s.id,
        "seek": s.seek,
        "start": _r(s.start),
        "end": _r(s.end),
        "audio_start": _r(s.start),
        "audio_end": _r(s.end),
        "text": s.text,
        "language": language,
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }
    if with_words:
        out["words"] = [word_json(w, language) for w in s.words]
    if s.speaker is not None:
        out["speaker_id"] = s.speaker
    if s.overlapping_speakers:
        out["overlapping_speakers"] = list(s.overlapping_speakers)
    if s.channel is not None:
        out["channel"] = s.channel
    return out


def verbose_json(t: Transcript, granularities: tuple[str, ...]) -> dict[str, Any]:
    with_words = "word" in granularities
    out: dict[str, Any] = {"task": t.task, "language": t.language, "duration": _r(t.duration), "text": t.text}
    if with_words:
        out["words"] = [word_json(w, s.language or t.language) for s in t.segments for w in s.words]
    if "segment" in granularities:
        out["segments"] = [segment_json(s, t.language, with_words) for s in t.segments]
    return out


def render(t: Transcript, response_format: str, granularities: tuple[str, ...] = ("segment",)) -> Rendered:
    """Render ``t`` as ``response_format``; JSON formats give a dict, the others a string."""
    if response_format == "json":
        return Rendered({"text": t.text}, "application/json")
    if response_format == "verbose_json":
        return Rendered(verbose_json(t, granularities), "application/json")
    if response_format == "text":
        return Rendered(t.text + "\n", _MEDIA_TYPES["text"])
    if response_format == "srt":
        return Rendered(to_srt(t.segments), _MEDIA_TYPES["srt"])
    if response_format == "vtt":
        return Rendered(to_vtt(t.segments), _MEDIA_TYPES["vtt"])
    raise ValueError(f"unknown response_format {response_format!r}")
