"""SRT and WebVTT writers."""

from __future__ import annotations

from audio_service.schema import Segment


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(seg: Segment) -> str:
    text = seg.text.strip()
    text = f"[{seg.speaker}] {text}" if seg.speaker else text
    return f"[channel {seg.channel}] {text}" if seg.channel is not None else text


def to_srt(segments: tuple[Segment, ...]) -> str:
    cues = [s for s in segments if s.text.strip()]
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(max(s.end, s.start + 0.001), ',')}\n{_cue_text(s)}\n"
        for i, s in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: tuple[Segment, ...]) -> str:
    cues = [s for s in segments if s.text.strip()]
    blocks = [f"{_clock(s.start, '.')} --> {_clock(max(s.end, s.start + 0.001), '.')}\n{_cue_text(s)}\n" for s in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)
